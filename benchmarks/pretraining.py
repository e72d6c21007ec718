"""Pretraining of the embedded series: wall time of its first steps, where the time goes, and
(with `--baseline FILE`) against another version of pretrain.py, side by side.

Pretraining is most of the default run (benchmarks/default_run.py). Each repeat runs the series'
recipe (`models.MODEL.pretrain` of the config, with `--steps` in place of its max_steps) from
scratch in a fresh folder, as the `pretrain_tiny_moe` job does, live monitors included; with
`--baseline`, that version runs too, in a shuffled order each repeat (seeded). The current
version's own accounts (the trajectory's file metadata) say how much of its run went to the
evaluations of the trajectory, the live monitors and the checkpoint saves; the rest is training.
Both versions must train the same series: the benchmark exits if a checkpoint's weights or the
trajectory differ between them (`pretrain` is deterministic), so a speed-up that changed the
series cannot pass for one.

    python benchmarks/pretraining.py [--steps 100] [--repeats 3] [--configfile config.yaml]
        [--model tiny-moe] [--baseline FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported

import argparse
import json
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch
from baseline import load_module

from grokpath import pretrain as current
from grokpath import tables
from grokpath.config import load_config


def run(module: ModuleType, settings: dict, seed: int, out: Path) -> float:
    """One pretraining run of `module`'s pretrain in `out`; its wall seconds."""
    cfg = module.PretrainConfig.from_dict({**settings, "seed": seed})
    start = time.perf_counter()
    module.pretrain(
        cfg, "bench", out / "checkpoints", out / "data", out / "trajectory.parquet", out / "grokking.json",
        out / "live.parquet" if cfg.monitor_every > 0 else None,
    )  # fmt: skip
    return time.perf_counter() - start


def same_series(a: Path, b: Path) -> list[str]:
    """What differs between two runs' outputs: each checkpoint's weights, the trajectory's values."""
    diffs = []
    steps = sorted(p.name for p in (a / "checkpoints").iterdir())
    if steps != sorted(p.name for p in (b / "checkpoints").iterdir()):
        diffs.append("checkpoint steps")
    for step in steps:
        weights = "model.safetensors"
        if (a / "checkpoints" / step / weights).read_bytes() != (b / "checkpoints" / step / weights).read_bytes():
            diffs.append(f"{step} weights")
    ta = tables.read(a / "trajectory.parquet", tables.TRAJECTORY_SCHEMA)
    if not ta.equals(tables.read(b / "trajectory.parquet", tables.TRAJECTORY_SCHEMA)):
        diffs.append("trajectory")
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per run (the series: 1100)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configfile", type=Path, default=Path(__file__).resolve().parents[1] / "config.yaml")
    parser.add_argument("--model", default="tiny-moe", help="a model of the config with source: pretrain")
    parser.add_argument("--baseline", type=Path, help="another pretrain.py to time as `baseline`")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = load_config(args.configfile)
    spec = config["models"].get(args.model)
    if spec is None or spec["source"] != "pretrain":
        pretrained = [m for m, s in config["models"].items() if s["source"] == "pretrain"]
        raise SystemExit(f"--model {args.model}: not a pretrain model of {args.configfile}; those are {pretrained}")
    settings = {**spec["pretrain"], "max_steps": args.steps}
    versions = {"current": current}
    if args.baseline:
        versions["baseline"] = load_module(args.baseline, "baseline_pretrain")
    wall: dict[str, list[float]] = {name: [] for name in versions}
    accounts: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="grokpath-pretrain-") as tmp:
        order, shuffle = list(versions), random.Random(args.seed).shuffle
        for repeat in range(args.repeats):
            shuffle(order)
            for name in order:
                out = Path(tmp) / f"{name}{repeat}"
                wall[name].append(run(versions[name], settings, config["seed"], out))
            meta = tables.read_metadata(Path(tmp) / f"current{repeat}" / "trajectory.parquet")
            accounts.append({k: meta[k] for k in ("run_seconds", "evaluation_seconds", "save_seconds")})
            live = Path(tmp) / f"current{repeat}" / "live.parquet"
            accounts[-1]["monitor_seconds"] = tables.read_metadata(live)["monitor_seconds"] if live.exists() else 0.0
            if args.baseline:
                diffs = same_series(Path(tmp) / f"current{repeat}", Path(tmp) / f"baseline{repeat}")
                if diffs:
                    raise SystemExit(f"the baseline trained another series: {', '.join(diffs)} differ")
            for name in versions:
                shutil.rmtree(Path(tmp) / f"{name}{repeat}")
    med = {name: statistics.median(times) for name, times in wall.items()}
    parts = {k: statistics.median(a[k] for a in accounts) for k in accounts[0]}
    parts["training_seconds"] = parts["run_seconds"] - sum(
        parts[k] for k in ("evaluation_seconds", "save_seconds", "monitor_seconds")
    )
    print(f"\npretraining {args.model} of {args.configfile.name}, {args.steps} steps, medians of {args.repeats} runs")
    for name, times in wall.items():
        print(f"{name:9} {med[name]:8.1f} s  ({', '.join(f'{t:.1f}' for t in times)})")
    print(
        "current: training {training_seconds:.1f} s, evaluations {evaluation_seconds:.1f} s, live monitors "
        "{monitor_seconds:.1f} s, checkpoint saves {save_seconds:.1f} s, of {run_seconds:.1f} s in its loop".format(
            **parts
        )
    )
    summary: dict[str, object] = {
        "benchmark": "pretraining",
        "model": args.model,
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "threads": settings["threads"],
        "wall_s": {name: [round(t, 2) for t in times] for name, times in wall.items()},
        "wall_s_median": {name: round(t, 2) for name, t in med.items()},
        "parts_s_median": {k: round(v, 2) for k, v in parts.items()},
    }
    if args.baseline:
        ratios = [c / b for c, b in zip(wall["current"], wall["baseline"], strict=True)]
        summary["ratio_current_vs_baseline"] = round(statistics.median(ratios), 4)
        summary["same_series"] = True
        print(
            f"current / baseline {summary['ratio_current_vs_baseline']:.3f}x (median of per-repeat ratios); same series"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
