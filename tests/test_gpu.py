"""The model-loading stages on a CUDA GPU: extraction, LoRA tuning and lm-eval give what they give
on the CPU. Skipped on machines without one (CI); run them where a GPU is:
`pytest tests/test_gpu.py`."""

import copy
import json

import numpy as np
import pytest
import torch
from conftest import SMALL_LORA, SUMS, local_checkpoint, random_olmoe, run_generate_eval
from safetensors import safe_open

from grokpath import checkpoints, extraction, samples, stages, tables
from grokpath.tokenizer import train_word_tokenizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXTS = SUMS
EXAMPLES = [{"prompt": t.rsplit(" ", 1)[0], "response": t.rsplit(" ", 1)[1]} for t in SUMS]


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def checkpoint(tok, tmp_path_factory):
    return local_checkpoint(tok, tmp_path_factory.mktemp("ckpt"))


def _extract(model, tok, routing):
    token_ids = [tok(t)["input_ids"] for t in TEXTS]
    ids = [f"s{i:02d}" for i in range(len(token_ids))]
    out = list(extraction.iter_batches(model, token_ids, ids, tok.pad_token_id, 4, routing=routing))
    return np.concatenate([b.loss for b in out]), np.concatenate([b.probs for b in out])


@pytest.mark.parametrize("routing", ["full", "topk"])
def test_float32_extraction_on_the_gpu_matches_the_cpu(tok, routing):
    model = random_olmoe(tok, hidden=32, layers=3, seed=3)
    cpu_loss, cpu_probs = _extract(model, tok, routing)
    gpu_loss, gpu_probs = _extract(copy.deepcopy(model).to("cuda"), tok, routing)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    np.testing.assert_allclose(gpu_probs, cpu_probs, atol=1e-4)


def test_bfloat16_extraction_on_the_gpu_is_close_to_float32(tok):
    model = random_olmoe(tok, hidden=32, layers=3, seed=3)
    cpu_loss, cpu_probs = _extract(model, tok, "full")
    loss, probs = _extract(copy.deepcopy(model).to("cuda", torch.bfloat16), tok, "full")
    assert loss.dtype == np.float64
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)  # the softmax runs in float32
    np.testing.assert_allclose(loss, cpu_loss, rtol=0.05)
    np.testing.assert_allclose(probs, cpu_probs, atol=0.05)


def test_extract_routing_stage_on_the_gpu_writes_the_cpu_tables(tok, checkpoint, tmp_path):
    tables.write(
        samples.build_manifest(TEXTS, tok, "m", "math", "samples", len(TEXTS), 0, 64),
        tmp_path / "s.parquet",
        tables.SAMPLES_SCHEMA,
    )
    tables.write(
        samples.build_manifest(TEXTS[:4], tok, "m", "math", "validation", 4, 0, 64),
        tmp_path / "v.parquet",
        tables.SAMPLES_SCHEMA,
    )

    def run(device):
        out = tmp_path / device
        out.mkdir()
        settings = {"threads": 1, "device": device, "dtype": "float32", "batch_size": 5, "routing": "full"}
        settings["max_tokens"] = 64
        stages.extract_routing(
            "m",
            "c1",
            str(checkpoint),
            {"math": str(tmp_path / "s.parquet")},
            {"math": str(tmp_path / "v.parquet")},
            {"math": str(out / "routing.parquet")},
            {"math": str(out / "loss.parquet")},
            {"math": str(out / "vloss.parquet")},
            str(out / "routers.safetensors"),
            settings,
            0,
        )
        routing = tables.read(out / "routing.parquet", tables.ROUTING_SCHEMA).sort("sample_id", "layer")
        loss = tables.read(out / "loss.parquet", tables.LOSS_SCHEMA).sort("sample_id")
        return routing, loss

    cpu_routing, cpu_loss = run("cpu")
    gpu_routing, gpu_loss = run("cuda")
    assert gpu_routing["sample_id"].to_list() == cpu_routing["sample_id"].to_list()
    probs = [np.stack(t["probs"].to_list()) for t in (gpu_routing, cpu_routing)]
    np.testing.assert_allclose(*probs, atol=1e-4)
    np.testing.assert_allclose(gpu_loss["loss"].to_numpy(), cpu_loss["loss"].to_numpy(), rtol=1e-4)


def test_lora_tuning_in_bfloat16_on_the_gpu_then_lm_eval_there(tok, checkpoint, tmp_path):
    data = tmp_path / "math_instruct.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    tuned = tmp_path / "tuned"
    settings = {**SMALL_LORA, "device": "cuda", "dtype": "bfloat16"}
    stages.instruction_tune("m", "c1", "math", str(checkpoint), str(data), settings, 0, str(tuned))
    manifest = checkpoints.read_manifest(tuned)
    losses = manifest["epoch_losses"]
    assert losses[-1] < losses[0], losses
    with safe_open(next(tuned.glob("*.safetensors")), "pt") as f:
        q = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert q.dtype == torch.bfloat16  # the merged model is saved in the dtype it was tuned in
    with safe_open(next(checkpoint.glob("*.safetensors")), "pt") as f:
        base = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert not torch.equal(q.float(), base.to(torch.bfloat16).float())  # the adapter was merged

    pytest.importorskip("lm_eval")
    test_set = tmp_path / "math.test.jsonl"
    test_set.write_text(
        "".join(
            json.dumps({"item_id": f"t{i}", "prompt": e["prompt"], "answer": e["response"]}) + "\n"
            for i, e in enumerate(EXAMPLES[:8])
        )
    )

    def evaluate(device, dtype):
        settings = {"device": device, "dtype": dtype, "batch_size": 4}
        return run_generate_eval(tuned, test_set, tmp_path, f"{device}_{dtype}", settings)

    res, gpu_predictions = evaluate("cuda", "float32")
    assert res["evaluated_model_sha"] == manifest["content_hash"]
    _, cpu_predictions = evaluate("cpu", "float32")
    assert gpu_predictions == cpu_predictions
    _, bf16_predictions = evaluate("cuda", "bfloat16")
    assert len(bf16_predictions) == 8
