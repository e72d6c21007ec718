import json
import shutil

import numpy as np
import pytest

from grokpath import embeddings
from grokpath.embeddings import embed


def test_real_minilm_embeddings_are_unit_norm_and_meaningful():
    e = embed(["12 + 45 = 57", "13 + 44 = 57", "the mother of kalomi is zoteru"])
    assert e.shape == (3, 384)
    norms = (e**2).sum(1) ** 0.5
    assert abs(norms - 1).max() < 1e-5
    assert e[0] @ e[1] > e[0] @ e[2]  # two sums are closer than a sum and a family fact


def test_empty_input():
    assert embed([]).shape == (0, 384)


def test_the_same_vectors_as_sentence_transformers():
    # embed runs the model folder on transformers alone; sentence-transformers itself is the reference
    from sentence_transformers import SentenceTransformer

    texts = [
        "12 + 45 = 57",
        "",
        "the mother of kalomi is zoteru",
        "def add(a, b):\n    return a + b",
        " ".join(f"word{i}" for i in range(400)),  # past the 256-token limit: truncated alike
        *(f"{i} * {i + 1} = {i * (i + 1)}" for i in range(70)),  # more than one batch, of mixed lengths
    ]
    reference = SentenceTransformer(str(embeddings.model_path()), device="cpu").encode(
        texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    ours = embed(texts)
    assert ours.dtype == np.float32
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=2e-6)


def test_a_model_folder_of_other_modules_is_refused(tmp_path):
    src = embeddings.model_path()
    for name in ("modules.json", "sentence_bert_config.json"):
        shutil.copy(src / name, tmp_path / name)
    (tmp_path / "1_Pooling").mkdir()
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "pooling_mode_cls_token": True}))
    with pytest.raises(ValueError, match="mean pooling"):
        embeddings._max_length(tmp_path)
    assert embeddings._max_length(src) == 256
