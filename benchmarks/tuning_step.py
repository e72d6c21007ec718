"""LoRA instruction tuning: seconds per optimizer step and peak memory of `tuning.lora_finetune`,
the `instruction_tune` stage's training loop, on a random-weight OLMoE of the shapes of
`routing_overhead.py` (`default`, `large`, and `olmoe`: OLMoE-1B-7B's, for a GPU).

For each example length (every example is exactly that many tokens, the response half of it, as
`max_length` cuts the paper's longest ones), `lora_finetune` runs one epoch of `--warmup` steps
(peft's wrapping, the allocator, kernels) and then one of `--steps` steps, timed; the step time is
the timed epoch over its steps. The paper's settings otherwise (rank 32, q/k/v, batch 4, lr 5e-5).
Peak memory is `torch.cuda.max_memory_allocated` over the timed epoch on a GPU, the peak resident
set of the process on a CPU. A length whose batch does not fit in the GPU's memory is reported as
out of memory. From the step time, the time of the paper's tuning of one checkpoint on one family:
steps = ceil(examples / batch) x epochs (MetaMathQA: 395,000 examples; examples are shorter than
2048 tokens, so the figure at the median length is the realistic one).

    python benchmarks/tuning_step.py [--model default|large|olmoe] [--device cpu|cuda]
        [--dtype float32|bfloat16] [--lengths 256,2048] [--steps 8] [--warmup 2] [--batch-size 4]
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported

import argparse
import json
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routing_overhead import SHAPES, build  # a sibling script, not a package

from grokpath import tuning
from grokpath.tokenizer import train_word_tokenizer

METAMATHQA_EXAMPLES = 395_000
WORDS = 200  # fits every shape's vocabulary (default: 300)


def settings(length: int, batch_size: int) -> dict[str, object]:
    return {
        "rank": 32,
        "alpha": None,
        "dropout": 0.1,
        "lr": 5e-5,
        "batch_size": batch_size,
        "max_length": length,
        "epochs": 1,
        "target_modules": ["q_proj", "k_proj", "v_proj"],
    }


def examples(n: int, length: int, seed: int) -> list[tuple[str, str]]:
    """`n` prompt/response pairs of `length` tokens together (the tokenizer adds <bos>, the loop <eos>)."""
    rng = np.random.default_rng(seed)
    half = (length - 2) // 2

    def words(k: int) -> str:
        return " ".join(f"w{i}" for i in rng.integers(0, WORDS, size=k))

    return [(words(half), words(length - 2 - half)) for _ in range(n)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args: argparse.Namespace, model: torch.nn.Module, tok: object, length: int) -> dict[str, object]:
    bs = args.batch_size
    if args.warmup:  # --warmup 0: no warm-up run (lora_finetune refuses an empty example list)
        tuning.lora_finetune(model, tok, examples(args.warmup * bs, length, 1), settings(length, bs), seed=0)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    _sync(args.device)
    t0 = time.perf_counter()
    tuning.lora_finetune(model, tok, examples(args.steps * bs, length, 2), settings(length, bs), seed=0)
    _sync(args.device)
    step = (time.perf_counter() - t0) / args.steps
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # the process's peak so far: the model and the largest step
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps_paper = math.ceil(METAMATHQA_EXAMPLES / bs) * 3
    return {
        "length": length,
        "step_s": round(step, 4),
        "tokens_per_s": round(bs * length / step),
        "peak_mib": round(peak, 1),
        "metamathqa_3_epochs_h": round(steps_paper * step / 3600, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(SHAPES), default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--lengths", default="256,2048", help="example lengths in tokens, comma-separated")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the stage uses 1)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be at least 1 and --warmup at least 0, got {args.steps} and {args.warmup}")
    torch.set_num_threads(args.threads)
    tok = train_word_tokenizer([" ".join(f"w{i}" for i in range(WORDS))])
    lengths = [int(x) for x in args.lengths.split(",")]
    model = build(SHAPES[args.model], max(lengths), args.dtype, args.device)
    results = []
    for length in lengths:
        try:
            results.append(measure(args, model, tok, length))
        except torch.OutOfMemoryError:
            results.append({"length": length, "out_of_memory": True})
            torch.cuda.empty_cache()
    where = f"{args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    print(f"\n{args.model} model, {where}, {args.dtype}, batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'tokens':>7} {'s/step':>8} {'tokens/s':>9} {'peak MiB':>10} {'MetaMathQA x3 h':>16}")
    for r in results:
        if r.get("out_of_memory"):
            print(f"{r['length']:>7} out of memory")
        else:
            print(
                f"{r['length']:>7} {r['step_s']:>8.3f} {r['tokens_per_s']:>9} {r['peak_mib']:>10} "
                f"{r['metamathqa_3_epochs_h']:>16}"
            )
    summary = {
        "benchmark": "tuning_step",
        "model": args.model,
        "device": where,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
