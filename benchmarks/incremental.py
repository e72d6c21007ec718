"""Incremental work: jobs and wall time of reruns on a 40-checkpoint series of the default model.

The embedded default with a checkpoint every 25 steps (40 checkpoints, steps 100..1075) and the
monitors only (benchmarks need ~60 s of CPU per checkpoint on 2 cores; they are not what this
measures). After a full run from scratch: (a) a rerun with nothing changed, (b) one checkpoint
added (step 1100, the series' last), (c) tau changed from 0.7 to 0.6. Each reports the jobs
Snakemake planned (from a dry run) and the wall time of the real run; (a) is repeated and its
median reported. Next to it, the start of Snakemake alone (`snakemake --version`: importing it and
its plugins), which every run pays: where a SLURM client cannot reach its controller it is ~10 s,
because the SLURM executor plugin runs `scontrol show config` (10 s timeout) when it is imported.
Prints a table and, as its last line, one JSON object with the figures.

`--configfile` takes another config's pretrained series instead (its `pretrain` model):
`--checkpoints N --every S` are the N checkpoints S steps apart that end S steps before its last
step, which (b) adds (tests/test_benchmarks.py: the test config, 2 checkpoints 10 steps apart).

    python benchmarks/incremental.py [--cores 8] [--repeats 3] [--configfile config.yaml]
        [--checkpoints 40] [--every 25]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(wd: Path, cores: int, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    run = subprocess.run(
        [SNAKEMAKE, "--cores", str(cores), "--configfile", "bench.yaml", *args],
        cwd=wd,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return time.perf_counter() - start, run.stdout + run.stderr


def snakemake_start(repeats: int) -> float:
    """Median wall time of `snakemake --version`."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([SNAKEMAKE, "--version"], capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def planned_jobs(wd: Path, cores: int) -> dict[str, int]:
    _, out = snakemake(wd, cores, "-n", "--quiet", "rules")
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", out, re.MULTILINE) if k != "total"}


def pretrained_series(config: dict) -> tuple[str, int]:
    """The name and last step of the config's pretrained model (`source: pretrain`)."""
    for name, model in config["models"].items():
        if model.get("source") == "pretrain":
            return name, model["pretrain"]["max_steps"]
    raise SystemExit(f"--configfile: no model with source: pretrain among {sorted(config['models'])}")


def write_config(wd: Path, base: dict, every: int, steps: list[int], tau: float) -> None:
    config = copy.deepcopy(base)
    config["tau"] = tau
    name, _ = pretrained_series(config)
    model = config["models"][name]
    model["pretrain"]["save_every"] = every
    model["checkpoints"] = [{"id": f"step{s:06d}", "step": s} for s in steps]
    for domain in config["domains"].values():
        domain["tasks"] = []
    (wd / "bench.yaml").write_text(yaml.safe_dump(config))


def rerun_with_rules(wd: Path, cores: int) -> dict[str, float | int]:
    """Plan and run the workflow once: jobs, wall time and the planned jobs of each rule."""
    jobs = planned_jobs(wd, cores)
    wall, _ = snakemake(wd, cores)
    return {"jobs": sum(jobs.values()), "wall_s": wall, **{f"rule_{k}": v for k, v in jobs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configfile", type=Path, default=ROOT / "config.yaml", help="whose series to extend")
    parser.add_argument("--checkpoints", type=int, default=40, help="checkpoints of the first run")
    parser.add_argument("--every", type=int, default=25, help="steps between checkpoints (the series' save_every)")
    args = parser.parse_args()
    base = yaml.safe_load(args.configfile.read_text())
    _, last = pretrained_series(base)
    first = last - args.checkpoints * args.every
    if args.checkpoints < 1 or args.every < 1 or first < args.every or last % args.every:
        parser.error(
            f"--checkpoints {args.checkpoints} --every {args.every}, then step {last} (the series' last): allowed "
            f"are N >= 1 and S >= 1 with S dividing {last} (pretraining saves every S steps) and N * S < {last}"
        )
    steps = list(range(first, last, args.every))
    figures: dict[str, dict[str, float | int]] = {}
    with tempfile.TemporaryDirectory(prefix="grokpath-incremental-") as tmp:
        wd = Path(tmp)
        shutil.copy(ROOT / "Snakefile", wd)
        for name in ("workflow", "envs"):
            shutil.copytree(ROOT / name, wd / name)
        write_config(wd, base, args.every, steps, 0.7)
        jobs = planned_jobs(wd, args.cores)
        wall, _ = snakemake(wd, args.cores)
        figures["scratch"] = {"jobs": sum(jobs.values()), "wall_s": wall}

        walls = []
        for _ in range(args.repeats):
            jobs = planned_jobs(wd, args.cores)
            wall, _ = snakemake(wd, args.cores)
            walls.append(wall)
        figures["unchanged"] = {"jobs": sum(jobs.values()), "wall_s": statistics.median(walls)}
        print(f"unchanged reruns: {', '.join(f'{w:.1f}' for w in walls)} s", flush=True)
        figures["snakemake_start"] = {"jobs": 0, "wall_s": snakemake_start(args.repeats)}

        write_config(wd, base, args.every, [*steps, last], 0.7)
        figures["added_checkpoint"] = rerun_with_rules(wd, args.cores)
        write_config(wd, base, args.every, [*steps, last], 0.6)
        figures["changed_tau"] = rerun_with_rules(wd, args.cores)

    print(f"{'change':<34}{'jobs':>6}{'wall s':>9}")
    labels = {
        "scratch": f"from scratch ({len(steps)} checkpoints)",
        "unchanged": f"(a) nothing changed, median of {args.repeats}",
        "added_checkpoint": f"(b) one checkpoint added (step {last})",
        "changed_tau": "(c) tau 0.7 -> 0.6",
        "snakemake_start": f"snakemake --version, median of {args.repeats}",
    }
    for key, label in labels.items():
        print(f"{label:<34}{figures[key]['jobs']:>6}{figures[key]['wall_s']:>9.1f}")
    if figures["snakemake_start"]["wall_s"] > 5:
        print("  Snakemake alone takes over 5 s to start: is there a SLURM client whose controller does not answer?")
    for key in ("added_checkpoint", "changed_tau"):
        rules = {k[5:]: v for k, v in figures[key].items() if k.startswith("rule_")}
        print(f"  {key}: {rules}")
    print(
        json.dumps(
            {
                "benchmark": "incremental",
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "cores": args.cores,
                "configfile": os.path.relpath(args.configfile, ROOT),
                "checkpoints": len(steps),
                **{f"{k}_{m}": v for k, d in figures.items() for m, v in d.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
