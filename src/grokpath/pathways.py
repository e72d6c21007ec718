"""Pathways (METHOD.md): per layer, the shortest prefix of experts ranked by mean routing weight
whose cumulative weight exceeds tau, serialized as "3,1,5-9,1-..."; and pathway consistency C_i.
"""

from __future__ import annotations

import numpy as np

LAYER_SEP = "-"
EXPERT_SEP = ","


def select_experts(probs: np.ndarray, tau: float) -> np.ndarray:
    """Experts of one layer, by descending weight, up to the first whose cumulative weight > tau.

    Ties keep the lower expert id first (stable sort), so the pathway is deterministic. When the
    weights never exceed tau (tau = 1 with rounding) every expert with a positive weight is kept:
    an expert the layer never routed to is not on the path.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order], dtype=np.float64)
    exceeded = np.flatnonzero(cumulative > tau)
    n_keep = int(exceeded[0]) + 1 if exceeded.size else max(1, int(np.count_nonzero(probs > 0)))
    return order[:n_keep]


def serialize(per_layer: list[np.ndarray] | list[list[int]]) -> str:
    return LAYER_SEP.join(EXPERT_SEP.join(str(int(e)) for e in layer) for layer in per_layer)


def parse(pathway: str) -> list[list[int]]:
    return [[int(e) for e in layer.split(EXPERT_SEP)] for layer in pathway.split(LAYER_SEP)]


def pathway(probs: np.ndarray, tau: float) -> tuple[str, list[int]]:
    """probs: [L, K] token-averaged routing weights of one sample. Returns (string, experts per layer)."""
    layers = [select_experts(p, tau) for p in probs]
    return serialize(layers), [len(layer) for layer in layers]


def layer_cosines(weights: np.ndarray, routers: np.ndarray) -> np.ndarray:
    """Cosine between consecutive layers' routing embeddings e_{i,l} = sum_k g_l(i,k) v_{l,k}.

    weights: [N, L, K] routing weights per sample; routers: [L, K, d] router weight matrices.
    Returns [N, L-1].
    """
    emb = np.einsum("nlk,lkd->nld", weights.astype(np.float64), routers.astype(np.float64))
    a, b = emb[:, :-1], emb[:, 1:]
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    dots = np.einsum("nld,nld->nl", a, b)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def consistency(weights: np.ndarray, routers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C_i = 1 - (1/(L-1)) sum_l c_l / (max_l c_l + 1e-8), exactly as METHOD.md; also mean c_l."""
    if weights.shape[1] < 2:
        raise ValueError("pathway consistency needs at least two MoE layers")
    c = layer_cosines(weights, routers)
    c_max = c.max(axis=1)
    return 1.0 - c.mean(axis=1) / (c_max + 1e-8), c.mean(axis=1)


def routing_entropy(weights: np.ndarray) -> np.ndarray:
    """Mean over layers of the entropy (nats) of each sample's token-averaged routing weights
    [N, L, K] -> [N]: 0 when a layer sends everything to one expert, log K when it spreads evenly
    (paper Fig. 13 sets pathway distance against it)."""
    p = weights.astype(np.float64)
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=-1).mean(axis=-1)
