"""End-to-end wall time and peak memory of the default run (`snakemake --cores 8` on config.yaml).

Each repeat runs from scratch in a fresh temporary copy of the workflow. Prints a table and, as
its last line, one JSON object with the figures. Where the time goes comes from the benchmark file
every rule writes (`benchmarks/RULE/...tsv`, Snakemake's `benchmark:`): per rule, the jobs, their
summed wall seconds, the longest job and the largest resident set, medians over repeats. Jobs run
side by side (`--cores 8` on fewer CPUs), so a job's seconds include waiting for a CPU and the sums
add up to more than the run; `--cores 1` runs one job at a time, and then each rule's seconds are
its own cost. Snakemake's CPU seconds are left out: it samples them every second for a job's first
30 s and every 30 s after, and what a job spends after its last sample is not counted (0.00 s for a
0.49 s compute_pathways job). Rules without a benchmark file (the figures, Snakemake's own
planning) are not in the table. The live monitors' share of pretraining (`pretrain.monitor_every`)
is read from the file metadata of each model's `live_monitors.parquet` (the pretraining job times
them itself: seconds spent in the monitors, against the rest of its run).

    python benchmarks/default_run.py [--repeats 3] [--cores 8] [--configfile config.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
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
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def rule_costs(wd: Path) -> dict[str, dict[str, float]]:
    """Per rule, from the run's Snakemake benchmark files: jobs, summed wall seconds, the longest
    job's seconds and the largest max_rss (MiB, as sampled)."""
    costs: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "max_s": 0.0, "max_rss_mib": 0.0})
    for tsv in sorted((wd / "benchmarks").glob("*/**/*.tsv")):
        rule = tsv.relative_to(wd / "benchmarks").parts[0]
        with open(tsv, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                c = costs[rule]
                c["jobs"] += 1
                c["s"] += float(row["s"])
                c["max_s"] = max(c["max_s"], float(row["s"]))
                c["max_rss_mib"] = max(c["max_rss_mib"], _number(row.get("max_rss")))
    return dict(costs)


def live_monitor_costs(wd: Path) -> dict[str, float]:
    """Summed over the run's pretrained models: seconds in the live monitors and in the whole
    pretraining loop (monitors included), from each live_monitors.parquet's metadata."""
    spent = total = 0.0
    for path in sorted(wd.glob("results/pretrain/*/live_monitors.parquet")):
        meta = json.loads(pq.read_schema(path).metadata[b"grokpath"])
        spent += meta["monitor_seconds"]
        total += meta["run_seconds"]
    return {"monitor_s": spent, "pretrain_s": total}


def _number(value: str | None) -> float:
    """A benchmark file's figure; Snakemake writes NA (or -) where it could not measure one."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def run_once(
    cores: int, configfile: str, keep: Path | None
) -> tuple[float, float, dict[str, dict[str, float]], dict[str, float]]:
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
        costs = rule_costs(wd)
        live = live_monitor_costs(wd)
        if keep is not None:  # the last run's results, to look at
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(wd, keep, ignore=shutil.ignore_patterns("resources"))
    # ru_maxrss of children: the largest resident set of any process the runs started (KiB on Linux).
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mib, costs, live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--keep", type=Path, help="copy the last run's folder (without checkpoints) here")
    args = parser.parse_args()
    walls, peaks, runs, lives = [], [], [], []
    for i in range(args.repeats):
        wall, peak, costs, live = run_once(args.cores, args.configfile, args.keep)
        walls.append(wall)
        peaks.append(peak)
        runs.append(costs)
        lives.append(live)
        print(f"run {i + 1}: {wall:7.1f} s   peak RSS so far {peak:7.0f} MiB", flush=True)
    rules = sorted({rule for costs in runs for rule in costs})
    stages = {
        rule: {
            key: round(statistics.median(costs.get(rule, {}).get(key, 0.0) for costs in runs), 1)
            for key in ("jobs", "s", "max_s", "max_rss_mib")
        }
        for rule in rules
    }
    stages = dict(sorted(stages.items(), key=lambda item: -item[1]["s"]))
    print(f"\n{'rule (medians over runs)':28} {'jobs':>5} {'wall s':>8} {'longest s':>10} {'max RSS MiB':>12}")
    for rule, c in stages.items():
        print(f"{rule:28} {c['jobs']:>5.0f} {c['s']:>8.1f} {c['max_s']:>10.1f} {c['max_rss_mib']:>12.0f}")
    # the monitors' seconds over the rest of pretraining: what they add to it
    overhead = [x["monitor_s"] / (x["pretrain_s"] - x["monitor_s"]) for x in lives if x["pretrain_s"]]
    if overhead:
        print(
            f"live monitors: {statistics.median(x['monitor_s'] for x in lives):.1f} s of "
            f"{statistics.median(x['pretrain_s'] for x in lives):.1f} s of pretraining, "
            f"{100 * statistics.median(overhead):.2f}% on the rest of it (medians over runs)"
        )
    result = {
        "benchmark": "default_run",
        "configfile": args.configfile,
        "cores": args.cores,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "wall_s": [round(w, 1) for w in walls],
        "wall_s_median": round(statistics.median(walls), 1),
        "peak_rss_mib": round(max(peaks)),
        "rules": stages,
        "live_monitors": [{k: round(v, 1) for k, v in x.items()} for x in lives],
        "live_monitor_overhead": round(statistics.median(overhead), 4) if overhead else None,
    }
    print(f"median {result['wall_s_median']} s over {args.repeats} runs, peak RSS {result['peak_rss_mib']} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
