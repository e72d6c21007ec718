"""Test-set decontamination with Min-K%++ (Zhang et al. 2024, "Min-K%++: Improved baseline for
detecting pre-training data from large language models").

The paper drops the top 10% of each test set by Min-K%++ score before evaluation. For every
predicted position t of a text (every token but the first, which has no context),

    z_t = (log p(x_t | x_<t) - mu_t) / sigma_t,
    mu_t = E_{z ~ p(.|x_<t)}[log p(z | x_<t)],
    sigma_t = sqrt(E_{z ~ p(.|x_<t)}[(log p(z | x_<t) - mu_t)^2])

over the full vocabulary, and the score is the mean of the lowest k% of the z_t. A higher score
means the text looks more like something the model was trained on.

Choices where the method is silent (documented here, tested in tests/test_decontamination.py):

- k% of n predicted tokens is floor(k * n) tokens, at least one (the reference code's
  int(n * k), which for short texts can be zero and gives NaN).
- sigma_t is clamped below at 1e-12: a distribution that float32 softmax turns into an exact
  one-hot has sigma = 0, and then z_t = 0 for its argmax token instead of 0/0.
- A test item is scored as its prompt followed by its gold answer (see `item_text`): the
  contamination the method guards against is the item *with* its solution in the pretraining data.
- `select_clean` drops ceil(drop_fraction * n) items (at least the stated share: erring towards
  dropping one item too many is the conservative side for decontamination); among equal scores
  the item with the lower index is dropped first.
"""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from grokpath import io, tables
from grokpath.extraction import TokenRows, length_batches

log = logging.getLogger(__name__)

SIGMA_FLOOR = 1e-12

# The record `decontaminate` returns, one row per item; the workflow's table
# (tables.DECONTAMINATION_SCHEMA) adds the model, checkpoint, task and lm-eval doc_id to it.
RECORD_SCHEMA = pa.schema(
    [
        pa.field("item_index", pa.int64(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("dropped", pa.bool_(), nullable=False),
    ]
)


def n_lowest(n_tokens: int, k: float) -> int:
    """How many of `n_tokens` z-scores the mean is over: floor(k * n), at least one."""
    # The small slack keeps e.g. 0.29 * 100 = 28.999999999999996 at 29.
    return max(1, math.floor(k * n_tokens + 1e-9))


def token_z_scores(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """z_t for every position of a batch: logits [B, T, V] (position t predicts ids[:, t + 1]),
    ids [B, T] -> z [B, T - 1], in float32. Padding is not masked here."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    var = (p * (logp - mu.unsqueeze(-1)).square()).sum(-1)
    sigma = var.clamp_min(SIGMA_FLOOR**2).sqrt()
    target = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (target - mu) / sigma


def _lowest_k_mean(z: torch.Tensor, real: torch.Tensor, k: float) -> torch.Tensor:
    """Per row, the mean of the lowest k% of z over the real positions (real [B, T-1] bool)."""
    z = z.masked_fill(~real, math.inf)  # padding sorts last and is never among the lowest
    ordered = z.sort(dim=-1).values
    count = torch.floor(real.sum(-1).double() * k + 1e-9).clamp_min(1).long()  # as n_lowest
    take = torch.arange(z.shape[-1], device=z.device).unsqueeze(0) < count.unsqueeze(-1)
    return torch.where(take, ordered, 0.0).sum(-1) / count


def min_k_plus_plus(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    k: float = 0.2,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    max_tokens: int | None = None,
) -> np.ndarray:
    """Min-K%++ score of each text (float64 [len(texts)], in input order; higher = more likely seen
    in training).

    Texts are tokenized with `tokenizer` as-is (with its special tokens, e.g. a leading BOS, so the
    first real token is scored given BOS); a text longer than `max_tokens` tokens is truncated to
    its first `max_tokens`. Batches group similar lengths and are right-padded; the padding is
    masked, so a score does not depend on the batch it lands in. `device`: where to run (the model
    is moved there); None runs where the model already is.
    """
    _check_args(k, batch_size)
    ids = _tokenize(tokenizer, texts, max_tokens)
    return _scores(model, ids, _pad_id(tokenizer), k, batch_size, device)


def _check_args(k: float, batch_size: int) -> None:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def _tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int | None) -> TokenRows:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if not texts:
        raise ValueError("min_k_plus_plus: no texts to score")
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens must be at least 2 (one context and one scored token), got {max_tokens}")
    n_cut = 0

    def cut() -> Iterator[list[int]]:
        nonlocal n_cut
        for t in texts:
            row = list(tokenizer(t)["input_ids"])
            if max_tokens is not None and len(row) > max_tokens:
                n_cut += 1
            yield row[:max_tokens]

    ids = TokenRows.from_rows(cut())  # 4 bytes per token, not a Python list of every id
    if n_cut:
        log.info("min_k_plus_plus: %d of %d texts truncated to %d tokens", n_cut, len(ids), max_tokens)
    short = np.flatnonzero(ids.lengths < 2)
    if len(short):
        raise ValueError(f"texts need at least 2 tokens to score one; too short (indices): {short[:5].tolist()}")
    return ids


def _pad_id(tokenizer: Any) -> int:
    """Any id works (padding is masked); the tokenizer's pad token when it has one."""
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def _scores(
    model: torch.nn.Module,
    ids: TokenRows,
    pad_id: int,
    k: float,
    batch_size: int,
    device: str | torch.device | None,
) -> np.ndarray:
    if device is not None:
        model.to(device)
    run_on = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = np.empty(len(ids), dtype=np.float64)
    try:
        with torch.inference_mode():
            for idx in length_batches(ids.lengths, batch_size):
                batch, mask = ids.pad(idx, pad_id)
                batch, mask = batch.to(run_on), mask.to(run_on)
                logits = model(input_ids=batch, attention_mask=mask, use_cache=False).logits
                z = token_z_scores(logits, batch)
                scores[idx] = _lowest_k_mean(z, mask[:, 1:].bool(), k).double().cpu().numpy()
    finally:
        model.train(was_training)
    return scores


def _gold_answer(item: Mapping[str, Any], answer_field: str, choices_field: str) -> str:
    choices = item.get(choices_field)
    answer = item.get(answer_field)
    if answer is None and isinstance(item.get("label"), int):
        answer = item["label"]
    if isinstance(answer, int) and not isinstance(answer, bool):  # an index into the choices
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not 0 <= answer < len(choices):
            raise ValueError(f"answer index {answer} does not index the item's {choices_field!r}: {choices!r}")
        return str(choices[answer])
    if isinstance(answer, str):
        if (
            isinstance(choices, Sequence)
            and not isinstance(choices, str)
            and answer not in choices
            and len(answer) == 1
            and answer in string.ascii_uppercase[: len(choices)]
        ):  # a letter key ("B") naming one of the choices
            return str(choices[string.ascii_uppercase.index(answer)])
        return answer
    raise ValueError(f"test item has no gold answer (field {answer_field!r}); fields present: {sorted(item)}")


def item_text(
    item: Mapping[str, Any],
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    choices_field: str = "choices",
    sep: str = " ",
) -> str:
    """The text a test item is scored as: its prompt, `sep`, then its gold answer.

    The gold answer is `item[answer_field]` verbatim, except that an integer answer (or, with no
    answer field, an integer "label") indexes `item[choices_field]`, and a one-letter answer
    ("A", "B", ...) that is not itself one of the choices names the choice at that position.
    """
    prompt = item.get(prompt_field)
    if not isinstance(prompt, str):
        raise ValueError(f"test item has no string field {prompt_field!r}; fields present: {sorted(item)}")
    answer = _gold_answer(item, answer_field, choices_field)
    return f"{prompt}{sep}{answer}" if answer else prompt


def select_clean(scores: Sequence[float] | np.ndarray, drop_fraction: float = 0.1) -> np.ndarray:
    """Keep mask (bool [n]) that drops the ceil(drop_fraction * n) highest scores; among equal
    scores the item with the lower index is dropped first."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"select_clean: need a non-empty 1-d array of scores, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"select_clean: {int(np.isnan(s).sum())} scores are NaN")
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
    n_drop = math.ceil(drop_fraction * s.size - 1e-9)
    order = np.lexsort((np.arange(s.size), -s))  # highest score first, then lowest index
    keep = np.ones(s.size, dtype=bool)
    keep[order[:n_drop]] = False
    return keep


def decontaminate(
    rows: Sequence[Mapping[str, Any]],
    model: torch.nn.Module,
    tokenizer: Any,
    *,
    drop_fraction: float = 0.1,
    k: float = 0.2,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    max_tokens: int | None = None,
    sep: str = " ",
    answer_field: str = "answer",
) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """Score test items (see `item_text`) and drop the top `drop_fraction` by Min-K%++.

    Returns the kept rows (in their original order, unchanged) and the record: one row per item
    with its index in `rows`, its "item_id" (null when the item has none), the number of tokens
    scored from, its score and whether it was dropped (`RECORD_SCHEMA`).
    """
    if not rows:
        raise ValueError("decontaminate: the test set is empty")
    _check_args(k, batch_size)
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
    ids = _tokenize(tokenizer, [item_text(r, answer_field=answer_field, sep=sep) for r in rows], max_tokens)
    scores = _scores(model, ids, _pad_id(tokenizer), k, batch_size, device)
    keep = select_clean(scores, drop_fraction)
    n_tokens = [len(r) for r in ids]
    record = tables.frame(
        [
            {
                "item_index": i,
                "item_id": None if r.get("item_id") is None else str(r["item_id"]),
                "n_tokens": n,
                "score": float(s),
                "dropped": not bool(kp),
            }
            for i, (r, n, s, kp) in enumerate(zip(rows, n_tokens, scores, keep, strict=True))
        ],
        RECORD_SCHEMA,
    )
    kept = [dict(r) for r, kp in zip(rows, keep, strict=True) if kp]
    log.info("decontaminate: dropped %d of %d test items by Min-K%%++ (k=%g)", len(rows) - len(kept), len(rows), k)
    return kept, record


def decontaminate_jsonl(
    path: str | Path, model: torch.nn.Module, tokenizer: Any, **kwargs: Any
) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """`decontaminate` on a JSONL test set (one item object per line); keyword arguments as there."""
    rows = io.read_jsonl(path)
    if not rows:
        raise ValueError(f"{path}: the test set is empty")
    return decontaminate(rows, model, tokenizer, **kwargs)
