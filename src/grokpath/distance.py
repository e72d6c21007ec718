"""Pathway distance: Levenshtein distance between pathway strings, averaged over sample pairs.

All pairs go through rapidfuzz's bit-parallel `cdist` across cores; above `max_pairs` a seeded
random subset of pairs goes through `cpdist`. No Python loop touches a pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from grokpath.pathways import EXPERT_SEP, LAYER_SEP, parse

LEVELS = ("char", "token")
# Token level: each expert id becomes one private-use character, the layer boundary another, so
# the same fast string kernel computes an edit distance over expert symbols.
_TOKEN_BASE = 0xE000
_TOKEN_LAYER = "\u0001"


def encode(pathway: str, level: str) -> str:
    if level == "char":
        return pathway
    if level == "token":
        return _TOKEN_LAYER.join("".join(chr(_TOKEN_BASE + e) for e in layer) for layer in parse(pathway))
    raise ValueError(f"distance level must be one of {LEVELS}, got {level!r}")


def layer_strings(pathway: str, layer: int, level: str) -> str:
    part = pathway.split(LAYER_SEP)[layer]
    if level == "token":
        return "".join(chr(_TOKEN_BASE + int(e)) for e in part.split(EXPERT_SEP))
    return part


def n_pairs(n: int) -> int:
    return n * (n - 1) // 2


def mean_pairwise(
    strings: Sequence[str], max_pairs: int | None = None, seed: int = 0, workers: int = -1
) -> tuple[int, float | None]:
    """Mean Levenshtein distance over unordered pairs i<j: all of them, or a seeded subset.

    Returns (number of pairs used, mean); the mean is None for fewer than two strings.
    """
    n = len(strings)
    total = n_pairs(n)
    if total == 0:
        return 0, None
    if max_pairs is None or total <= max_pairs:
        matrix = process.cdist(strings, strings, scorer=Levenshtein.distance, dtype=np.int32, workers=workers)
        upper = np.triu_indices(n, k=1)
        return total, float(matrix[upper].astype(np.float64).mean())
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=max_pairs, replace=False)
    i, j = _unrank_pairs(flat, n)
    a = [strings[k] for k in i]
    b = [strings[k] for k in j]
    d = process.cpdist(a, b, scorer=Levenshtein.distance, dtype=np.int32, workers=workers)
    return max_pairs, float(np.asarray(d, dtype=np.float64).mean())


def _unrank_pairs(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map indices in [0, n(n-1)/2) to pairs (i, j), i < j, in row-major upper-triangle order."""
    k = flat.astype(np.int64)
    # Closed-form inverse of the triangular numbering (exact in float64 for n up to ~10^7).
    i = n - 2 - np.floor(np.sqrt(-8 * k + 4 * n * (n - 1) - 7) / 2.0 - 0.5).astype(np.int64)
    j = k + i + 1 - n * (n - 1) // 2 + (n - i) * (n - i - 1) // 2
    return i, j
