"""End-to-end wall time and peak memory of the default run (`snakemake --cores 8` on config.yaml).

Each repeat runs from scratch in a fresh temporary copy of the workflow. Prints a table and, as
its last line, one JSON object with the figures.

    python benchmarks/default_run.py [--repeats 3] [--cores 8] [--configfile config.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(cores: int, configfile: str, keep: Path | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="grokpath-bench-") as tmp:
        wd = Path(tmp)
        for name in ("Snakefile", "config.yaml"):
            shutil.copy(ROOT / name, wd / name)
        for name in ("workflow", "config", "envs"):
            shutil.copytree(ROOT / name, wd / name)
        cmd = [str(Path(sys.executable).with_name("snakemake")), "--cores", str(cores), "-q"]
        if configfile != "config.yaml":
            cmd += ["--configfile", configfile]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=wd, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - start
        if keep is not None:  # the last run's results, to look at
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(wd, keep, ignore=shutil.ignore_patterns("resources"))
    # ru_maxrss of children: the largest resident set of any process the runs started (KiB on Linux).
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--keep", type=Path, help="copy the last run's folder (without checkpoints) here")
    args = parser.parse_args()
    walls, peaks = [], []
    for i in range(args.repeats):
        wall, peak = run_once(args.cores, args.configfile, args.keep)
        walls.append(wall)
        peaks.append(peak)
        print(f"run {i + 1}: {wall:7.1f} s   peak RSS so far {peak:7.0f} MiB", flush=True)
    result = {
        "benchmark": "default_run",
        "configfile": args.configfile,
        "cores": args.cores,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "wall_s": [round(w, 1) for w in walls],
        "wall_s_median": round(statistics.median(walls), 1),
        "peak_rss_mib": round(max(peaks)),
    }
    print(f"median {result['wall_s_median']} s over {args.repeats} runs, peak RSS {result['peak_rss_mib']} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
