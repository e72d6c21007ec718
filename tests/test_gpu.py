"""The model-loading stages on a CUDA GPU: extraction, LoRA tuning and lm-eval give what they give
on the CPU. Skipped on machines without one (CI); run them where a GPU is:
`pytest tests/test_gpu.py`."""

import copy
import json

import numpy as np
import pytest
import torch
from conftest import SMALL_LORA, SUMS, extract_sums, random_olmoe, run_generate_eval
from safetensors import safe_open

from grokpath import checkpoints, extraction, stages, tables

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXTS = SUMS
EXAMPLES = [{"prompt": t.rsplit(" ", 1)[0], "response": t.rsplit(" ", 1)[1]} for t in SUMS]


def _extract(model, sums_tok, routing):
    token_ids = [sums_tok(t)["input_ids"] for t in TEXTS]
    ids = [f"s{i:02d}" for i in range(len(token_ids))]
    out = list(extraction.iter_batches(model, token_ids, ids, sums_tok.pad_token_id, 4, routing=routing))
    return np.concatenate([b.loss for b in out]), np.concatenate([b.probs for b in out])


@pytest.mark.parametrize("routing", ["full", "topk"])
def test_float32_extraction_on_the_gpu_matches_the_cpu(sums_tok, routing):
    model = random_olmoe(sums_tok, hidden=32, layers=3, seed=3)
    cpu_loss, cpu_probs = _extract(model, sums_tok, routing)
    gpu_loss, gpu_probs = _extract(copy.deepcopy(model).to("cuda"), sums_tok, routing)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    np.testing.assert_allclose(gpu_probs, cpu_probs, atol=1e-4)


def test_bfloat16_extraction_on_the_gpu_is_close_to_float32(sums_tok):
    model = random_olmoe(sums_tok, hidden=32, layers=3, seed=3)
    cpu_loss, cpu_probs = _extract(model, sums_tok, "full")
    loss, probs = _extract(copy.deepcopy(model).to("cuda", torch.bfloat16), sums_tok, "full")
    assert loss.dtype == np.float64
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)  # the softmax runs in float32
    np.testing.assert_allclose(loss, cpu_loss, rtol=0.05)
    np.testing.assert_allclose(probs, cpu_probs, atol=0.05)


def test_extract_routing_stage_on_the_gpu_writes_the_cpu_tables(sums_tok, sums_checkpoint, tmp_path):
    def run(device):
        out = extract_sums(sums_tok, sums_checkpoint, tmp_path / device, device)
        routing = tables.read(out["routing"], tables.ROUTING_SCHEMA).sort("sample_id", "layer")
        loss = tables.read(out["loss"], tables.LOSS_SCHEMA).sort("sample_id")
        return routing, loss

    cpu_routing, cpu_loss = run("cpu")
    gpu_routing, gpu_loss = run("cuda")
    assert gpu_routing["sample_id"].to_list() == cpu_routing["sample_id"].to_list()
    probs = [np.stack(t["probs"].to_list()) for t in (gpu_routing, cpu_routing)]
    np.testing.assert_allclose(*probs, atol=1e-4)
    np.testing.assert_allclose(gpu_loss["loss"].to_numpy(), cpu_loss["loss"].to_numpy(), rtol=1e-4)


def test_lora_tuning_in_bfloat16_on_the_gpu_then_lm_eval_there(sums_tok, sums_checkpoint, tmp_path):
    data = tmp_path / "math_instruct.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    tuned = tmp_path / "tuned"
    settings = {**SMALL_LORA, "device": "cuda", "dtype": "bfloat16"}
    stages.instruction_tune("m", "c1", "math", str(sums_checkpoint), str(data), settings, 0, str(tuned))
    manifest = checkpoints.read_manifest(tuned)
    losses = manifest["epoch_losses"]
    assert losses[-1] < losses[0], losses
    with safe_open(next(tuned.glob("*.safetensors")), "pt") as f:
        q = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert q.dtype == torch.bfloat16  # the merged model is saved in the dtype it was tuned in
    with safe_open(next(sums_checkpoint.glob("*.safetensors")), "pt") as f:
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
