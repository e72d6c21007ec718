"""Correlation of per-checkpoint test accuracy with each monitor (the paper's Table 1).

Window rule (documented, the paper only says "after the sustained accuracy rise begins"): the
window starts at the latest checkpoint whose accuracy is still low, i.e. within `low` (10%) of
the accuracy range above the lowest accuracy, and is widened backwards to at least `min_points`
checkpoints. Users may instead take all checkpoints or an explicit list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

WINDOWS = ("rise", "all", "list")


def rise_window(accuracy: Sequence[float], min_points: int = 4, low: float = 0.1) -> list[int]:
    """Indices of the checkpoints from the start of the sustained accuracy rise (see module doc)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    n = len(acc)
    if n == 0:
        return []
    threshold = acc.min() + low * (acc.max() - acc.min())
    start = int(np.flatnonzero(acc <= threshold)[-1])
    start = min(start, max(0, n - min_points))
    return list(range(start, n))


@dataclass(frozen=True)
class Correlation:
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n: int
    pearson_ci: tuple[float, float]
    spearman_ci: tuple[float, float]


def correlate(
    x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Correlation:
    """Pearson and Spearman with p-values and percentile bootstrap intervals over checkpoints.

    With 4-6 checkpoints the intervals are wide; that is the point of reporting them. Fewer than
    three points or a constant series give NaN.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = len(xa)
    nan = float("nan")
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Correlation(nan, nan, nan, nan, n, (nan, nan), (nan, nan))
    pr = stats.pearsonr(xa, ya)
    sr = stats.spearmanr(xa, ya)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bx, by = xa[idx], ya[idx]
    # A resample that repeats one point has no correlation; those rows are dropped.
    varied = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)
    bx, by = bx[varied], by[varied]
    boot_p = _rowwise_pearson(bx, by)
    boot_s = _rowwise_pearson(stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def interval(values: np.ndarray) -> tuple[float, float]:
        return (float(np.percentile(values, lo)), float(np.percentile(values, hi))) if values.size else (nan, nan)

    return Correlation(
        float(pr.statistic),
        float(pr.pvalue),
        float(sr.statistic),
        float(sr.pvalue),
        n,
        interval(boot_p),
        interval(boot_s),
    )


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
