"""Test-side grokking groups and their matching to memorization groups (METHOD.md).

t#_j is the earliest checkpoint from which test item j stays correct: it is correct there and,
over that checkpoint and every later one, its mean accuracy exceeds 0.8 with at most one error.
Train groups (same t*) and test groups (same t#) of a domain are paired one-to-one by the mean
pairwise cosine similarity of their members' sentence embeddings, maximised with the Hungarian
algorithm; the delay of a pair is t# - t*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

NOT_LEARNED = -1


def learned_index(correct: np.ndarray, min_accuracy: float = 0.8, max_errors: int = 1) -> np.ndarray:
    """correct: [items, checkpoints] of 0/1 in training order. Index of t# per item, or -1."""
    if correct.ndim != 2:
        raise ValueError(f"correctness must be [items, checkpoints], got shape {correct.shape}")
    c = correct.astype(np.int64)
    n_ckpt = c.shape[1]
    # Suffix sums: errors and counts over checkpoints t..T for every t.
    suffix_correct = np.flip(np.cumsum(np.flip(c, axis=1), axis=1), axis=1)
    suffix_len = np.arange(n_ckpt, 0, -1)
    suffix_errors = suffix_len - suffix_correct
    ok = (c == 1) & (suffix_correct / suffix_len > min_accuracy) & (suffix_errors <= max_errors)
    first = np.argmax(ok, axis=1)
    return np.where(ok.any(axis=1), first, NOT_LEARNED)


def group_similarity(train_emb: list[np.ndarray], test_emb: list[np.ndarray]) -> np.ndarray:
    """Mean pairwise cosine between every train group and every test group.

    With unit-norm embeddings the mean over all pairs equals the dot product of the group means,
    so no pair matrix is ever built.
    """

    def unit_mean(e: np.ndarray) -> np.ndarray:
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        return e.mean(axis=0)

    a = np.stack([unit_mean(e) for e in train_emb])
    b = np.stack([unit_mean(e) for e in test_emb])
    return a @ b.T


@dataclass(frozen=True)
class Match:
    train_group: str
    test_group: str
    similarity: float


def match_groups(train_groups: list[str], test_groups: list[str], similarity: np.ndarray) -> list[Match]:
    """One-to-one pairing maximising total similarity (unpaired groups are left out)."""
    if similarity.shape != (len(train_groups), len(test_groups)):
        raise ValueError(f"similarity shape {similarity.shape} does not match the groups")
    if not train_groups or not test_groups:
        return []
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    return [Match(train_groups[r], test_groups[c], float(similarity[r, c])) for r, c in zip(rows, cols, strict=True)]
