import numpy as np
import pytest

from grokpath import testgroups as tg


def test_learned_index_on_crafted_correctness():
    correct = np.array(
        [
            [0, 0, 1, 1, 1, 1],  # stays correct from index 2
            [0, 1, 0, 1, 1, 1],  # from 1: 4/5 = 0.8 is not > 0.8 -> from 3
            [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1][:6],  # one error inside a long correct run: from 0 (5/6)
            [0, 0, 0, 0, 0, 1],  # correct only at the last checkpoint: 1/1
            [0, 0, 0, 0, 0, 0],  # never
            [1, 0, 1, 0, 1, 1],  # two errors after index 0 -> from 2 (3/4 = .75 no) -> from 4
        ]
    )
    assert tg.learned_index(correct).tolist() == [2, 3, 0, 5, -1, 4]


def test_at_most_one_error():
    # 9 of 10 correct with one error is fine; with two errors (8/10 = 0.8) it is not.
    one = np.array([[1, 1, 1, 0, 1, 1, 1, 1, 1, 1]])
    two = np.array([[1, 1, 0, 0, 1, 1, 1, 1, 1, 1]])
    assert tg.learned_index(one).tolist() == [0]
    assert tg.learned_index(two).tolist() == [4]


def test_learned_index_rejects_bad_shape():
    with pytest.raises(ValueError, match="items, checkpoints"):
        tg.learned_index(np.array([1, 0]))


def test_group_similarity_equals_mean_pairwise_cosine():
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(5, 8)), rng.normal(size=(3, 8))]
    b = [rng.normal(size=(4, 8)), rng.normal(size=(6, 8)), rng.normal(size=(2, 8))]
    sim = tg.group_similarity(a, b)

    def cos(x, y):
        return x @ y / np.linalg.norm(x) / np.linalg.norm(y)

    for i, ga in enumerate(a):
        for j, gb in enumerate(b):
            assert sim[i, j] == pytest.approx(np.mean([cos(x, y) for x in ga for y in gb]))


def test_hungarian_maximises_total_not_greedy():
    # Greedy would take (t1, s1) = 0.9 and leave (t2, s2) = 0.1: total 1.0.
    # The optimum pairs t1-s2 and t2-s1: 0.8 + 0.8 = 1.6.
    sim = np.array([[0.9, 0.8], [0.8, 0.1]])
    matches = tg.match_groups(["t1", "t2"], ["s1", "s2"], sim)
    assert {(m.train_group, m.test_group) for m in matches} == {("t1", "s2"), ("t2", "s1")}


def test_more_test_groups_than_train_groups():
    sim = np.array([[0.1, 0.7, 0.3]])
    assert tg.match_groups(["t"], ["a", "b", "c"], sim) == [tg.Match("t", "b", 0.7)]
    assert tg.match_groups([], ["a"], np.zeros((0, 1))) == []
