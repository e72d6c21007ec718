"""Routing capture on a tiny random model of every supported MoE family, built from its config."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from grokpath import extraction, pathways
from grokpath.tokenizer import train_word_tokenizer

TEXTS = ["a b c d", "e f g h a b", "1 2 3 + 4 ="]
COMMON = {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 64}
# A dense first layer, two MoE layers with a shared expert, small multi-head latent attention.
DEEPSEEK = {
    "num_hidden_layers": 3,
    "intermediate_size": 32,
    "moe_intermediate_size": 16,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 8,
    "q_lora_rank": None,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4,
    "v_head_dim": 8,
    "n_group": 1,
    "topk_group": 1,
}
# family -> (config overrides, MoE layer indices)
FAMILIES = {
    "olmoe": ({"num_hidden_layers": 2, "intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2}, [0, 1]),
    "mixtral": (
        {"num_hidden_layers": 2, "intermediate_size": 32, "num_local_experts": 4, "num_experts_per_tok": 2},
        [0, 1],
    ),
    "qwen2_moe": (
        {
            "num_hidden_layers": 2,
            "intermediate_size": 32,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 16,
            "num_experts": 4,
            "num_experts_per_tok": 2,
        },
        [0, 1],
    ),
    "qwen3_moe": (
        {
            "num_hidden_layers": 2,
            "intermediate_size": 32,
            "moe_intermediate_size": 16,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "head_dim": 8,
        },
        [0, 1],
    ),
    "deepseek_v2": ({**DEEPSEEK, "topk_method": "greedy"}, [1, 2]),
    "deepseek_v3": (DEEPSEEK, [1, 2]),
    "gpt_oss": (
        {
            "num_hidden_layers": 2,
            "intermediate_size": 32,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "head_dim": 8,
            "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"],
        },
        [0, 1],
    ),
}


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(TEXTS)


def _model(family, tok):
    overrides, _ = FAMILIES[family]
    cfg = AutoConfig.for_model(
        family,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **COMMON,
        **overrides,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_routing_capture_and_pathway_metrics(family, tok):
    model = _model(family, tok)
    moe_layers = FAMILIES[family][1]
    assert [i for i, _ in extraction.moe_gates(model)] == moe_layers  # dense leading layers are skipped
    arch = extraction.describe_moe(model)
    assert arch["moe_layers"] == moe_layers
    assert arch["dense_layers"] == [i for i in range(len(model.model.layers)) if i not in moe_layers]
    assert arch["shared_experts"] == (family in ("qwen2_moe", "deepseek_v2", "deepseek_v3"))
    ids = [tok(t)["input_ids"] for t in TEXTS]
    batches = list(extraction.iter_batches(model, ids, ["a", "b", "c"], tok.pad_token_id, 2, routing="full"))
    probs = np.concatenate([b.probs for b in batches])
    assert probs.shape == (3, len(moe_layers), 4)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # the batches of two are padded and run without an attention mask: each sample's routing is
    # still the one it has alone
    batched = {sid: p for b in batches for sid, p in zip(b.sample_ids, b.probs, strict=True)}
    for sid, row in zip(["a", "b", "c"], ids, strict=True):
        (alone,) = extraction.iter_batches(model, [row], [sid], tok.pad_token_id, 1, routing="full")
        np.testing.assert_allclose(batched[sid], alone.probs[0], atol=1e-6, err_msg=sid)
    routers = extraction.router_weights(model)
    assert sorted(routers) == [f"layer{i}" for i in moe_layers]
    mats = np.stack([routers[f"layer{i}"].numpy() for i in moe_layers])
    c, mean_cos = pathways.consistency(probs, mats)
    assert np.isfinite(c).all()
    assert (np.abs(mean_cos) <= 1 + 1e-9).all()
    assert all(pathways.pathway(p, 0.7)[0] for p in probs)
    loss = np.concatenate([b.loss for b in batches])
    assert np.isfinite(loss).all()


@pytest.mark.parametrize("head_rows", [3, 256])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_is_the_cross_entropy_of_the_models_own_logits(family, head_rows, tok, monkeypatch):
    """On the CPU the output layer runs inside the loss, a few positions at a time (3: chunks that
    cut rows and padding apart); each sample's loss is still the mean cross-entropy of the logits
    that model(...) gives for it alone."""
    model = _model(family, tok)
    monkeypatch.setattr(extraction, "_HEAD_ROWS", head_rows)
    ids = [tok(t)["input_ids"] for t in TEXTS]
    batches = list(extraction.iter_batches(model, ids, ["a", "b", "c"], tok.pad_token_id, 2, routing="full"))
    got = {sid: float(loss) for b in batches for sid, loss in zip(b.sample_ids, b.loss, strict=True)}
    with torch.inference_mode():
        for sid, row in zip(["a", "b", "c"], ids, strict=True):
            logits = model(input_ids=torch.tensor([row]), use_cache=False).logits[0]
            expected = torch.nn.functional.cross_entropy(logits[:-1].float(), torch.tensor(row[1:]))
            assert got[sid] == pytest.approx(float(expected), abs=1e-5), sid


def test_deepseek_v3_uses_sigmoid_scores(tok):
    model = _model("deepseek_v3", tok)
    assert extraction.scoring(model) == "sigmoid"
    gate = model.model.layers[1].mlp.gate
    seen = {}

    def keep_input(_module, inputs, _output):
        seen["x"] = inputs[0].detach()

    handle = gate.register_forward_hook(keep_input)
    try:
        ids = tok(TEXTS[0])["input_ids"]
        out = next(extraction.iter_batches(model, [ids], ["a"], tok.pad_token_id, 1, routing="full"))
    finally:
        handle.remove()
    logits = seen["x"].reshape(-1, 32).float() @ gate.weight.detach().float().T
    sig = torch.sigmoid(logits)
    expected = (sig / sig.sum(-1, keepdim=True)).mean(0).numpy()
    np.testing.assert_allclose(out.probs[0, 0], expected, atol=1e-5)


def test_unknown_family_is_refused(tok):
    model = _model("olmoe", tok)
    model.config.model_type = "my_moe"
    with pytest.raises(ValueError, match=r"model type 'my_moe' is not a supported MoE family; supported: olmoe"):
        next(extraction.iter_batches(model, [[1, 2, 3]], ["a"], 0, 1))
