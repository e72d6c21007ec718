"""Group matching's embedding cost per job: what each match_groups job pays to embed a task's groups.

Each repeat starts a fresh Python process, as Snakemake starts a job: it imports
`grokpath.embeddings` (or, with --baseline-embeddings FILE, that version of embeddings.py, run
alternately beside it), loads all-MiniLM-L6-v2 and embeds --texts short texts (sums and family
facts, like the embedded default's samples and test prompts). The process's wall time is what a
job spends on embedding, interpreter start, imports and model loading included ("work": from
before the import to the vectors); the vectors of both versions are compared. Prints a table
and, as its last line, one JSON object with the figures.

    python benchmarks/embedding.py [--texts 300] [--repeats 3] [--baseline-embeddings FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    names = ["kalomi", "zoteru", "brava", "tesh", "mirun", "olaf", "quen"]
    texts = []
    for i in range(n):
        if i % 2:
            a, b = rng.randrange(100), rng.randrange(100)
            texts.append(f"{a} + {b} = {a + b}")
        else:
            texts.append(
                f"the {rng.choice(['mother', 'father', 'teacher'])} of {rng.choice(names)} is {rng.choice(names)}"
            )
    return texts


def child(args: argparse.Namespace) -> None:
    """One job's work, timed from before the import; prints one JSON line."""
    start = time.perf_counter()
    if args.module:
        sys.path.insert(0, str(HERE))
        from baseline import load_module

        module = load_module(args.module, "baseline_embeddings")
    else:
        from grokpath import embeddings as module
    vectors = module.embed(make_texts(args.texts))  # the libraries and the model load on the first call
    work = time.perf_counter() - start
    np.save(args.out, vectors)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"work_s": work, "peak_mib": peak_mib}))


def run_one(version: str, module: str | None, texts: int, out: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", "--texts", str(texts), "--out", str(out)]
    if module:
        cmd += ["--module", module]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{version} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300, help="texts embedded per job")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-embeddings", help="another embeddings.py, timed alternately beside this one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    versions = {"current": None}
    if args.baseline_embeddings:
        versions["baseline"] = str(Path(args.baseline_embeddings).resolve())
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
    with tempfile.TemporaryDirectory(prefix="grokpath-embedding-") as tmp:
        for _ in range(args.repeats):
            for version, module in versions.items():  # alternating: the machine's drift hits both
                runs[version].append(run_one(version, module, args.texts, Path(tmp) / f"{version}.npy"))
        vectors = {v: np.load(Path(tmp) / f"{v}.npy") for v in versions}

    def median(version: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[version]), 3)

    print(f"\none fresh process per job, {args.texts} texts, medians of {args.repeats} repeats")
    print(f"{'version':10s} {'wall s':>8s} {'work s':>8s} {'peak RSS MiB':>13s}")
    for v in versions:
        print(f"{v:10s} {median(v, 'wall_s'):8.2f} {median(v, 'work_s'):8.2f} {median(v, 'peak_mib'):13.0f}")
    summary: dict[str, object] = {
        "benchmark": "embedding",
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "texts": args.texts,
        "repeats": args.repeats,
        "shape": list(vectors["current"].shape),
        "wall_s": {v: [round(r["wall_s"], 3) for r in runs[v]] for v in versions},
        "wall_s_median": {v: median(v, "wall_s") for v in versions},
        "work_s_median": {v: median(v, "work_s") for v in versions},
        "peak_mib_median": {v: median(v, "peak_mib") for v in versions},
    }
    if "baseline" in versions:
        diff = float(np.abs(vectors["current"] - vectors["baseline"]).max())
        ratio = median("current", "wall_s") / median("baseline", "wall_s")
        print(f"current / baseline {ratio:.3f}x wall; largest difference between their vectors {diff:.2e}")
        summary |= {"ratio_current_vs_baseline": round(ratio, 4), "max_abs_difference": diff}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
