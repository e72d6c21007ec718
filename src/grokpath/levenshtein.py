"""Exact Levenshtein distances of many long strings at once: the bit-parallel algorithm rapidfuzz
runs for one pair (Myers 1999, in Hyyrö's 2003 block form), run for `LANES` patterns side by side.

rapidfuzz computes one pair at a time: each text character costs a chain of dependent 64-bit
operations per word of the pattern, about 20 us per pair of paper-sized pathways (~1,000
characters, 16 words) even with its band, so the paper's all-pairs group of 2,500 samples took
30-31 s on 2 cores (benchmarks/pathway_distance.py). Here `LANES` patterns read the same text
character together, so every step is one operation on `LANES` independent words: numba (LLVM)
compiles the lane loop to vector instructions, and the independent lanes hide the carry chain's
latency that bounds the one-pair kernel. It computes the whole matrix (no band), and is still
about 3x faster per pair (6.0 against 19.1 us on one core): exact by construction, with no cut-off
to retry. numba compiles the kernel on first use (about 1 s) into its cache beside this file, which
later processes load (where this file's folder is read-only: ~/.cache/numba, or NUMBA_CACHE_DIR).

Each lane's distance is read once, after the last text character, from the last column's vertical
deltas, D[m][n] = n + sum over rows i <= m of (VP_i - VN_i), so lanes of different pattern lengths
share one loop: the rows past a pattern's end feed only the rows after them, never its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# 32 lanes: 8 AVX2 vectors of four 64-bit words, enough independent chains to keep the vector
# units busy (8 lanes ran at 21 us per pair, latency-bound; 16 at 7.8; 32 at 7.4).
LANES = 32
MAX_SYMBOLS = 256  # the text is coded as uint8
_WORD = 64


def alphabet_codes(strings: Sequence[str]) -> dict[str, int] | None:
    """Each distinct character's code, or None when there are more than `MAX_SYMBOLS`."""
    symbols = sorted(set().union(*map(set, strings))) if len(strings) else []
    if len(symbols) > MAX_SYMBOLS:
        return None
    return {ch: k for k, ch in enumerate(symbols)}


def encode(strings: Sequence[str], codes: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(codes [n, longest] uint8, zero-padded; lengths [n] int64)."""
    lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=len(strings))
    out = np.zeros((len(strings), int(lengths.max(initial=0))), dtype=np.uint8)
    # each character to the one whose code point is its code, then one byte each: no per-character Python
    table = str.maketrans({ch: chr(k) for ch, k in codes.items()})
    for k, s in enumerate(strings):
        out[k, : len(s)] = np.frombuffer(s.translate(table).encode("latin-1"), dtype=np.uint8)
    return out, lengths


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _patterns(pm, rows, text, lengths, ids):  # pragma: no cover
    """Set in pm [words, symbols, LANES], zero on entry in the words the patterns span, the match
    masks of patterns `ids` (lane l: pattern ids[l]; the lanes past len(ids) stay empty), and rows
    [words, LANES] to each lane's rows 0..m-1."""
    one = np.uint64(1)
    rows[:, :] = 0
    for lane in range(ids.shape[0]):
        p = ids[lane]
        m = lengths[p]
        for i in range(m):
            pm[i // _WORD, text[p, i], lane] |= one << np.uint64(i % _WORD)
        for w in range(pm.shape[0]):
            lo = w * _WORD
            if m >= lo + _WORD:
                rows[w, lane] = ~np.uint64(0)
            elif m > lo:
                rows[w, lane] = (one << np.uint64(m - lo)) - one


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _popcount(x):  # pragma: no cover
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _against_text(pm, rows, words, codes, n, vp, vn, hp_in, hn_in, out):  # pragma: no cover
    """out[l] = distance(pattern of lane l, the text `codes[:n]`), the patterns within the first
    `words` words of pm; vp, vn, hp_in, hn_in: scratch."""
    one = np.uint64(1)
    top = np.uint64(_WORD - 1)
    vp[:, :] = ~np.uint64(0)  # column 0: D[i][0] = i, every vertical delta +1
    vn[:, :] = 0
    for r in range(n):
        c = codes[r]
        for lane in range(LANES):
            hp_in[lane] = one  # row 0: D[0][r] = r, every horizontal delta +1
            hn_in[lane] = 0
        for w in range(words):
            for lane in range(LANES):
                v_p = vp[w, lane]
                v_n = vn[w, lane]
                x = pm[w, c, lane] | hn_in[lane]
                d0 = (((x & v_p) + v_p) ^ v_p) | x | v_n
                hp = v_n | ~(d0 | v_p)
                hn = d0 & v_p
                hp_out = hp >> top
                hn_out = hn >> top
                hp = (hp << one) | hp_in[lane]
                hn = (hn << one) | hn_in[lane]
                vp[w, lane] = hn | ~(d0 | hp)
                vn[w, lane] = hp & d0
                hp_in[lane] = hp_out
                hn_in[lane] = hn_out
    for lane in range(LANES):
        d = np.int64(n)
        for w in range(words):
            d += np.int64(_popcount(vp[w, lane] & rows[w, lane])) - np.int64(_popcount(vn[w, lane] & rows[w, lane]))
        out[lane] = d


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _block(pattern_text, pattern_lengths, ids, n_symbols, text, lengths, first, out):  # pragma: no cover
    """out[j - first, l] = distance(pattern ids[l], text j) for the texts first..len(text)-1."""
    longest = 1
    for p in ids:
        longest = max(longest, pattern_lengths[p])
    words = (longest + _WORD - 1) // _WORD
    pm = np.zeros((words, n_symbols, LANES), dtype=np.uint64)
    rows = np.empty((words, LANES), dtype=np.uint64)
    _patterns(pm, rows, pattern_text, pattern_lengths, ids)
    vp = np.empty((words, LANES), dtype=np.uint64)
    vn = np.empty((words, LANES), dtype=np.uint64)
    hp_in = np.empty(LANES, dtype=np.uint64)
    hn_in = np.empty(LANES, dtype=np.uint64)
    for j in range(first, text.shape[0]):
        _against_text(pm, rows, words, text[j], lengths[j], vp, vn, hp_in, hn_in, out[j - first])


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _listed_pairs(text, lengths, n_symbols, patterns, texts, out):  # pragma: no cover
    """out[k] = distance(pattern patterns[k], text texts[k]), the pairs sorted by text: each run of
    up to LANES pairs with one text is one pass, over as many words as its longest pattern needs."""
    words = max(1, (lengths.max() + _WORD - 1) // _WORD)
    pm = np.zeros((words, n_symbols, LANES), dtype=np.uint64)
    rows = np.empty((words, LANES), dtype=np.uint64)
    vp = np.empty((words, LANES), dtype=np.uint64)
    vn = np.empty((words, LANES), dtype=np.uint64)
    hp_in = np.empty(LANES, dtype=np.uint64)
    hn_in = np.empty(LANES, dtype=np.uint64)
    result = np.empty(LANES, dtype=np.int64)
    k = 0
    while k < patterns.shape[0]:
        j = texts[k]
        stop = k + 1
        while stop < patterns.shape[0] and stop - k < LANES and texts[stop] == j:
            stop += 1
        longest = 1
        for p in patterns[k:stop]:
            longest = max(longest, lengths[p])
        run_words = (longest + _WORD - 1) // _WORD
        pm[:run_words] = 0  # the words this run reads; a contiguous clear beats unsetting each bit
        _patterns(pm, rows, text, lengths, patterns[k:stop])
        _against_text(pm, rows, run_words, text[j], lengths[j], vp, vn, hp_in, hn_in, result)
        out[k:stop] = result[: stop - k]
        k = stop


def pair_sums(strings: Sequence[str], threads: int = 1) -> np.ndarray | None:
    """Each string's sum of Levenshtein distances to all the others [n] (int64), each unordered
    pair computed once; None past `MAX_SYMBOLS` distinct characters."""
    codes = alphabet_codes(strings)
    if codes is None:
        return None
    n = len(strings)
    sums = np.zeros(n, dtype=np.int64)
    if n < 2:
        return sums
    text, lengths = encode(strings, codes)

    def block(start: int) -> tuple[int, np.ndarray, np.ndarray]:
        stop = min(start + LANES, n)
        out = np.empty((n - start - 1, LANES), dtype=np.int64)
        _block(text, lengths, np.arange(start, stop), len(codes), text, lengths, start + 1, out)
        # text j = start+1+t pairs with lane l (pattern start+l) once, when j > start+l
        valid = np.arange(start + 1, n)[:, None] > np.arange(start, start + LANES)[None, :]
        valid[:, stop - start :] = False
        out *= valid
        return start, out.sum(axis=0)[: stop - start], out.sum(axis=1)

    # the first blocks hold the most pairs: submitted first, they leave the short ones for the end
    with ThreadPoolExecutor(threads) as pool:
        for start, per_pattern, per_text in pool.map(block, range(0, n - 1, LANES)):
            sums[start : start + per_pattern.size] += per_pattern
            sums[start + 1 :] += per_text
    return sums


def cross_sum(a: Sequence[str], b: Sequence[str], threads: int = 1) -> int | None:
    """Sum of the Levenshtein distances of every pair (x, y), x in `a`, y in `b`; None past
    `MAX_SYMBOLS` distinct characters."""
    codes = alphabet_codes(list(a) + list(b))
    if codes is None:
        return None
    if not a or not b:
        return 0
    pattern_text, pattern_lengths = encode(a, codes)
    text, lengths = encode(b, codes)

    def block(start: int) -> int:
        stop = min(start + LANES, len(a))
        out = np.empty((len(b), LANES), dtype=np.int64)
        _block(pattern_text, pattern_lengths, np.arange(start, stop), len(codes), text, lengths, 0, out)
        return int(out[:, : stop - start].sum())

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(block, range(0, len(a), LANES)))


def pair_distances(strings: Sequence[str], i: np.ndarray, j: np.ndarray, threads: int = 1) -> np.ndarray | None:
    """The Levenshtein distance of each listed pair (strings[i[k]], strings[j[k]]) [len(i)] (int64),
    like rapidfuzz's cpdist but by index; None past `MAX_SYMBOLS` distinct characters.

    The pairs are sorted by their text (j), so the pairs of one text fill the lanes of one pass;
    the sorted list is cut into a few chunks per thread."""
    codes = alphabet_codes(strings)
    if codes is None:
        return None
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.empty(i.size, dtype=np.int64)
    if i.size == 0:
        return out
    text, lengths = encode(strings, codes)
    order = np.argsort(j, kind="stable")
    patterns, texts = i[order], j[order]
    sorted_out = np.empty(i.size, dtype=np.int64)
    bounds = np.linspace(0, i.size, 4 * threads + 1).astype(np.int64)

    def chunk(c: int) -> None:
        lo, hi = bounds[c], bounds[c + 1]
        _listed_pairs(text, lengths, len(codes), patterns[lo:hi], texts[lo:hi], sorted_out[lo:hi])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(chunk, range(bounds.size - 1)))
    out[order] = sorted_out
    return out
