import math

import numpy as np
import pytest
import torch
from conftest import random_olmoe

from grokpath import decontamination as dc
from grokpath import io, tables
from grokpath.tokenizer import train_word_tokenizer

TEXTS = ["a b c", "1 + 2 = 3 4 5 a b", "d e", "f g h a b c d e f g h", "5 4 3 2 1", "h"]


def reference_score(model, tok, text: str, k: float) -> float:
    """Min-K%++ the obvious way: one token at a time, in float64, straight from the definition."""
    ids = tok(text)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    z = []
    for t in range(1, len(ids)):
        logp = torch.log_softmax(logits[t - 1], dim=-1).tolist()
        mu = sum(math.exp(lp) * lp for lp in logp)
        sigma = math.sqrt(sum(math.exp(lp) * (lp - mu) ** 2 for lp in logp))
        z.append((logp[ids[t]] - mu) / sigma)
    lowest = sorted(z)[: max(1, int(len(z) * k))]
    return sum(lowest) / len(lowest)


@pytest.mark.parametrize("k", [0.2, 0.5, 1.0])
def test_matches_a_per_token_reference(tiny_olmoe, k):
    model, tok = tiny_olmoe
    scores = dc.min_k_plus_plus(model, tok, TEXTS, k=k, batch_size=4)
    expected = [reference_score(model, tok, t, k) for t in TEXTS]
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


def test_scores_do_not_depend_on_the_batch(tiny_olmoe):
    model, tok = tiny_olmoe
    alone = dc.min_k_plus_plus(model, tok, TEXTS, batch_size=1)
    for bs in (2, 3, 16):
        np.testing.assert_allclose(dc.min_k_plus_plus(model, tok, TEXTS, batch_size=bs), alone, atol=1e-5, rtol=0)
    # Input order is kept whatever order the length-sorted batches run in.
    np.testing.assert_allclose(dc.min_k_plus_plus(model, tok, TEXTS[::-1], batch_size=3), alone[::-1], atol=1e-5)


def test_k_edge_cases(tiny_olmoe):
    model, tok = tiny_olmoe
    text = "f g h a b c d e f g h"  # BOS + 11 words: 11 scored tokens
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        z = np.sort(dc.token_z_scores(model(input_ids=ids).logits, ids)[0].numpy())
    assert len(z) == 11
    assert dc.min_k_plus_plus(model, tok, [text], k=1.0)[0] == pytest.approx(z.mean(), abs=1e-5)
    assert dc.min_k_plus_plus(model, tok, [text], k=0.01)[0] == pytest.approx(z[0], abs=1e-5)  # at least one
    assert dc.min_k_plus_plus(model, tok, [text], k=0.2)[0] == pytest.approx(z[:2].mean(), abs=1e-5)  # floor(2.2)
    # One scored token: every k gives that token's z.
    one = [dc.min_k_plus_plus(model, tok, ["h"], k=k)[0] for k in (0.01, 0.2, 1.0)]
    assert one == pytest.approx([one[0]] * 3)
    assert [dc.n_lowest(n, k) for n, k in [(100, 0.29), (4, 0.2), (10, 0.2), (5, 1.0), (1, 0.2)]] == [29, 1, 2, 5, 1]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="k must be"):
            dc.min_k_plus_plus(model, tok, TEXTS, k=bad)


def test_max_tokens_truncates(tiny_olmoe):
    model, tok = tiny_olmoe
    long, prefix = "f g h a b c d e f g h", "f g h a"
    assert dc.min_k_plus_plus(model, tok, [long], max_tokens=5)[0] == pytest.approx(
        dc.min_k_plus_plus(model, tok, [prefix])[0], abs=1e-6
    )
    with pytest.raises(ValueError, match="at least 2"):
        dc.min_k_plus_plus(model, tok, [long], max_tokens=1)


def test_bad_input_is_refused(tiny_olmoe):
    model, tok = tiny_olmoe
    with pytest.raises(ValueError, match="no texts"):
        dc.min_k_plus_plus(model, tok, [])
    with pytest.raises(TypeError, match="not one string"):
        dc.min_k_plus_plus(model, tok, "a b c")
    with pytest.raises(ValueError, match=r"too short \(indices\): \[1\]"):
        dc.min_k_plus_plus(model, tok, ["a b", ""])  # "" is only BOS: nothing to score
    with pytest.raises(ValueError, match="batch_size"):
        dc.min_k_plus_plus(model, tok, TEXTS, batch_size=0)


def test_peaked_distribution_gives_finite_z():
    logits = torch.full((1, 3, 5), -1e4)
    logits[..., 2] = 0.0  # float32 softmax is exactly one-hot: sigma = 0
    ids = torch.tensor([[0, 2, 1]])
    z = dc.token_z_scores(logits, ids)[0]
    assert z[0].item() == 0.0  # the argmax token sits at the mean
    assert z[1].item() < -1e6  # any other token is far below it, not NaN


WORDS = [f"w{i}" for i in range(40)]
SEEN = "w3 w17 w8 w25 w31 w0 w12 w9 w38 w21 w5 w14 w27 w33 w2 w19"


def _unseen(n: int) -> list[str]:
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=16)) for _ in range(n)]


@pytest.fixture(scope="module")
def memorized():
    """A tiny OLMoE trained for 80 steps on one sentence (a few seconds on CPU)."""
    tok = train_word_tokenizer([" ".join(WORDS)])
    model = random_olmoe(tok, hidden=32, layers=2, seed=1)
    before = dc.min_k_plus_plus(model, tok, [SEEN])[0]
    ids = torch.tensor([tok(SEEN)["input_ids"]])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        opt.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    model.eval()
    return model, tok, before


def test_memorized_text_scores_higher_than_unseen(memorized):
    model, tok, before = memorized
    scores = dc.min_k_plus_plus(model, tok, [SEEN, *_unseen(8)], batch_size=4)
    assert scores[0] > before
    assert scores[0] > scores[1:].max() + 1.0


def test_select_clean_counts_and_ties():
    assert (~dc.select_clean(np.arange(10.0))).sum() == 1
    assert list(np.flatnonzero(~dc.select_clean(np.arange(10.0)))) == [9]
    assert (~dc.select_clean(np.arange(11.0))).sum() == 2  # ceil(1.1)
    assert (~dc.select_clean(np.arange(20.0))).sum() == 2
    assert (~dc.select_clean(np.arange(30.0), 0.1)).sum() == 3  # 0.1 * 30 = 3.0000000000000004
    assert dc.select_clean([1.0, 2.0], 0.0).all()
    ties = [1.0, 3.0, 3.0, 0.0, 3.0]
    assert list(dc.select_clean(ties, 0.2)) == [True, False, True, True, True]  # lowest index first
    assert list(dc.select_clean(ties, 0.4)) == [True, False, False, True, True]
    for bad in ([], [1.0, float("nan")]):
        with pytest.raises(ValueError, match=r"non-empty|NaN"):
            dc.select_clean(bad)
    for frac in (-0.1, 1.0):
        with pytest.raises(ValueError, match="drop_fraction"):
            dc.select_clean([1.0], frac)


def test_item_text():
    assert dc.item_text({"prompt": "2 + 2 =", "answer": "4"}) == "2 + 2 = 4"
    assert dc.item_text({"prompt": "q", "answer": 1, "choices": ["x", "y"]}) == "q y"
    assert dc.item_text({"prompt": "q", "label": 0, "choices": ["x", "y"]}) == "q x"
    assert dc.item_text({"prompt": "q", "answer": "B", "choices": ["x", "y"]}) == "q y"
    assert dc.item_text({"prompt": "q", "answer": "B", "choices": ["A", "B"]}) == "q B"  # a choice itself
    assert dc.item_text({"prompt": "def f():", "answer": "\n    return 1"}, sep="") == "def f():\n    return 1"
    with pytest.raises(ValueError, match="'prompt'"):
        dc.item_text({"question": "q", "answer": "a"})
    with pytest.raises(ValueError, match="no gold answer"):
        dc.item_text({"prompt": "q"})
    with pytest.raises(ValueError, match="does not index"):
        dc.item_text({"prompt": "q", "answer": 5, "choices": ["x"]})


def test_decontaminate_drops_the_memorized_item(memorized, tmp_path):
    model, tok, _ = memorized
    words = SEEN.split()
    seen = {"item_id": "seen", "prompt": " ".join(words[:10]), "answer": " ".join(words[10:])}
    rows = [
        {"item_id": f"u{i}", "prompt": t[: t.rindex(" ")], "answer": t.split()[-1]} for i, t in enumerate(_unseen(9))
    ]
    rows.insert(4, seen)
    io.write_jsonl(tmp_path / "test.jsonl", rows)
    kept, record = dc.decontaminate_jsonl(tmp_path / "test.jsonl", model, tok, batch_size=3)
    assert kept == [r for r in rows if r["item_id"] != "seen"]
    assert record["item_index"].to_list() == list(range(10))
    assert record.filter(record["dropped"])["item_id"].to_list() == ["seen"]
    assert record["n_tokens"].to_list() == [len(tok(dc.item_text(r))["input_ids"]) for r in rows]
    np.testing.assert_allclose(
        record["score"].to_numpy(), dc.min_k_plus_plus(model, tok, [dc.item_text(r) for r in rows]), atol=1e-6
    )
    tables.to_arrow(record, dc.RECORD_SCHEMA)  # exactly the schema
    io.write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(ValueError, match="empty"):
        dc.decontaminate_jsonl(tmp_path / "empty.jsonl", model, tok)
