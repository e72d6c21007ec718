import itertools

import numpy as np
import pytest
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from grokpath import distance


@pytest.fixture(autouse=True, params=["lanes", "rapidfuzz"])
def route(request, monkeypatch):
    """Every test here through both kernels: the lane kernel for every set, however small, and
    rapidfuzz for every set (which one a set takes otherwise depends on its size)."""
    if request.param == "lanes":
        monkeypatch.setattr(distance, "_LANES_MIN_WORK", 0)
    else:
        monkeypatch.setattr(distance, "_lanes", lambda *_: None)
    return request.param


def _levenshtein(a, b):
    """Textbook dynamic programme, the reference for the fast path."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [("kitten", "sitting", 3), ("", "abc", 3), ("1,2-3", "1,2-3", 0), ("1,2-3", "2,1-3", 2), ("10-2", "1-2", 1)],
)
def test_known_distances(a, b, d):
    _, mean = distance.mean_pairwise([a, b])
    assert mean == d


def test_mean_over_all_unordered_pairs():
    strings = ["0,1-2", "0-2", "1,0-2,3", "5-5"]
    expected = np.mean([_levenshtein(a, b) for a, b in itertools.combinations(strings, 2)])
    n, mean = distance.mean_pairwise(strings)
    assert n == 6
    assert mean == pytest.approx(expected)


def test_fewer_than_two_samples_have_no_distance():
    assert distance.mean_pairwise(["1,2"]) == (0, None)
    assert distance.mean_pairwise([]) == (0, None)


def test_token_level_counts_expert_ids_not_characters():
    # "10" vs "1": one character apart, but a different expert (one substitution) at token level.
    a, b = "10,2-3", "1,2-3"
    assert distance.mean_pairwise([a, b])[1] == 1
    ea, eb = distance.encode(a, "token"), distance.encode(b, "token")
    assert distance.mean_pairwise([ea, eb])[1] == 1
    # Swapping two experts is 2 edits at token level, 2 at character level for one-digit ids.
    assert distance.mean_pairwise([distance.encode("1,2", "token"), distance.encode("2,1", "token")])[1] == 2
    # Two-digit against one-digit ids: one token, two characters apart.
    assert distance.mean_pairwise([distance.encode("12,3", "token"), distance.encode("4,3", "token")])[1] == 1
    assert distance.mean_pairwise(["12,3", "4,3"])[1] == 2
    # A layer boundary is a symbol of its own: moving an expert across it costs edits.
    assert distance.mean_pairwise([distance.encode("1-2,3", "token"), distance.encode("1,2-3", "token")])[1] == 2


def test_unknown_level_is_rejected():
    with pytest.raises(ValueError, match="distance level must be one of"):
        distance.encode("1", "bytes")


def test_subsample_is_seeded_and_close_to_the_full_mean():
    rng = np.random.default_rng(1)
    strings = [
        "-".join(",".join(map(str, rng.permutation(8)[: rng.integers(1, 5)])) for _ in range(4)) for _ in range(120)
    ]
    total, full = distance.mean_pairwise(strings)
    n1, m1 = distance.mean_pairwise(strings, max_pairs=2000, seed=3)
    _, m2 = distance.mean_pairwise(strings, max_pairs=2000, seed=3)
    assert total == 120 * 119 // 2
    assert n1 == 2000
    assert m1 == m2
    assert m1 == pytest.approx(full, rel=0.05)


def test_unrank_pairs_matches_upper_triangle():
    for n in (2, 3, 17, 400):
        i, j = distance._unrank_pairs(np.arange(n * (n - 1) // 2), n)
        ei, ej = np.triu_indices(n, 1)
        assert (i == ei).all()
        assert (j == ej).all()


def test_layer_strings():
    assert distance.layer_strings("3,1-9,1-0", 1, "char") == "9,1"
    assert distance.layer_strings("3,1-9,1-0", 2, "token") == distance.encode("0", "token")


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 32])
@pytest.mark.parametrize("n", [2, 3, 10, 41])
def test_upper_triangle_in_row_blocks_counts_each_pair_once(n, rows):
    rng = np.random.default_rng(n)
    strings = [
        "-".join(",".join(map(str, rng.permutation(12)[: rng.integers(1, 6)])) for _ in range(3)) for _ in range(n)
    ]
    expected = sum(_levenshtein(a, b) for a, b in itertools.combinations(strings, 2))
    assert distance.rapidfuzz_upper_triangle(strings, workers=1, rows=rows) == expected
    assert distance.rapidfuzz_upper_triangle(strings, workers=2, rows=rows) == expected
    assert distance.sum_upper_triangle(strings, workers=1) == expected
    assert distance.sum_upper_triangle(strings, workers=2) == expected


def test_all_pairs_mean_equals_the_full_matrix_mean():
    rng = np.random.default_rng(5)
    strings = [
        "-".join(",".join(map(str, rng.permutation(64)[: rng.integers(5, 25)])) for _ in range(4)) for _ in range(90)
    ]
    matrix = process.cdist(strings, strings, scorer=Levenshtein.distance, dtype=np.int32)
    full = float(matrix[np.triu_indices(len(strings), k=1)].astype(np.float64).mean())
    assert distance.mean_pairwise(strings) == (90 * 89 // 2, full)  # bit for bit


def _long_pathways(n, seed, layers=8):
    rng = np.random.default_rng(seed)
    return [
        "-".join(",".join(map(str, rng.permutation(64)[: rng.integers(3, 9)])) for _ in range(layers)) for _ in range(n)
    ]


def test_score_hint_only_for_long_strings():
    assert distance.score_hint(["1,2-3", "2,1-3", "5-6"]) is None
    assert distance.score_hint(["1,2"]) is None
    strings = _long_pathways(30, 0)
    assert min(len(s) for s in strings) > 64
    hint = distance.score_hint(strings)
    assert isinstance(hint, int)
    assert hint == distance.score_hint(strings)  # fixed sample: the same hint every time


@pytest.mark.parametrize("hint", [None, 1, 40, 10_000])
def test_score_hint_never_changes_a_distance(hint):
    strings = _long_pathways(14, 1)
    expected = sum(_levenshtein(a, b) for a, b in itertools.combinations(strings, 2))
    assert distance.rapidfuzz_upper_triangle(strings, workers=1, rows=5, hint=hint) == expected


def test_long_strings_mean_and_subsample_are_exact():
    strings = _long_pathways(16, 2)
    pairs = list(itertools.combinations(strings, 2))
    n, mean = distance.mean_pairwise(strings)
    assert (n, mean) == (len(pairs), pytest.approx(np.mean([_levenshtein(a, b) for a, b in pairs])))
    used, sub = distance.mean_pairwise(strings, max_pairs=50, seed=4)
    i, j = distance._unrank_pairs(np.random.default_rng(4).choice(len(pairs), size=50, replace=False), 16)
    expected = np.mean([_levenshtein(strings[a], strings[b]) for a, b in zip(i, j, strict=True)])
    assert (used, sub) == (50, pytest.approx(expected))


def test_stage_subsamples_the_same_pairs_at_every_checkpoint():
    """A group's subsample depends on seed, domain and group, not on the checkpoint: the trend over
    checkpoints compares the same pairs. `max_pairs: null` takes every pair."""
    from grokpath import stages

    rng = np.random.default_rng(2)
    ids = [f"s{i:03d}" for i in range(60)]
    by_id = {s: "-".join(",".join(map(str, rng.permutation(8)[:3])) for _ in range(3)) for s in ids}
    memorized = dict.fromkeys(ids)  # no sample memorized: the group "all" alone
    settings = {"level": "char", "layerwise": False, "max_pairs": 300}

    def rows(step, **changes):
        return stages.group_distances("m", step, "math", by_id, memorized, ["c1"], {**settings, **changes}, 0)[0]

    first, later = rows("c1"), rows("c2")
    assert first["n_pairs"] == later["n_pairs"] == 300
    assert first["mean_distance"] == later["mean_distance"]
    everything = rows("c1", max_pairs=None)
    assert everything["n_pairs"] == 60 * 59 // 2
    assert everything["mean_distance"] == distance.mean_pairwise(list(by_id.values()))[1]


def test_cross_domain_mean_is_over_every_pair_of_the_two_sides():
    a = ["0,1-2", "0-2", "1,0-2,3"]
    b = ["5-5", "0,1-2", "12,3-4,5,6"]
    expected = np.mean([_levenshtein(x, y) for x in a for y in b])
    assert distance.mean_cross(a, b) == (9, pytest.approx(expected))
    assert distance.mean_cross(a, []) == (0, None)
    rng = np.random.default_rng(5)
    many = ["-".join(",".join(map(str, rng.permutation(8)[:3])) for _ in range(3)) for _ in range(80)]
    full = distance.mean_cross(many[:40], many[40:])
    sub = distance.mean_cross(many[:40], many[40:], max_pairs=500, seed=1)
    assert full[0] == 1600
    assert sub[0] == 500
    assert sub == distance.mean_cross(many[:40], many[40:], max_pairs=500, seed=1)
    assert sub[1] == pytest.approx(full[1], rel=0.05)


def test_per_sample_mean_distance_to_the_others():
    strings = ["0,1-2", "0-2", "1,0-2,3", "5-5"]
    means, used = distance.per_sample_mean(strings)
    expected = [np.mean([_levenshtein(s, t) for t in strings if t is not s]) for s in strings]
    np.testing.assert_allclose(means, expected)
    assert used.tolist() == [3, 3, 3, 3]
    rng = np.random.default_rng(6)
    many = ["-".join(",".join(map(str, rng.permutation(8)[:3])) for _ in range(3)) for _ in range(50)]
    sub, used = distance.per_sample_mean(many, partners=10, seed=2)
    assert used.tolist() == [10] * 50
    full, _ = distance.per_sample_mean(many)
    assert np.corrcoef(sub, full)[0, 1] > 0.3  # a noisy estimate of the same per-sample mean
    # a partner is never the sample itself (distance 0): with distinct strings every mean is > 0
    distinct = sorted(set(many))
    for seed in range(5):
        assert (distance.per_sample_mean(distinct, partners=1, seed=seed)[0] > 0).all()


def test_all_cores_means_the_cores_this_process_may_use(monkeypatch):
    # A SLURM job confined to 2 of a node's 64 CPUs runs 2 rapidfuzz workers, not 64.
    monkeypatch.setattr(distance.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(distance.os, "cpu_count", lambda: 64)
    assert distance._workers(-1) == 2
    assert distance._workers(3) == 3
    assert distance._block_rows(-1) == 256
