import dataclasses

import polars as pl
import pytest
import torch

from grokpath import pretrain as pretrain_module
from grokpath import tables
from grokpath.pretrain import (
    ModelShape,
    PretrainConfig,
    _EvalSet,
    build_model,
    first_sustained,
    generate_domains,
    pretrain,
    summarize_grokking,
)
from grokpath.tokenizer import train_word_tokenizer

TINY = {
    "max_steps": 6,
    "save_every": 3,
    "eval_every": 3,
    "batch_size": {"math": 16, "code": 4, "commonsense": 4},
    "model": {"hidden_size": 16, "intermediate_size": 16, "num_layers": 2, "num_heads": 2, "num_experts": 4},
    "data": {"modulus": 13, "code_programs": 100, "kb_entities": 10, "n_test": 10, "n_validation": 5},
}


def test_first_sustained():
    assert first_sustained([0, 1, 2, 3], [False, True, False, True]) == 3
    assert first_sustained([0, 1, 2, 3], [False, True, True, True]) == 1
    assert first_sustained([0, 1], [True, False]) is None


def test_summary_finds_flat_loss_before_accuracy_rise():
    steps = [0, 100, 200, 300, 400, 500]
    traj = pl.DataFrame(
        {
            "model": "m",
            "step": steps,
            "domain": "math",
            "train_loss": [5.0, 1.02, 1.0, 1.01, 1.0, 1.0],
            "train_accuracy": [0.0, 0.95, 1.0, 1.0, 1.0, 1.0],
            "test_accuracy": [0.0, 0.02, 0.05, 0.4, 0.95, 0.97],
        }
    )
    s = summarize_grokking(traj, tolerance=0.05, threshold=0.9)["math"]
    assert s["loss_converged_step"] == 100
    assert s["train_accuracy_rise_step"] == 100
    assert s["test_accuracy_rise_step"] == 400
    assert s["grokking_gap_steps"] == 300


def test_summary_ignores_a_single_evaluation_spike():
    steps = [0, 100, 200, 300, 400, 500, 600]
    traj = pl.DataFrame(
        {
            "model": "m",
            "step": steps,
            "domain": "math",
            "train_loss": [5.0, 1.0, 1.0, 1.0, 1.3, 1.0, 1.0],
            "train_accuracy": [0.0, 1.0, 1.0, 1.0, 0.7, 1.0, 1.0],
            "test_accuracy": [0.0, 0.0, 0.1, 0.95, 0.6, 0.97, 0.98],
        }
    )
    s = summarize_grokking(traj, tolerance=0.05, threshold=0.9)["math"]
    assert s["loss_converged_step"] == 100
    # smoothed test accuracy: 0, 0, .1, .6, .95, .97, .98 -> sustained from 400
    assert s["test_accuracy_rise_step"] == 400


def test_summary_ignores_a_two_evaluation_loss_spike_late_in_training():
    # the embedded series' math loss: flat from step 2, a spike over two evaluations near the end
    loss = [5.0, 2.0, 1.62, 1.60, 1.61, 1.60, 1.59, 1.60, 1.83, 1.68, 1.61, 1.60]
    steps = [25 * i for i in range(len(loss))]
    traj = pl.DataFrame(
        {
            "model": "m",
            "step": steps,
            "domain": "math",
            "train_loss": loss,
            "train_accuracy": [0.0] + [1.0] * (len(loss) - 1),
            "test_accuracy": [0.0] * 6 + [0.95] * (len(loss) - 6),
        }
    )
    s = summarize_grokking(traj, tolerance=0.05, threshold=0.9)["math"]
    assert s["loss_converged_step"] == 50
    assert s["test_accuracy_rise_step"] == 150
    assert s["grokking_gap_steps"] == 100


def _train(tmp_path, name):
    out = tmp_path / name
    cfg = PretrainConfig.from_dict(TINY)
    pretrain(cfg, "m", out / "ckpt", out / "data", out / "traj.parquet", out / "summary.json")
    return out


def test_pretraining_is_deterministic_and_saves_hf_checkpoints(tmp_path):
    a, b = _train(tmp_path, "a"), _train(tmp_path, "b")
    assert sorted(p.name for p in (a / "ckpt").iterdir()) == ["step000000", "step000003", "step000006"]
    for step in ("step000003", "step000006"):
        assert (a / "ckpt" / step / "model.safetensors").read_bytes() == (
            b / "ckpt" / step / "model.safetensors"
        ).read_bytes()
    ta = tables.read(a / "traj.parquet", tables.TRAJECTORY_SCHEMA)
    assert ta.equals(tables.read(b / "traj.parquet", tables.TRAJECTORY_SCHEMA))
    assert sorted(ta["domain"].unique()) == ["code", "commonsense", "math"]
    for split in ("train", "test", "validation"):
        assert (a / "data" / "math" / f"{split}.jsonl").read_text() == (
            b / "data" / "math" / f"{split}.jsonl"
        ).read_text()


def test_the_series_does_not_depend_on_deterministic_modes_nan_fill(tmp_path, monkeypatch):
    """Pretraining leaves out deterministic mode's NaN fill of fresh tensors (~5% of a step): the
    weights must come out the same as with it, which holds while every kernel writes its output
    whole (a kernel that read its uninitialized output would give NaN with the fill)."""
    without = _train(tmp_path, "without")
    monkeypatch.setattr(pretrain_module, "_FILL_UNINITIALIZED_MEMORY", True)
    with_fill = _train(tmp_path, "with")
    for step in ("step000003", "step000006"):
        assert (with_fill / "ckpt" / step / "model.safetensors").read_bytes() == (
            without / "ckpt" / step / "model.safetensors"
        ).read_bytes()
    assert tables.read(with_fill / "traj.parquet", tables.TRAJECTORY_SCHEMA).equals(
        tables.read(without / "traj.parquet", tables.TRAJECTORY_SCHEMA)
    )


def test_pretraining_puts_the_callers_torch_settings_back(tmp_path):
    """Threads and deterministic kernels are pretraining's own: a test, benchmark or notebook that
    trains a series goes on with the settings it had."""
    deterministic = torch.utils.deterministic
    before = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        deterministic.fill_uninitialized_memory,
    )
    threads = PretrainConfig.from_dict(TINY).threads + 1  # other than the run's
    torch.set_num_threads(threads)
    try:
        _train(tmp_path, "a")
        assert torch.get_num_threads() == threads
        assert torch.are_deterministic_algorithms_enabled() is before[1]
        assert deterministic.fill_uninitialized_memory is before[2]
    finally:
        torch.set_num_threads(before[0])


def test_checkpoint_reloads_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = _train(tmp_path, "c")
    model = AutoModelForCausalLM.from_pretrained(out / "ckpt" / "step000006")
    tok = AutoTokenizer.from_pretrained(out / "ckpt" / "step000006")
    assert model.config.model_type == "olmoe"
    assert model.config.num_experts == 4
    assert tok("3 + 4 =")["input_ids"][0] == tok.bos_token_id


def test_batch_sizes_must_name_every_domain(tmp_path):
    cfg = PretrainConfig.from_dict({**TINY, "batch_size": {"math": 4}})
    with pytest.raises(ValueError, match="batch_size must name every domain"):
        pretrain(cfg, "m", tmp_path / "c", tmp_path / "d", tmp_path / "t.parquet", tmp_path / "s.json")


def test_live_monitors_leave_training_unchanged(tmp_path):
    cfg = PretrainConfig.from_dict({**TINY, "monitor_every": 3, "monitor_samples": 8})
    off = _train(tmp_path, "off")
    on = tmp_path / "on"
    pretrain(cfg, "m", on / "ckpt", on / "data", on / "traj.parquet", on / "summary.json", on / "live.parquet")
    for step in ("step000003", "step000006"):  # bit-for-bit the same weights: monitoring draws no random numbers
        assert (on / "ckpt" / step / "model.safetensors").read_bytes() == (
            off / "ckpt" / step / "model.safetensors"
        ).read_bytes()
    live = tables.read(on / "live.parquet", tables.LIVE_MONITORS_SCHEMA)
    assert sorted(live["step"].unique()) == [0, 3, 6]
    assert sorted(live["domain"].unique()) == ["code", "commonsense", "math"]
    assert (live["n_samples"] == 8).all()
    assert live["pathway_consistency"].is_finite().all()
    assert (live["pathway_distance"] >= 0).all()
    meta = tables.read_metadata(on / "live.parquet")
    assert 0 < meta["monitor_seconds"] < meta["run_seconds"]
    assert meta["tau"] == 0.7


def _domains_and_tokenizer():
    cfg = PretrainConfig.from_dict(TINY)
    data = generate_domains(cfg.data, seed=0)
    texts = [t for d in data.values() for t in d.train]
    texts += [f"{it.prompt} {' '.join(it.choices)}" for d in data.values() for it in d.test]
    return data, train_word_tokenizer(texts)


@torch.inference_mode()
def test_answers_predicted_in_the_trained_sequence_are_those_of_the_prompt_alone():
    """Training accuracy is read from the loss's forward pass of "<prompt> <answer> <eos>" instead
    of a pass of the prompts: the model is causal, so the prediction at the prompt's last token is
    the same, at every domain's items (including prompts of different lengths in one batch)."""
    data, tokenizer = _domains_and_tokenizer()
    model = build_model(ModelShape(hidden_size=16, intermediate_size=16, num_layers=2, num_heads=2), tokenizer, 0)
    model.eval()
    for name, dom in data.items():
        items = dom.train_items[:40]
        answered, prompts = _EvalSet.answered(tokenizer, items), _EvalSet.prompts(tokenizer, items)
        assert torch.equal(answered.answers, prompts.answers)
        a = model(input_ids=answered.ids, attention_mask=answered.mask).logits
        p = model(input_ids=prompts.ids, attention_mask=prompts.mask).logits
        rows = torch.arange(len(items))
        torch.testing.assert_close(a[rows, answered.last], p[rows, prompts.last], rtol=1e-5, atol=1e-5)
        assert torch.equal(answered.predictions(a), prompts.predictions(p)), name
        assert answered.accuracy(a) == prompts.accuracy(p)


def test_an_answer_that_is_not_one_token_after_the_prompt_is_refused():
    data, tokenizer = _domains_and_tokenizer()
    item = dataclasses.replace(data["math"].train_items[0], answer="7 8")
    with pytest.raises(ValueError, match="is not one token after the prompt"):
        _EvalSet.answered(tokenizer, [item])
