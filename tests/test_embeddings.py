from grokpath.embeddings import embed


def test_real_minilm_embeddings_are_unit_norm_and_meaningful():
    e = embed(["12 + 45 = 57", "13 + 44 = 57", "the mother of kalomi is zoteru"])
    assert e.shape == (3, 384)
    norms = (e**2).sum(1) ** 0.5
    assert abs(norms - 1).max() < 1e-5
    assert e[0] @ e[1] > e[0] @ e[2]  # two sums are closer than a sum and a family fact


def test_empty_input():
    assert embed([]).shape == (0, 384)
