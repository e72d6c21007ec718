"""Pathway distance: Levenshtein distance between pathway strings, averaged over sample pairs.

Large sets of pairs (all pairs of a paper-sized group, a seeded subset of them, two domains' pairs,
each string against the others) go through `levenshtein`, the bit-parallel kernel run for 32
patterns at once across cores, about 3x faster than rapidfuzz's one-pair kernel on paper-sized
pathways (benchmarks/pathway_distance.py); each pair is computed once, exactly, and memory stays at
one block of 32 rows per thread. Small sets, whose time would not pay for loading numba (`_lanes`), and
strings with more than 256 distinct characters (token level past 255 experts) take rapidfuzz:
`cdist` one block of rows at a time, `cpdist` for listed pairs. The results are the same integers
either way. No Python loop touches a pair.

rapidfuzz gets a `score_hint` for long strings, the largest distance of a fixed sample of pairs:
it then prunes the bit-parallel blocks that cannot lie on a path that short, about 1.5x faster.
The result is exact whatever the hint: the few pairs farther apart are recomputed with the hint
doubled (cheaper than a wider band for every pair).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TypeVar

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from grokpath.pathways import EXPERT_SEP, LAYER_SEP, parse

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def _workers(workers: int) -> int:
    """`workers`, or below 1 the CPUs this process may run on: rapidfuzz's -1 takes every CPU of
    the machine, while a SLURM job (or `taskset`) is confined to the CPUs it was given."""
    if workers >= 1:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# The lane kernel costs about 0.35 s once per process, on one thread (importing numba and loading
# the compiled kernel from its cache; about 1 s more to compile it on a machine's first use). It
# pays from about this much work per thread, pairs x characters x 64-bit words (rapidfuzz: ~1.2 ns
# each on paper-sized pathways), so the small sets of the embedded default never load it.
_LANES_MIN_WORK = 2.5e8
_lanes_failed = False


def _lanes(strings: Sequence[str], pairs: int, workers: int) -> ModuleType | None:
    """`levenshtein` when `pairs` pairs of `strings` are worth its fixed cost on `workers` threads,
    or it is loaded already (the per-layer distances after a group's); None: rapidfuzz, also where
    numba cannot load (no writable cache folder). Only speed depends on it."""
    global _lanes_failed
    if _lanes_failed:
        return None
    if "grokpath.levenshtein" not in sys.modules:
        longest = max(map(len, strings), default=0)
        if pairs * longest * max(1, -(-longest // 64)) < _LANES_MIN_WORK * workers:
            return None
    try:
        return importlib.import_module("grokpath.levenshtein")
    except (ImportError, RuntimeError) as error:  # numba: "cannot cache function ... no locator available"
        _lanes_failed = True
        log.warning("pathway distance: the lane kernel cannot load (%s); rapidfuzz computes every pair", error)
        return None


def _on_lanes(strings: Sequence[str], pairs: int, workers: int, run: Callable[[ModuleType, int], T]) -> T | None:
    """`run(levenshtein, threads)` where `_lanes` gives the lane kernel `pairs` pairs of `strings`,
    else None: the caller's rapidfuzz path computes them (as it does where `run` returns None)."""
    threads = _workers(workers)
    lanes = _lanes(strings, pairs, threads)
    return run(lanes, threads) if lanes else None


def _kernel(workers: int, hint: int | None) -> dict:
    """The keyword arguments of every cdist / cpdist call: exact integer Levenshtein distances on
    `_workers(workers)` threads, banded by `hint` (see `score_hint`)."""
    return {"scorer": Levenshtein.distance, "dtype": np.int32, "workers": _workers(workers), "score_hint": hint}


def _block_rows(workers: int) -> int:
    """Rows per cdist call: enough to keep every worker busy (cdist splits the rows among them)."""
    return max(256, 8 * _workers(workers))


# Strings up to one machine word take rapidfuzz's single-word kernel, which has no band to prune.
_HINT_MIN_LENGTH = 64
_HINT_SAMPLE = 256  # its largest distance is about the 99.6th percentile, near the fastest hint


def score_hint(strings: Sequence[str]) -> int | None:
    """A distance at or above nearly every pair's: the largest of a fixed sample of pairs; None for
    short strings. Only speed depends on it: a pair farther apart gets a second, wider pass."""
    n = len(strings)
    if n < 2 or max(len(s) for s in strings) <= _HINT_MIN_LENGTH:
        return None
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, size=_HINT_SAMPLE)
    j = (i + rng.integers(1, n, size=_HINT_SAMPLE)) % n  # j != i
    d = process.cpdist([strings[k] for k in i], [strings[k] for k in j], scorer=Levenshtein.distance, workers=1)
    return int(np.max(d))


def sum_upper_triangle(strings: Sequence[str], workers: int = -1) -> int:
    """Sum of the Levenshtein distances over all unordered pairs i < j (exact, integer)."""
    strings = list(strings)
    sums = _on_lanes(strings, n_pairs(len(strings)), workers, lambda lanes, t: lanes.pair_sums(strings, t))
    if sums is not None:
        return int(sums.sum()) // 2  # each pair is in the sums of both its strings
    return rapidfuzz_upper_triangle(strings, workers, hint=score_hint(strings))


def rapidfuzz_upper_triangle(
    strings: Sequence[str], workers: int = -1, rows: int | None = None, hint: int | None = None
) -> int:
    """`sum_upper_triangle` through rapidfuzz's cdist, a block of `rows` rows at a time: the block
    against itself (cdist of one list with itself computes each unordered pair once) and against
    the rows after it."""
    strings = list(strings)
    n = len(strings)
    rows = rows or _block_rows(workers)
    kwargs = _kernel(workers, hint)
    total = 0
    for r0 in range(0, n, rows):
        block = strings[r0 : r0 + rows]
        # the same list object as queries and choices: rapidfuzz computes one triangle and mirrors it
        square = process.cdist(block, block, **kwargs)
        total += int(np.triu(square, k=1).sum(dtype=np.int64))
        if r0 + rows < n:
            rest = process.cdist(block, strings[r0 + rows :], **kwargs)
            total += int(rest.sum(dtype=np.int64))
    return total


def mean_pairwise(
    strings: Sequence[str], max_pairs: int | None = None, seed: int = 0, workers: int = -1
) -> tuple[int, float | None]:
    """Mean Levenshtein distance over unordered pairs i<j: all of them, or a seeded subset.

    Returns (number of pairs used, mean); the mean is None for fewer than two strings.
    """
    strings = list(strings)
    n = len(strings)
    total = n_pairs(n)
    if total == 0:
        return 0, None
    if max_pairs is None or total <= max_pairs:
        return total, sum_upper_triangle(strings, workers) / total
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=max_pairs, replace=False)
    i, j = _unrank_pairs(flat, n)
    return max_pairs, float(_listed_pairs(strings, i, j, workers).mean(dtype=np.float64))


def mean_cross(
    a: Sequence[str], b: Sequence[str], max_pairs: int | None = None, seed: int = 0, workers: int = -1
) -> tuple[int, float | None]:
    """Mean Levenshtein distance over every pair (x, y), x in `a`, y in `b` (two domains: the
    paper's cross-domain control), or over a seeded subset of `max_pairs` of them. Returns
    (number of pairs used, mean); the mean is None when either side is empty."""
    a, b = list(a), list(b)
    total = len(a) * len(b)
    if total == 0:
        return 0, None
    if max_pairs is None or total <= max_pairs:
        s = _on_lanes(a + b, total, workers, lambda lanes, t: lanes.cross_sum(a, b, t))
        if s is None:
            kwargs, rows = _kernel(workers, score_hint(a + b)), _block_rows(workers)
            blocks = (process.cdist(a[r : r + rows], b, **kwargs) for r in range(0, len(a), rows))
            s = sum(int(block.sum(dtype=np.int64)) for block in blocks)
        return total, s / total
    flat = np.random.default_rng(seed).choice(total, size=max_pairs, replace=False)
    d = _listed_pairs(a + b, flat // len(b), len(a) + flat % len(b), workers)
    return max_pairs, float(d.mean(dtype=np.float64))


def per_sample_mean(
    strings: Sequence[str], partners: int | None = None, seed: int = 0, workers: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Each string's mean Levenshtein distance to the others: to all of them, or to a seeded
    random set of `partners` others per string. Returns (means [n], partners used [n])."""
    strings = list(strings)
    n = len(strings)
    if n < 2:
        return np.full(n, np.nan), np.zeros(n, dtype=np.int64)
    if partners is None or partners >= n - 1:
        sums = _on_lanes(strings, n_pairs(n), workers, lambda lanes, t: lanes.pair_sums(strings, t))
        if sums is None:
            kwargs, rows = _kernel(workers, score_hint(strings)), _block_rows(workers)
            sums = np.concatenate(
                [
                    process.cdist(strings[r : r + rows], strings, **kwargs).sum(axis=1, dtype=np.int64)
                    for r in range(0, n, rows)
                ]
            )
        return sums / (n - 1), np.full(n, n - 1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    # partners of i: `partners` distinct others, drawn as offsets 1..n-1 from i (never i itself)
    offsets = np.stack([rng.choice(n - 1, size=partners, replace=False) + 1 for _ in range(n)])
    j = (np.arange(n)[:, None] + offsets) % n
    i = np.repeat(np.arange(n), partners)
    d = _listed_pairs(strings, i, j.reshape(-1), workers).astype(np.float64)
    return d.reshape(n, partners).mean(axis=1), np.full(n, partners, dtype=np.int64)


def _listed_pairs(strings: Sequence[str], i: np.ndarray, j: np.ndarray, workers: int) -> np.ndarray:
    """Distances of the pairs (strings[i[k]], strings[j[k]]) [len(i)]: `levenshtein.pair_distances`
    where `_lanes` says so and the strings have at most 256 symbols, else rapidfuzz's cpdist."""
    strings = list(strings)
    d = _on_lanes(strings, len(i), workers, lambda lanes, t: lanes.pair_distances(strings, i, j, t))
    if d is None:
        kwargs = _kernel(workers, score_hint(strings))
        d = np.asarray(process.cpdist([strings[k] for k in i], [strings[k] for k in j], **kwargs), dtype=np.int64)
    return d


def _unrank_pairs(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map indices in [0, n(n-1)/2) to pairs (i, j), i < j, in row-major upper-triangle order."""
    k = flat.astype(np.int64)
    # Closed-form inverse of the triangular numbering (exact in float64 for n up to ~10^7).
    i = n - 2 - np.floor(np.sqrt(-8 * k + 4 * n * (n - 1) - 7) / 2.0 - 0.5).astype(np.int64)
    j = k + i + 1 - n * (n - 1) // 2 + (n - i) * (n - i - 1) // 2
    return i, j
