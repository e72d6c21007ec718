"""Memorization groups (METHOD.md): sample i is memorized from t*_i, the earliest checkpoint such
that at every later-or-equal checkpoint t, loss_i(t) <= eps and |loss_i(t) - loss_i(T)| <= delta.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

NOT_MEMORIZED = -1


def memorized_index(loss: np.ndarray, eps: float, delta: float) -> np.ndarray:
    """loss: [N samples, T checkpoints in training order]. Index of t*_i per sample, or -1."""
    if loss.ndim != 2 or loss.shape[1] == 0:
        raise ValueError(f"loss must be [samples, checkpoints] with at least one checkpoint, got {loss.shape}")
    ok = (loss <= eps) & (np.abs(loss - loss[:, -1:]) <= delta)
    # suffix_all[i, t]: ok holds at every checkpoint >= t (reverse cumulative AND).
    suffix_all = np.flip(np.logical_and.accumulate(np.flip(ok, axis=1), axis=1), axis=1)
    first = np.argmax(suffix_all, axis=1)
    return np.where(suffix_all.any(axis=1), first, NOT_MEMORIZED)


def before_last(index: np.ndarray, n_checkpoints: int) -> np.ndarray:
    """Which samples were memorized strictly before the last checkpoint T (bool per sample)."""
    return (index != NOT_MEMORIZED) & (index < n_checkpoints - 1)


def fraction_before_last(index: np.ndarray, n_checkpoints: int) -> float:
    """Share of samples memorized strictly before the last checkpoint T."""
    return float(np.mean(before_last(index, n_checkpoints))) if index.size else 0.0


@dataclass(frozen=True)
class EpsChoice:
    eps: float
    fraction: float
    in_target: bool


def search_eps(
    loss: np.ndarray, delta: float, target: tuple[float, float] = (0.2, 0.25), step: float = 0.1
) -> EpsChoice:
    """Smallest eps on a grid of `step` whose memorized-before-T share falls in `target`.

    The share only grows with eps, so the grid walk stops at the first hit. When the share jumps
    over the target (few samples, coarse grid) the eps whose non-zero share is closest to it is
    used (an empty grouping would leave nothing to monitor) and a warning says so.
    """
    lo, hi = target
    n_ckpt = loss.shape[1]
    top = float(np.nanmax(loss)) + step
    best: EpsChoice | None = None
    best_gap = np.inf
    for k in range(1, int(np.ceil(top / step)) + 1):
        eps = round(k * step, 10)
        frac = fraction_before_last(memorized_index(loss, eps, delta), n_ckpt)
        if lo <= frac <= hi:
            return EpsChoice(eps, frac, True)
        gap = lo - frac if frac < lo else frac - hi
        if frac > 0 and gap < best_gap:
            best, best_gap = EpsChoice(eps, frac, False), gap
        if frac > hi:
            break
    if best is None:  # nothing is ever memorized before T, whatever eps
        best = EpsChoice(round(k * step, 10), 0.0, False)
    log.warning(
        "no eps on the %.2g grid puts %.0f-%.0f%% of samples in memorization groups; using eps=%.2f (%.1f%%)",
        step,
        100 * lo,
        100 * hi,
        best.eps,
        100 * best.fraction,
    )
    return best
