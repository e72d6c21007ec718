"""The frozen sample manifest: which texts each stage measures, and the token ids they must have.

Sources: "pretrain" (the embedded series' own generated data: the samples are a seeded subset of
what the model trained on) and "jsonl" (local files with one {"text": ...} object per line).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grokpath import io, tables

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

SOURCES = ("pretrain", "jsonl")
SPLITS = ("samples", "validation")


# What to do with samples longer than extraction.max_tokens.
TOO_LONG = ("refuse", "truncate")


def token_sha256(ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(str(int(i)) for i in ids).encode()).hexdigest()


def read_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """Texts from a JSONL file; an empty file or a row without a string `text_field` is an error."""
    rows = io.read_jsonl(path)
    if not rows:
        raise ValueError(f"{path}: no samples (the file is empty)")
    texts = []
    for lineno, row in enumerate(rows, 1):
        value = row.get(text_field) if isinstance(row, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}: row {lineno} has no non-empty string field {text_field!r}")
        texts.append(value)
    return texts


def select(texts: list[str], n: int, seed: int, what: str) -> list[int]:
    """A seeded selection of n distinct indices (sorted), or all of them when n >= len(texts)."""
    if n <= 0:
        raise ValueError(f"{what}: the number of samples must be positive, got {n}")
    if n >= len(texts):
        if n > len(texts):
            log.warning("%s: asked for %d samples, only %d exist; using all", what, n, len(texts))
        return list(range(len(texts)))
    return sorted(np.random.default_rng(seed).choice(len(texts), size=n, replace=False).tolist())


def build_manifest(
    texts: list[str],
    tokenizer: object,
    model: str,
    domain: str,
    split: str,
    n: int,
    seed: int,
    max_tokens: int,
    too_long: str = "refuse",
) -> pl.DataFrame:
    """Select, tokenize and hash. Samples over `max_tokens` are refused with a count, or with
    `too_long="truncate"` cut to their first `max_tokens` tokens (the hash is of the cut ids, and
    extraction cuts the same way)."""
    if too_long not in TOO_LONG:
        raise ValueError(f"too_long must be one of {TOO_LONG}, got {too_long!r}")
    if n > len(texts):  # fewer samples than configured would change every group size silently
        key = "n_samples" if split == "samples" else "n_validation"
        raise ValueError(
            f"{domain}/{split}: domains.{domain}.{key} is {n}, but the source has only {len(texts)} texts; "
            f"allowed: at most {len(texts)}"
        )
    picked = select(texts, n, seed, f"{domain}/{split}")
    rows = []
    over = []
    short = []
    for i in picked:
        ids = list(tokenizer(texts[i])["input_ids"])  # type: ignore[operator]
        sid = f"{domain}-{split}-{i:06d}"
        if len(ids) < 2:
            short.append(sid)
        if len(ids) > max_tokens:
            over.append(sid)
            if too_long == "truncate":
                ids = ids[:max_tokens]
        rows.append(
            {
                "model": model,
                "domain": domain,
                "split": split,
                "sample_id": sid,
                "text": texts[i],
                "n_tokens": len(ids),
                "token_sha256": token_sha256(ids),
            }
        )
    if short:  # refused here, not at every checkpoint's extraction
        raise ValueError(
            f"{domain}/{split}: {len(short)} of {len(rows)} samples have fewer than 2 tokens, so no next-token loss "
            f"(first: {short[:3]}); every sample needs at least 2 tokens"
        )
    if over and too_long == "refuse":
        raise ValueError(
            f"{domain}/{split}: {len(over)} of {len(rows)} samples exceed max_tokens={max_tokens} "
            f"(first: {over[:3]}); raise extraction.max_tokens, shorten the samples or set "
            f"extraction.too_long: truncate"
        )
    if over:
        log.warning(
            "%s/%s: %d of %d samples cut to their first %d tokens (extraction.too_long: truncate)",
            domain,
            split,
            len(over),
            len(rows),
            max_tokens,
        )
    return tables.frame(rows, tables.SAMPLES_SCHEMA)
