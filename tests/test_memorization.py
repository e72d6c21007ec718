import numpy as np
import pytest

from grokpath import memorization as mem


def test_memorized_from_first_checkpoint_where_condition_holds_for_good():
    loss = np.array(
        [
            [3.0, 1.0, 0.5, 0.52, 0.5],  # <= eps from index 2 and within delta of final -> 2
            [3.0, 0.4, 0.9, 0.5, 0.5],  # dips early, rises again: only from index 3
            [3.0, 2.5, 2.0, 1.5, 1.2],  # never below eps=1
            [0.5, 0.5, 0.5, 0.5, 0.5],  # memorized from the start
            [3.0, 3.0, 3.0, 3.0, 0.9],  # only at the last checkpoint
        ]
    )
    idx = mem.memorized_index(loss, eps=1.0, delta=0.05)
    assert idx.tolist() == [2, 3, -1, 0, 4]


def test_delta_condition_uses_the_final_loss():
    loss = np.array([[0.5, 0.3, 0.2]])  # all <= eps, but still falling
    assert mem.memorized_index(loss, eps=1.0, delta=0.05).tolist() == [2]
    assert mem.memorized_index(loss, eps=1.0, delta=0.15).tolist() == [1]
    assert mem.memorized_index(loss, eps=1.0, delta=0.5).tolist() == [0]


def test_fraction_counts_only_before_the_last_checkpoint():
    idx = np.array([0, 2, 4, -1])
    assert mem.fraction_before_last(idx, 5) == 0.5


def test_eps_search_hits_target_range():
    # 100 samples; sample k plateaus at loss k/20 from checkpoint 1 on.
    final = np.arange(100) / 20
    loss = np.stack([np.full(100, 9.0), final, final, final], axis=1)
    choice = mem.search_eps(loss, delta=0.05, target=(0.2, 0.25))
    assert choice.in_target
    assert 0.2 <= choice.fraction <= 0.25
    # smallest such eps on the 0.1 grid: 21 samples (k<=20) at eps=1.0
    assert choice.eps == pytest.approx(1.0)


def test_eps_search_closest_when_target_unreachable(caplog):
    loss = np.array([[5.0, 0.5, 0.5], [5.0, 0.5, 0.5], [5.0, 4.0, 4.0]])
    choice = mem.search_eps(loss, delta=0.05, target=(0.2, 0.25))
    assert not choice.in_target
    assert choice.fraction == pytest.approx(2 / 3)
    assert "no eps" in caplog.text


def test_bad_shape():
    with pytest.raises(ValueError, match="samples, checkpoints"):
        mem.memorized_index(np.zeros(3), 1.0, 0.05)
