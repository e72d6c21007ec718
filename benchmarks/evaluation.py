"""Evaluation stage: wall time of `stages.run_lm_eval` on the embedded default's four benchmarks.

One checkpoint of a random-weight OLMoE of the default's shape (`pretrain.build_model` with
`pretrain.ModelShape()`: hidden 64, 4 layers, 8 experts, top-2; a word tokenizer), brought in as a
`local` checkpoint, and the default config's benchmarks: two `generate` and two `choice` tasks
(workflow/lm_eval_tasks), each over a 400-item test set of modular sums (`--items`), zero-shot
(`--fewshot`). Every repeat evaluates with a fresh response cache, so every request reaches the
model, as on a checkpoint's first evaluation. Process start, imports and model loading are outside
the timing: they are what the per-rule table of default_run.py adds.

`--baseline-tasks DIR` times the same stage with the local task YAMLs of DIR (e.g. an older
`workflow/lm_eval_tasks`, `git archive HEAD~1 workflow/lm_eval_tasks | tar -x -C /tmp/old`), and
`--baseline-evaluation FILE` with another evaluation.py (`git show HEAD~1:src/grokpath/evaluation.py
> /tmp/evaluation_old.py`), or both at once: the baseline runs one after the current code in every
repeat, in a rotating order, and both must give the same predictions and scores for every item.

    python benchmarks/evaluation.py [--repeats 5] [--items 400] [--fewshot 0] [--baseline-tasks DIR]
        [--baseline-evaluation FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import json
import logging
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import torch
from baseline import load_module

import grokpath
from grokpath import checkpoints, evaluation, pretrain, stages
from grokpath.tokenizer import train_word_tokenizer

MODULUS = 97
# the default config's benchmarks (config.yaml): name -> local task kind
TASKS = {
    "math_generate": "generate",
    "math_choice": "choice",
    "code_generate": "generate",
    "commonsense_choice": "choice",
}


def make_checkpoint(root: Path) -> Path:
    """A random OLMoE of the embedded default's shape with a word tokenizer, as a local checkpoint."""
    tok = train_word_tokenizer([" ".join(str(i) for i in range(MODULUS)) + " + ="])
    pretrain.build_model(pretrain.ModelShape(), tok, seed=0).save_pretrained(root / "src")
    tok.save_pretrained(root / "src")
    checkpoints.materialize_folder(root / "src", root / "checkpoint", "local", "1")
    return root / "checkpoint"


def make_test_set(path: Path, n: int) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b = rng.randrange(MODULUS), rng.randrange(MODULUS)
        answer = (a + b) % MODULUS
        choices = [str((answer + k) % MODULUS) for k in range(4)]
        rows.append(
            {"item_id": f"item-{i}", "prompt": f"{a} + {b} =", "answer": str(answer), "choices": choices, "label": 0}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def run(checkpoint: Path, test_set: Path, out: Path, fewshot: int) -> float:
    tasks = [
        {"name": name, "domain": "d", "task": kind, "num_fewshot": fewshot, "limit": None}
        for name, kind in TASKS.items()
    ]
    start = time.perf_counter()
    stages.run_lm_eval(
        "bench",
        "step0",
        str(checkpoint),
        tasks,
        {"d": str(test_set)},
        {name: str(out / f"{name}.json") for name in TASKS},
        {name: str(out / f"{name}.samples.parquet") for name in TASKS},
        str(out / "cache"),
        {"device": "cpu", "dtype": "float32", "batch_size": 32},
        0,
    )
    return time.perf_counter() - start


@contextlib.contextmanager
def evaluation_code(module: ModuleType, tasks: Path) -> Iterator[None]:
    """`stages.run_lm_eval` runs with `module` as grokpath.evaluation, reading the YAMLs of `tasks`."""
    saved = grokpath.evaluation, module.TASKS_DIR
    grokpath.evaluation = sys.modules["grokpath.evaluation"] = module  # stages imports it per call
    module.TASKS_DIR = tasks
    getattr(module, "_ENVIRONMENT", {}).clear()  # made once per process, and each job is a new process
    try:
        yield
    finally:
        grokpath.evaluation = sys.modules["grokpath.evaluation"] = saved[0]
        module.TASKS_DIR = saved[1]


def items(out: Path) -> dict[str, list[dict]]:
    return {name: pq.read_table(out / f"{name}.samples.parquet").to_pylist() for name in TASKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--items", type=int, default=400, help="items per test set (the default config's: 400)")
    parser.add_argument("--fewshot", type=int, default=0)
    parser.add_argument("--baseline-tasks", type=Path, help="another folder of local task YAMLs to time as `baseline`")
    parser.add_argument("--baseline-evaluation", type=Path, help="another evaluation.py to time as `baseline`")
    args = parser.parse_args()
    if args.baseline_tasks and not all((args.baseline_tasks / f).is_file() for f in evaluation.LOCAL_KINDS.values()):
        raise SystemExit(f"--baseline-tasks {args.baseline_tasks}: needs {sorted(evaluation.LOCAL_KINDS.values())}")
    logging.disable(logging.WARNING)  # lm-eval's per-call notices would bury the table
    torch.set_num_threads(1)  # the stage's evaluation jobs run with one thread
    variants = {"current": (evaluation, evaluation.TASKS_DIR)}
    if args.baseline_tasks or args.baseline_evaluation:
        variants["baseline"] = (
            load_module(args.baseline_evaluation, "baseline_evaluation") if args.baseline_evaluation else evaluation,
            args.baseline_tasks.resolve() if args.baseline_tasks else evaluation.TASKS_DIR,
        )
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="grokpath-evaluation-") as tmp:
        root = Path(tmp)
        checkpoint = make_checkpoint(root)
        test_set = root / "test.jsonl"
        make_test_set(test_set, args.items)
        times: dict[str, list[float]] = {name: [] for name in variants}
        last: dict[str, Path] = {}
        names = list(variants)
        for r in range(args.repeats + 1):  # the first round warms up and is not counted
            for name in names[r % len(names) :] + names[: r % len(names)]:
                out = root / f"{name}-{r}"
                out.mkdir()
                with evaluation_code(*variants[name]):
                    seconds = run(checkpoint, test_set, out, args.fewshot)
                if r:
                    times[name].append(seconds)
                last[name] = out
        same = items(last["current"]) == items(last["baseline"]) if "baseline" in last else None
    load_after = os.getloadavg()
    med = {name: statistics.median(t) for name, t in times.items()}
    requests = args.items * sum(1 if kind == "generate" else 4 for kind in TASKS.values())
    print(f"\n{len(TASKS)} benchmarks x {args.items} items ({requests} requests), {args.fewshot}-shot, fresh caches")
    print(f"{'code':12} {'wall s':>8}  repeats")
    for name, t in times.items():
        print(f"{name:12} {med[name]:>8.3f}  {', '.join(f'{x:.2f}' for x in t)}")
    if same is not None:
        print(f"current/baseline {med['current'] / med['baseline']:.3f}x; same predictions and scores: {same}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, on {os.cpu_count()} CPUs")
    result = {
        "benchmark": "evaluation",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "items": args.items,
        "fewshot": args.fewshot,
        "requests": requests,
        "repeats": args.repeats,
        "wall_s": {name: [round(x, 3) for x in t] for name, t in times.items()},
        "wall_s_median": {name: round(v, 3) for name, v in med.items()},
        "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    if same is not None:
        result["ratio_current_vs_baseline"] = round(med["current"] / med["baseline"], 4)
        result["same_items"] = same
    print(json.dumps(result))


if __name__ == "__main__":
    main()
