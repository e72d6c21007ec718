import re

import pytest
import torch

from grokpath import devices, stages


def test_cpu_is_always_there():
    assert devices.check("cpu", "extraction.device") == "cpu"


@pytest.mark.parametrize("device", ["gpu", "cpu:0", "cuda:x", "mps:1", ""])
def test_a_name_that_is_no_device_is_refused(device):
    with pytest.raises(ValueError, match=rf"config key evaluation.device: {re.escape(repr(device))} is not a device"):
        devices.check(device, "evaluation.device")


def test_a_device_this_machine_lacks_names_the_key_and_what_it_has():
    beyond = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or cuda:0 without any
    with pytest.raises(ValueError, match=rf"config key instruction_tune.device: '{beyond}', but this machine .* has"):
        devices.check(beyond, "instruction_tune.device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_stage_asked_for_a_missing_gpu_stops_before_touching_its_checkpoint(tmp_path):
    # The checkpoint folder does not exist: a stage that got past the device check would fail
    # on it (or, in disk-bounded mode, download it) instead.
    settings = {"device": "cuda", "dtype": "bfloat16", "threads": 1, "routing": "full"}
    with pytest.raises(ValueError, match=r"config key extraction.device: 'cuda', but this machine .* no cuda device"):
        stages.extract_routing("m", "s1", str(tmp_path / "missing"), {}, {}, {}, {}, {}, "r.safetensors", settings, 0)
    with pytest.raises(ValueError, match=r"config key instruction_tune.device: 'cuda'"):
        stages.instruction_tune("m", "s1", "math", str(tmp_path / "missing"), "none.jsonl", settings, 0, "out")
    with pytest.raises(ValueError, match=r"config key evaluation.device: 'cuda'"):
        stages.run_lm_eval("m", "s1", str(tmp_path / "missing"), [], {}, {}, {}, "cache", settings, 0)
    with pytest.raises(ValueError, match=r"config key extraction.device: 'cuda'"):  # decontamination
        stages.decontaminate("m", "t", str(tmp_path / "missing"), "items.parquet", {}, "cuda", "float32", "o")
    assert not (tmp_path / "missing").exists()
