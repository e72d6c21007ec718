"""The lane kernel against rapidfuzz (itself checked against the textbook programme in
test_distance.py), on the lengths where the bit-parallel words change: empty, one character,
around one and two 64-bit words, and paper-sized pathways."""

import random
import sys

import numpy as np
import pytest
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

import grokpath
from grokpath import distance, levenshtein

LENGTHS = [0, 1, 2, 5, 63, 64, 65, 127, 128, 129, 200, 1000]


def _random_strings(rng, n, alphabet, lengths=LENGTHS):
    return ["".join(rng.choice(alphabet) for _ in range(rng.choice(lengths))) for _ in range(n)]


def _matrix(a, b):
    return process.cdist(a, b, scorer=Levenshtein.distance, dtype=np.int64)


@pytest.mark.parametrize("alphabet", ["ab", "0123456789,-", "".join(chr(0xE000 + k) for k in range(256))])
@pytest.mark.parametrize("n", [1, 2, 3, levenshtein.LANES, levenshtein.LANES + 1, 70])
def test_pair_sums_equal_rapidfuzz(n, alphabet):
    rng = random.Random(n)
    strings = _random_strings(rng, n, alphabet)
    assert levenshtein.pair_sums(strings, threads=2).tolist() == _matrix(strings, strings).sum(axis=1).tolist()


def test_pair_sums_every_pair_on_its_own():
    # one pair per call: each distance on its own, in lane 0 and (as the text) against it
    rng = random.Random(7)
    for _ in range(200):
        a, b = _random_strings(rng, 2, "0123456789,-")
        assert levenshtein.pair_sums([a, b], threads=1).tolist() == [Levenshtein.distance(a, b)] * 2


def test_cross_sum_equals_rapidfuzz():
    rng = random.Random(3)
    a = _random_strings(rng, 40, "0123,-")
    b = _random_strings(rng, 9, "0123,-")
    assert levenshtein.cross_sum(a, b, threads=2) == int(_matrix(a, b).sum())
    assert levenshtein.cross_sum(b, a, threads=1) == int(_matrix(a, b).sum())
    assert levenshtein.cross_sum(a, [], threads=1) == 0


def test_more_symbols_than_a_byte_go_to_rapidfuzz():
    rng = random.Random(5)
    wide = "".join(chr(0xE000 + k) for k in range(levenshtein.MAX_SYMBOLS + 1))
    strings = [wide, *_random_strings(rng, 20, wide, [10, 80, 300])]
    assert levenshtein.pair_sums(strings) is None
    assert levenshtein.cross_sum(strings, strings[:3]) is None
    assert levenshtein.pair_distances(strings, np.array([0]), np.array([1])) is None
    matrix = _matrix(strings, strings)
    # the distance module falls back to rapidfuzz, with the same results
    assert distance.sum_upper_triangle(strings) == int(np.triu(matrix, 1).sum())
    means, _ = distance.per_sample_mean(strings)
    assert means.tolist() == pytest.approx((matrix.sum(axis=1) / (len(strings) - 1)).tolist())
    assert distance.mean_cross(strings[:5], strings[5:])[1] == pytest.approx(matrix[:5, 5:].mean())


def test_paper_sized_pathways():
    rng = np.random.default_rng(0)
    strings = [
        "-".join(",".join(map(str, rng.permutation(64)[: rng.integers(15, 28)])) for _ in range(16)) for _ in range(40)
    ]
    assert min(map(len, strings)) > 640  # more than ten 64-bit words
    matrix = _matrix(strings, strings)
    assert levenshtein.pair_sums(strings).tolist() == matrix.sum(axis=1).tolist()
    assert distance.sum_upper_triangle(strings) == int(np.triu(matrix, 1).sum())


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pair_distances_equal_rapidfuzz_in_the_given_order(threads):
    rng = random.Random(11)
    strings = _random_strings(rng, 50, "0123456789,-")
    nprng = np.random.default_rng(0)
    # many pairs per text (full lanes), single ones, a pair twice, a string with itself
    i = np.concatenate([nprng.integers(0, 50, 300), [4, 4, 9]])
    j = np.concatenate([nprng.integers(0, 3, 150), nprng.integers(0, 50, 150), [7, 7, 9]])
    expected = process.cpdist([strings[k] for k in i], [strings[k] for k in j], scorer=Levenshtein.distance)
    assert levenshtein.pair_distances(strings, i, j, threads).tolist() == expected.tolist()
    assert levenshtein.pair_distances(strings, i[:0], j[:0]).tolist() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda x: distance.mean_pairwise(x),
        lambda x: distance.mean_pairwise(x, max_pairs=300, seed=2),
        lambda x: distance.mean_cross(x[:15], x[15:]),
        lambda x: distance.mean_cross(x[:15], x[15:], max_pairs=100, seed=2),
        lambda x: distance.per_sample_mean(x)[0].tolist(),
        lambda x: distance.per_sample_mean(x, partners=5, seed=2)[0].tolist(),
    ],
    ids=["all_pairs", "pair_subset", "cross", "cross_subset", "per_sample", "per_sample_partners"],
)
def test_distance_gives_rapidfuzz_results_through_the_lanes(call, monkeypatch):
    rng = np.random.default_rng(4)
    strings = [
        "-".join(",".join(map(str, rng.permutation(64)[: rng.integers(2, 12)])) for _ in range(6)) for _ in range(45)
    ]
    monkeypatch.setattr(distance, "_LANES_MIN_WORK", 0)  # every set through the lanes
    lanes = call(strings)
    monkeypatch.setattr(levenshtein, "MAX_SYMBOLS", 1)  # every set is too wide: rapidfuzz
    assert levenshtein.pair_sums(strings) is None
    assert call(strings) == lanes


def test_small_sets_do_not_load_numba(monkeypatch):
    monkeypatch.delitem(sys.modules, "grokpath.levenshtein")
    monkeypatch.delattr(grokpath, "levenshtein")  # both restored afterwards: one module object
    small = ["1,2-3,4"] * 300  # the embedded default's size
    assert distance._lanes(small, distance.n_pairs(300), 2) is None
    assert "grokpath.levenshtein" not in sys.modules
    assert distance.mean_pairwise(small) == (distance.n_pairs(300), 0.0)
    assert "grokpath.levenshtein" not in sys.modules
    paper = ["0," * 490] * 2500
    assert distance._lanes(paper[:100], distance.n_pairs(100), 1) is None
    # the threshold grows with the threads rapidfuzz would share the work among
    assert distance._lanes(paper[:400], distance.n_pairs(400), 16) is None
    assert distance._lanes(paper[:400], distance.n_pairs(400), 1) is sys.modules["grokpath.levenshtein"]
    # loaded once, it serves small sets too (the per-layer distances after a group's)
    assert distance._lanes(small, 1, 2) is not None


def test_numba_that_cannot_load_leaves_rapidfuzz(monkeypatch, caplog):
    monkeypatch.delitem(sys.modules, "grokpath.levenshtein")
    monkeypatch.delattr(grokpath, "levenshtein")
    monkeypatch.setattr(distance, "_lanes_failed", False)

    def no_cache(name):
        raise RuntimeError("cannot cache function '_block': no locator available for file '...'")

    monkeypatch.setattr(distance.importlib, "import_module", no_cache)
    paper = ["0," * 490, "1," * 490] * 1250
    assert distance._lanes(paper, distance.n_pairs(2500), 2) is None
    assert "rapidfuzz computes every pair" in caplog.text
    small = ["1,2-3", "2,1-3", "5-6"]
    assert distance.mean_pairwise(small) == (3, np.triu(_matrix(small, small), 1).sum() / 3)


def test_sequences_that_are_not_lists():
    strings = np.array(["1,2-3", "2,1-3", "5-6", "5-6,7"])
    expected = distance.mean_pairwise(list(strings))
    assert distance.mean_pairwise(strings) == expected
    assert distance.mean_pairwise(strings, max_pairs=3, seed=1) == distance.mean_pairwise(list(strings), 3, seed=1)
