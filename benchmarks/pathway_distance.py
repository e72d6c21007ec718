"""Pathway distance: mean Levenshtein distance over all pairs of a group of paper-sized pathways.

The pathways are made the way the workflow makes them: token-averaged routing weights per sample
and layer, drawn from a Dirichlet around a per-layer expert popularity (itself Dirichlet(1) over
the experts, shared by all samples, so pairs share structure as samples of one domain do), cut at
tau by `pathways.pathway` and serialized by it. The defaults are the paper's setting: 2,500
samples (3.1M pairs), 16 MoE layers, 64 experts, tau 0.7; the concentration 8 gives about 20
experts per layer, strings of about 1,000 characters and a mean distance near 500 (the paper
reports 505-580 at tau 0.7).

Timed, interleaved over `--repeats` (each repeat runs every pass once, in a rotating order):
- `all_pairs`: `distance.mean_pairwise(strings)`, every unordered pair, as `group_distances` calls
  it with `max_pairs: null` (the goal: under 30 s on 2 cores): `levenshtein.pair_sums`, 32
  patterns per pass (numba compiles it before the timings, once per machine: about 1 s).
- `rapidfuzz` (`--before`): the previous implementation, `distance.rapidfuzz_upper_triangle`,
  rapidfuzz's one-pair kernel with `score_hint` over blocks of rows.
- `full_matrix` (`--before`): the one before it, one `cdist` of the list against itself
  (rapidfuzz computes one triangle and mirrors it into an n x n int32 matrix), the mean of its
  upper triangle, no `score_hint`.
- `subsample`: `mean_pairwise(strings, max_pairs)` with the stage's default `max_pairs` (500,000):
  the seeded random subset through `cpdist`, what a group of this size gets by default.
- `layerwise`: the 16 per-layer distances (`distance.layer_strings`) with the same `max_pairs`, as
  `group_distances` adds them with `layerwise: true`.
- `python_dp`: a straightforward pure-Python Wagner-Fischer dynamic programme on `--baseline-pairs`
  random pairs (split across the repeats), extrapolated per pair to the whole group; its distances
  are checked against rapidfuzz's.
Peak memory is the peak resident set of each pass above the resident set before it, after glibc
has given its free memory back (malloc_trim; Linux clear_refs resets the peak), the largest over
the repeats.

    python benchmarks/pathway_distance.py [--samples 2500] [--layers 16] [--experts 64] [--tau 0.7]
        [--concentration 8] [--level char|token] [--max-pairs 500000] [--baseline-pairs 200]
        [--repeats 3] [--workers -1] [--before]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from grokpath import distance, levenshtein, pathways


def make_pathways(n: int, layers: int, experts: int, tau: float, concentration: float, seed: int) -> list[str]:
    """Pathway strings of `n` samples, from Dirichlet routing weights through `pathways.pathway`."""
    rng = np.random.default_rng(seed)
    popularity = rng.dirichlet(np.ones(experts), size=layers)  # [L, K], shared by all samples
    alpha = concentration * experts * popularity + 1e-3
    weights = np.stack([rng.dirichlet(alpha[layer], size=n) for layer in range(layers)], axis=1)  # [n, L, K]
    return [pathways.pathway(w, tau)[0] for w in weights.astype(np.float32)]


def wagner_fischer(a: str, b: str) -> int:
    """The textbook dynamic programme, two rows, pure Python."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def full_matrix_mean(strings: list[str], workers: int) -> float:
    """The implementation before the row blocks: one cdist of the list against itself."""
    matrix = process.cdist(strings, strings, scorer=Levenshtein.distance, dtype=np.int32, workers=workers)
    return float(matrix[np.triu_indices(len(strings), k=1)].astype(np.float64).mean())


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Hand glibc's free memory back, then reset the kernel's peak resident set of this process
    (Linux >= 4.0; elsewhere the process-wide ru_maxrss is what is read)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def timed(fn: Callable[[], object]) -> tuple[float, float, object, float]:
    """(wall s, cpu s, result, peak MiB above the resident set before)."""
    _reset_peak()
    before = _rss_kib()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return wall, cpu, out, max(0, _peak_kib() - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2500)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--tau", type=float, default=0.7)
    parser.add_argument("--concentration", type=float, default=8.0)
    parser.add_argument("--level", choices=distance.LEVELS, default="char")
    parser.add_argument("--max-pairs", type=int, default=500_000, help="the stage's distance.max_pairs")
    parser.add_argument("--baseline-pairs", type=int, default=200, help="pairs for the pure-Python programme")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=-1, help="threads of either kernel (-1: the CPUs this process may use)"
    )
    parser.add_argument("--before", action="store_true", help="also time the two previous implementations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    raw = make_pathways(args.samples, args.layers, args.experts, args.tau, args.concentration, args.seed)
    strings = [distance.encode(p, args.level) for p in raw]
    per_layer = [[distance.layer_strings(p, layer, args.level) for p in raw] for layer in range(args.layers)]
    n = len(strings)
    total_pairs = distance.n_pairs(n)
    rng = np.random.default_rng(args.seed + 1)
    dp_pairs = [tuple(rng.choice(n, size=2, replace=False)) for _ in range(args.baseline_pairs)]
    dp_chunks = [dp_pairs[r :: args.repeats] for r in range(args.repeats)]
    chunk_of_repeat = iter(dp_chunks)

    def python_dp() -> tuple[int, list[int]]:
        pairs = next(chunk_of_repeat)
        return len(pairs), [wagner_fischer(strings[i], strings[j]) for i, j in pairs]

    passes: dict[str, Callable[[], object]] = {
        "all_pairs": lambda: distance.mean_pairwise(strings, workers=args.workers),
        "subsample": lambda: distance.mean_pairwise(strings, args.max_pairs, seed=args.seed, workers=args.workers),
        "layerwise": lambda: [
            distance.mean_pairwise(layer, args.max_pairs, seed=args.seed, workers=args.workers) for layer in per_layer
        ],
        "python_dp": python_dp,
    }
    if args.before:
        hint = distance.score_hint(strings)
        passes["rapidfuzz"] = lambda: distance.rapidfuzz_upper_triangle(strings, args.workers, hint=hint) / total_pairs
        passes["full_matrix"] = lambda: full_matrix_mean(strings, args.workers)
    # numba compiles the kernels once per machine (or loads them from its cache), before the timings
    levenshtein.pair_sums(strings[:2])
    levenshtein.pair_distances(strings[:2], np.array([0]), np.array([1]))
    load_before = os.getloadavg()
    wall: dict[str, list[float]] = {k: [] for k in passes}
    cpu: dict[str, list[float]] = {k: [] for k in passes}
    peak: dict[str, float] = dict.fromkeys(passes, 0.0)
    results: dict[str, object] = {}
    dp_per_pair: list[float] = []
    dp_checked = 0
    names = list(passes)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            w, c, out, mib = timed(passes[name])
            wall[name].append(w)
            cpu[name].append(c)
            peak[name] = max(peak[name], mib)
            if name == "python_dp":
                count, dists = out  # type: ignore[misc]
                pairs = dp_chunks[r]
                fast = process.cpdist(
                    [strings[i] for i, _ in pairs], [strings[j] for _, j in pairs], scorer=Levenshtein.distance
                )
                if list(map(int, fast)) != dists:
                    raise SystemExit("the pure-Python programme and rapidfuzz disagree")
                dp_checked += count
                dp_per_pair.append(w / max(count, 1))
            else:
                results[name] = out
            print(f"repeat {r + 1} {name:12} {w:8.2f} s wall {c:8.2f} s cpu  peak +{mib:6.1f} MiB", flush=True)
    load_after = os.getloadavg()

    lengths = [len(s) for s in raw]
    experts_kept = [len(layer.split(pathways.EXPERT_SEP)) for p in raw for layer in p.split(pathways.LAYER_SEP)]
    all_pairs_mean = results["all_pairs"][1]  # type: ignore[index]
    sub_mean = results["subsample"][1]  # type: ignore[index]
    for before in ("rapidfuzz", "full_matrix"):
        if before in results and results[before] != all_pairs_mean:
            raise SystemExit(f"all_pairs {all_pairs_mean} != {before} {results[before]}")
    med = {k: statistics.median(v) for k, v in wall.items()}
    dp_s_per_pair = statistics.median(dp_per_pair)
    dp_extrapolated = dp_s_per_pair * total_pairs

    print(
        f"\n{n} samples, {total_pairs:,} pairs, {args.layers} layers x {args.experts} experts, tau {args.tau}, "
        f"level {args.level}: {np.mean(experts_kept):.1f} experts per layer, strings of {np.mean(lengths):.0f} "
        f"characters (min {min(lengths)}, max {max(lengths)}), mean distance {all_pairs_mean:.1f}"
    )
    print(f"medians of {args.repeats} interleaved repeats, rapidfuzz workers {args.workers}, {os.cpu_count()} CPUs")
    print(f"{'pass':12} {'pairs':>12} {'wall s':>9} {'cpu s':>9} {'us/pair':>9} {'peak MiB':>9}")
    counts = {
        "all_pairs": total_pairs,
        "rapidfuzz": total_pairs,
        "full_matrix": total_pairs,
        "subsample": min(args.max_pairs, total_pairs),
        "layerwise": args.layers * min(args.max_pairs, total_pairs),
    }
    for name in names:
        pairs = counts.get(name, len(dp_pairs) / args.repeats)
        print(
            f"{name:12} {pairs:>12,.0f} {med[name]:>9.2f} {statistics.median(cpu[name]):>9.2f} "
            f"{med[name] / pairs * 1e6:>9.2f} {peak[name]:>9.1f}"
        )
    print(
        f"pure-Python Wagner-Fischer: {dp_s_per_pair * 1e3:.1f} ms per pair ({dp_checked} pairs, equal to rapidfuzz), "
        f"extrapolated to all {total_pairs:,} pairs: {dp_extrapolated / 3600:.1f} h on one core; "
        f"all_pairs is {dp_extrapolated / med['all_pairs']:,.0f}x faster"
    )
    print(
        f"subsample of {counts['subsample']:,} pairs: mean {sub_mean:.2f} vs all pairs {all_pairs_mean:.2f} "
        f"({(sub_mean - all_pairs_mean) / all_pairs_mean * 100:+.3f}%)"
    )
    for before in ("rapidfuzz", "full_matrix"):
        if before in med:
            print(f"all_pairs vs {before} (before): {med[before] / med['all_pairs']:.2f}x faster, same mean")
    print(f"goal: all pairs under 30 s: {'met' if med['all_pairs'] < 30 else 'MISSED'} ({med['all_pairs']:.1f} s)")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, on {os.cpu_count()} CPUs")
    summary = {
        "benchmark": "pathway_distance",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "samples": n,
        "pairs": total_pairs,
        "layers": args.layers,
        "experts": args.experts,
        "tau": args.tau,
        "level": args.level,
        "concentration": args.concentration,
        "experts_per_layer_mean": round(float(np.mean(experts_kept)), 2),
        "string_chars_mean": round(float(np.mean(lengths)), 1),
        "mean_distance": all_pairs_mean,
        "subsample_mean_distance": sub_mean,
        "max_pairs": args.max_pairs,
        "workers": args.workers,
        "repeats": args.repeats,
        "wall_s": {k: [round(t, 3) for t in v] for k, v in wall.items()},
        "wall_s_median": {k: round(v, 3) for k, v in med.items()},
        "cpu_s_median": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        "peak_mib": {k: round(v, 1) for k, v in peak.items()},
        "python_dp_s_per_pair": round(dp_s_per_pair, 5),
        "python_dp_pairs": dp_checked,
        "python_dp_extrapolated_s": round(dp_extrapolated),
        "speedup_vs_python_dp": round(dp_extrapolated / med["all_pairs"]),
        "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    for before in ("rapidfuzz", "full_matrix"):
        if before in med:
            summary[f"speedup_vs_{before}"] = round(med[before] / med["all_pairs"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
