import copy

import numpy as np
import polars as pl
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from grokpath import extraction
from grokpath.samples import token_sha256

TEXTS = ["a b c", "1 + 2 = 3 4 5 a b", "d e", "f g h a b c d e f g h", "5 4 3 2 1"]


def _run(model, tok, batch_size, routing="full"):
    ids = [tok(t)["input_ids"] for t in TEXTS]
    sids = [f"s{i}" for i in range(len(TEXTS))]
    out = {}
    for b in extraction.iter_batches(model, ids, sids, tok.pad_token_id, batch_size, routing=routing):
        for k, sid in enumerate(b.sample_ids):
            out[sid] = (b.loss[k], b.n_tokens[k], None if b.probs is None else b.probs[k])
    return out


@pytest.mark.parametrize("routing", ["full", "topk"])
def test_padding_does_not_change_any_number(tiny_olmoe, routing):
    model, tok = tiny_olmoe
    alone = _run(model, tok, batch_size=1, routing=routing)
    batched = _run(model, tok, batch_size=5, routing=routing)
    for sid, (loss, n, probs) in alone.items():
        bl, bn, bp = batched[sid]
        assert n == bn
        assert bl == pytest.approx(loss, abs=1e-5)
        np.testing.assert_allclose(bp, probs, atol=1e-6)


def _manual_router_probs(model, ids, layer=0):
    """Layer `layer`'s per-token softmax over all experts, by hand from the router's input."""
    captured = {}
    gate = model.model.layers[layer].mlp.gate

    def keep_input(_module, inputs, _output):
        captured["x"] = inputs[0]

    handle = gate.register_forward_hook(keep_input)
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return torch.softmax(captured["x"].reshape(-1, gate.weight.shape[1]) @ gate.weight.detach().T, dim=-1)


def test_full_routing_matches_a_manual_softmax(tiny_olmoe):
    model, tok = tiny_olmoe
    res = _run(model, tok, batch_size=2)["s1"]
    # The router input of layer 0, through the router weight by hand: softmax, mean over tokens.
    probs = _manual_router_probs(model, tok(TEXTS[1])["input_ids"]).mean(0).numpy()
    np.testing.assert_allclose(res[2][0], probs, atol=1e-6)
    assert res[2].shape == (3, 4)
    np.testing.assert_allclose(res[2].sum(-1), 1.0, atol=1e-5)


def test_topk_weights_match_manual_top2_renormalised(tiny_olmoe):
    model, tok = tiny_olmoe
    assert not model.config.norm_topk_prob  # OLMoE mixes with the raw top-k softmax weights
    res = _run(model, tok, batch_size=2, routing="topk")["s1"]
    # Per token: the softmax's two largest weights, the others zero, scaled to sum to one.
    per_token = _manual_router_probs(model, tok(TEXTS[1])["input_ids"])
    top = per_token.topk(2, dim=-1)
    sparse = torch.zeros_like(per_token).scatter_(-1, top.indices, top.values / top.values.sum(-1, keepdim=True))
    np.testing.assert_allclose(res[2][0], sparse.mean(0).numpy(), atol=1e-6)
    assert not np.allclose(res[2][0], per_token.mean(0).numpy(), atol=1e-3)  # not the full softmax
    np.testing.assert_allclose(res[2].sum(-1), 1.0, atol=1e-5)


def test_loss_equals_model_loss(tiny_olmoe):
    model, tok = tiny_olmoe
    ids = tok(TEXTS[3])["input_ids"]
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert _run(model, tok, batch_size=3)["s3"][0] == pytest.approx(ref, abs=1e-5)


def test_router_weights_per_moe_layer(tiny_olmoe):
    model, _ = tiny_olmoe
    w = extraction.router_weights(model)
    assert sorted(w) == ["layer0", "layer1", "layer2"]
    assert w["layer0"].shape == (4, 32)


def test_model_without_moe_names_supported_families():
    cfg = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    with pytest.raises(ValueError, match="supported families: olmoe"):
        extraction.moe_gates(LlamaForCausalLM(cfg))


@pytest.mark.parametrize("scale", [1.0, 300.0, -300.0])
def test_loss_of_the_output_layer_run_inside_it_is_exact(tiny_olmoe, scale, monkeypatch):
    """The output layer runs inside the loss, 3 positions at a time into buffers reused across
    chunks and batches; logits large enough to overflow exp (or every one far below zero) take
    cross-entropy. Each sample's loss is the cross-entropy of model(...)'s own logits."""
    model, tok = tiny_olmoe
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)
        if scale < 0:  # every logit of a row far below zero: sums of exp underflow
            model.lm_head.weight.sub_(model.lm_head.weight.abs().max() * 2)
    monkeypatch.setattr(extraction, "_HEAD_ROWS", 3)
    got = _run(model, tok, batch_size=2, routing=None)
    with torch.inference_mode():
        for i, text in enumerate(TEXTS):
            row = tok(text)["input_ids"]
            logits = model(input_ids=torch.tensor([row]), use_cache=False).logits[0]
            expected = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(row[1:]))
            assert np.isfinite(got[f"s{i}"][0])
            assert got[f"s{i}"][0] == pytest.approx(float(expected), rel=1e-5, abs=1e-4)


def test_loss_of_a_bf16_model_is_that_of_its_own_logits(tiny_olmoe, monkeypatch):
    """In bf16 the output layer's logits are computed in bf16 and taken to float32 for the loss
    (a second buffer), as the float32 copy of model(...)'s bf16 logits was."""
    model, tok = tiny_olmoe
    model = copy.deepcopy(model).to(torch.bfloat16)
    monkeypatch.setattr(extraction, "_HEAD_ROWS", 3)
    got = _run(model, tok, batch_size=2, routing="full")
    with torch.inference_mode():
        for i, text in enumerate(TEXTS):
            row = tok(text)["input_ids"]
            logits = model(input_ids=torch.tensor([row]), use_cache=False).logits[0].float()
            expected = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(row[1:]))
            assert got[f"s{i}"][0] == pytest.approx(float(expected), rel=2e-2)


def test_a_model_whose_logits_are_not_its_output_layers_keeps_them(tiny_olmoe):
    """Only the supported families' output layer runs inside the loss; any other model's loss is
    read from the logits its own forward returns (here a dense Llama, routing not captured)."""
    model, tok = tiny_olmoe
    assert extraction._output_layer(model) is model.lm_head
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    torch.manual_seed(0)
    dense = LlamaForCausalLM(cfg).eval()
    assert extraction._output_layer(dense) is None
    row = tok(TEXTS[1])["input_ids"]
    (batch,) = extraction.iter_batches(dense, [row], ["s"], tok.pad_token_id, 1, routing=None)
    with torch.inference_mode():
        logits = dense(input_ids=torch.tensor([row])).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(row[1:]))
    assert batch.loss[0] == pytest.approx(float(expected), abs=1e-5)


def test_tokenizer_mismatch_is_refused(tiny_olmoe):
    _, tok = tiny_olmoe
    good = token_sha256(tok("a b")["input_ids"])
    assert extraction.tokenize_checked(tok, ["a b"], ["s"], [good], "m/c").tolist() == [tok("a b")["input_ids"]]
    with pytest.raises(ValueError, match=r"checkpoint m/c: its tokenizer gives different token ids"):
        extraction.tokenize_checked(tok, ["a c"], ["s"], [good], "m/c")


def test_length_batches_group_similar_lengths():
    batches = extraction.length_batches([5, 1, 4, 2, 3], 2)
    assert [b.tolist() for b in batches] == [[0], [4, 2], [1, 3]]  # longest first


def test_pad_batch_right_pads_and_masks():
    ids, mask = extraction.pad_batch([[5, 6, 7], [8], [9, 10]], -100)
    assert ids.tolist() == [[5, 6, 7], [8, -100, -100], [9, 10, -100]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert ids.dtype == mask.dtype == torch.long


def test_token_rows_hold_the_rows_across_parts(monkeypatch):
    monkeypatch.setattr(extraction, "_PART_TOKENS", 4)  # rows split over several int32 parts
    rows = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [], [70000, 2]]
    held = extraction.TokenRows.from_rows(iter(rows))  # one pass: a generator is enough
    assert held.tolist() == rows
    assert len(held) == 5
    assert held.lengths.tolist() == [3, 1, 5, 0, 2]
    assert held.ids.dtype == np.int32


def test_token_rows_pad_as_pad_batch_does():
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 50_000, int(n)).tolist() for n in rng.integers(1, 12, 40)]
    held = extraction.TokenRows.from_rows(rows)
    for idx in (np.arange(40), np.array([7, 3, 30]), np.array([12])):
        ids, mask = held.pad(idx, -100)
        want_ids, want_mask = extraction.pad_batch([rows[i] for i in idx], -100)
        assert torch.equal(ids, want_ids)
        assert torch.equal(mask, want_mask)
        assert ids.dtype == mask.dtype == torch.long


def test_token_rows_and_lists_extract_the_same(tiny_olmoe):
    model, tok = tiny_olmoe
    lists = [tok(t)["input_ids"] for t in TEXTS]
    sids = [f"s{i}" for i in range(len(TEXTS))]
    held = list(extraction.iter_batches(model, extraction.TokenRows.from_rows(lists), sids, tok.pad_token_id, 2))
    plain = list(extraction.iter_batches(model, lists, sids, tok.pad_token_id, 2))
    for a, b in zip(held, plain, strict=True):
        assert a.sample_ids == b.sample_ids
        np.testing.assert_array_equal(a.loss, b.loss)
        np.testing.assert_array_equal(a.probs, b.probs)
    with pytest.raises(ValueError, match="5 token rows for 4 sample ids"):
        next(extraction.iter_batches(model, lists, sids[:4], tok.pad_token_id, 2))


def test_tokenize_checked_reads_table_columns(tiny_olmoe):
    _, tok = tiny_olmoe
    df = pl.DataFrame({"text": TEXTS, "sha": [token_sha256(tok(t)["input_ids"]) for t in TEXTS]})
    rows = extraction.tokenize_checked(tok, df["text"], [f"s{i}" for i in range(5)], df["sha"], "m/c")
    assert rows.tolist() == [tok(t)["input_ids"] for t in TEXTS]
    bad = df.with_columns(pl.Series("sha", [*df["sha"][:3], "x", "y"]))
    with pytest.raises(ValueError, match=r"for 2 of 5 samples \(first: \['s3', 's4'\]\)"):
        extraction.tokenize_checked(tok, bad["text"], [f"s{i}" for i in range(5)], bad["sha"], "m/c")


@pytest.mark.parametrize("n_experts", [4, 8, 16, 40])
def test_softmax_matches_torch_for_few_and_many_experts(n_experts):
    logits = torch.randn(50, n_experts, generator=torch.Generator().manual_seed(n_experts)) * 5
    torch.testing.assert_close(extraction._softmax(logits), torch.softmax(logits, -1), atol=1e-7, rtol=1e-6)


def test_loss_in_chunks_of_rows_is_the_same(tiny_olmoe, monkeypatch):
    model, tok = tiny_olmoe
    whole = _run(model, tok, batch_size=5)
    monkeypatch.setattr(extraction, "_LOSS_CHUNK", 1)  # one row per cross-entropy call
    chunked = _run(model, tok, batch_size=5)
    for sid, (loss, n, probs) in whole.items():
        assert chunked[sid][0] == pytest.approx(loss, abs=1e-6)
        assert chunked[sid][1] == n
        np.testing.assert_array_equal(chunked[sid][2], probs)


@pytest.mark.parametrize("pad_value", [float("inf"), float("nan"), 1e30])
def test_sample_loss_ignores_pads_and_the_last_position_whatever_their_logits(pad_value):
    """Only positions whose next token is real enter the mean; a pad's (or a last position's)
    logits, finite or not, change nothing."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, 11, generator=g)
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0], [9, 10, 0, 0, 0]])
    mask = (ids > 0).long()
    expected = torch.stack(
        [
            torch.nn.functional.cross_entropy(logits[i, : n - 1], ids[i, 1:n]).float()
            for i, n in enumerate(mask.sum(1).tolist())
        ]
    )
    spoiled = logits.clone()
    for i, n in enumerate(mask.sum(1).tolist()):
        spoiled[i, n - 1 :] = pad_value
    for x in (logits, spoiled):
        torch.testing.assert_close(extraction._sample_loss(x, ids, mask), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("routing", ["full", "topk"])
def test_capture_reduced_layer_by_layer_is_the_same(tiny_olmoe, monkeypatch, routing):
    """Router outputs are held and reduced for all layers at once after the pass; a model whose
    held logits pass the bound is reduced as it goes, with the same numbers."""
    model, tok = tiny_olmoe
    together = _run(model, tok, batch_size=5, routing=routing)
    monkeypatch.setattr(extraction, "_HOLD", 1)  # reduce inside every hook
    one_by_one = _run(model, tok, batch_size=5, routing=routing)
    for sid, (loss, n, probs) in together.items():
        assert one_by_one[sid][0] == loss
        assert one_by_one[sid][1] == n
        np.testing.assert_allclose(one_by_one[sid][2], probs, rtol=0, atol=1e-7)


@pytest.mark.parametrize(("scale", "shift"), [(5.0, 0.0), (5.0, 120.0), (5.0, -150.0), (60.0, 0.0)])
def test_fast_softmax_and_nll_match_torch_where_exp_overflows_or_underflows(scale, shift):
    """The CPU fast paths skip the max subtraction; logits that would overflow or underflow exp
    fall back to the exact forms, so every result equals torch's."""
    g = torch.Generator().manual_seed(1)
    few = torch.randn(4, 50, 8, generator=g) * scale + shift
    torch.testing.assert_close(extraction._softmax(few), torch.softmax(few, -1), atol=1e-7, rtol=1e-6)
    logits = torch.randn(60, 300, generator=g) * scale + shift
    targets = torch.randint(0, 300, (60,), generator=g)
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(extraction._token_nll(logits, targets), expected, atol=1e-4, rtol=1e-5)


def test_each_batch_is_handed_over_after_the_next_one_was_launched(tiny_olmoe):
    """The pipelining a GPU needs: batch i reaches the caller once batch i+1's forward pass was
    launched (the last one after the loop), every batch once, longest first, with its own numbers."""
    model, tok = tiny_olmoe
    forwards = []
    # on the base model: on the CPU the output layer runs inside the loss, not in model(...)
    handle = model.model.register_forward_hook(lambda *_: forwards.append(1))
    ids = [tok(t)["input_ids"] for t in TEXTS]
    sids = [f"s{i}" for i in range(len(TEXTS))]
    try:
        seen = [
            (len(forwards), b.sample_ids)
            for b in extraction.iter_batches(model, ids, sids, tok.pad_token_id, 2, routing="full")
        ]
    finally:
        handle.remove()
    # longest batches first (the allocator's memory stays that of the first batch)
    order = [[sids[i] for i in idx] for idx in extraction.length_batches([len(r) for r in ids], 2)]
    assert [s for _, s in seen] == order
    widths = [max(len(ids[sids.index(s)]) for s in batch) for _, batch in seen]
    assert widths == sorted(widths, reverse=True)
    assert [n for n, _ in seen] == [2, 3, 3]  # 3 batches: the last is handed over after the loop
    one_by_one = _run(model, tok, batch_size=1)
    for sid, (loss, _, probs) in _run(model, tok, batch_size=2).items():
        assert loss == pytest.approx(one_by_one[sid][0], abs=1e-5)
        np.testing.assert_allclose(probs, one_by_one[sid][2], atol=1e-6)
