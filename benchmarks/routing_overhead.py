"""Routing capture overhead: the extraction stage's pass against a bare forward pass of the same model.

Passes over the same samples with the same length-bucketed batches, the same `torch.inference_mode`,
the same threads and the same device, timed side by side: after one untimed warm-up of each, every
repeat runs every pass once, in a shuffled order (seeded), each writing into a fresh folder (as a
Snakemake job does: its old outputs are removed before it runs).

- `bare`: pad each batch from the tokenized samples the stage holds (`extraction.TokenRows.pad`,
  longest batches first, as `iter_batches`), move it to the device as the stage does
  (`extraction.to_device`: to a GPU without waiting), `model(..., use_cache=False).logits` (no KV
  cache, as the stage: nothing is generated); on a GPU it waits only once, after the last batch.
- `unmasked`: `bare` without the attention mask, as the stage runs its forward passes (batches are
  right-padded and every supported family attends causally, so real tokens come out the same):
  extract / unmasked is the stage's work on top of the very forward pass it runs.
- `capture`: `extraction.iter_batches(routing="full")` consumed without writing anything: the
  forward pass, the per-sample loss and the routing capture (hooks, softmax, token averages).
- `loss`: `extraction.iter_batches(routing=None)` into the stage's `_write_extraction` (what
  `extract_routing` does for a validation split): adds the per-sample NLL and the loss table.
- `extract`: `extraction.iter_batches(routing="full")` into `_write_extraction` (what it does for a
  sample split): router hooks, softmax over all experts, token averages, the routing Parquet table
  (batches gathered into row groups of `tables.ROW_GROUP_ROWS`), and the loss table.
- `baseline` (with `--baseline-extraction FILE`, `--baseline-tables FILE` and/or `--baseline-stages
  FILE`): `extract` with another version of extraction.py, given the samples as that version's
  `TokenRows` (or as lists of ids, what the stage gave a version without them), of tables.py (the
  stage's writers) and/or of stages.py (its `_write_extraction`, which builds the tables), e.g.
  `git show HEAD:src/grokpath/extraction.py > /tmp/extraction_head.py`, for a before/after
  measured in the same run.

The headline is the median over repeats of extract / bare, in wall time (the issue's goal: at most
1.05x on CPU), next to the ratio of the two passes' median times; extract / loss isolates what
capturing the routing adds to the pass that computes the loss anyway.
CPU time (`time.process_time`, all threads of this process) is reported next to wall time: on a
machine shared with other jobs it is the steadier of the two.

Models are random-weight OLMoE configs (the cost of routing capture does not depend on the
weights), token ids uniform over the vocabulary:
- `default`: the embedded tiny series' shape (hidden 64, intermediate 128, 4 layers, 4 heads,
  8 experts, top-2), vocab 300, 300 samples of 10-30 tokens, batch size 64 (the stage's default);
- `large`: hidden 512, intermediate 256, 8 layers, 8 heads, 32 experts, top-4, vocab 8192,
  32 samples of 224-288 tokens, batch size 16 (a batch of 64 such samples would hold 0.5 GiB of
  logits; the paper's 2048-token samples need a small batch too);
- `olmoe`: OLMoE-1B-7B's shape (hidden 2048, intermediate 1024, 16 layers, 16 heads, 64 experts,
  top-8, vocab 50,304), 64 samples of 256-512 tokens, batch size 16: for a GPU (`--device cuda
  --dtype bfloat16`; 28 GB while it is initialised in float32, 14 GB in bf16).
`--vocab` overrides the vocabulary (OLMoE's is 50,304). Each pass's peak memory is measured in one
more run after the timed ones: the peak resident set above the one before it, after glibc has
given its free memory back (malloc_trim; Linux clear_refs resets the peak), and with
`--device cuda` `torch.cuda.max_memory_allocated` too; `--dtype bfloat16` casts the model as
`extraction.dtype: bfloat16` does. Progress bars are off (TQDM_DISABLE) so the table stays readable.

    python benchmarks/routing_overhead.py [--model default|large|olmoe|both] [--repeats 15] [--threads 1]
        [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--samples N] [--batch-size N]
        [--vocab N] [--lengths MIN MAX] [--baseline-extraction FILE] [--baseline-tables FILE]
        [--baseline-stages FILE] [--profile]
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported

import argparse
import contextlib
import cProfile
import ctypes
import json
import platform
import pstats
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from baseline import load_module
from transformers import OlmoeConfig, OlmoeForCausalLM

from grokpath import extraction, stages

PAD_ID = 0
SHAPES = {
    # the embedded tiny series (grokpath.pretrain.ModelShape) with a word-level vocab
    "default": dict(hidden=64, intermediate=128, layers=4, heads=4, experts=8, top_k=2, vocab=300),
    # a larger OLMoE-like shape: attention, experts and head in about OLMoE's proportions
    "large": dict(hidden=512, intermediate=256, layers=8, heads=8, experts=32, top_k=4, vocab=8192),
    # allenai/OLMoE-1B-7B-0924, the paper's model: 6.9B parameters, 1.3B active (a GPU's work)
    "olmoe": dict(hidden=2048, intermediate=1024, layers=16, heads=16, experts=64, top_k=8, vocab=50304),
}
LENGTHS = {"default": (10, 30), "large": (224, 288), "olmoe": (256, 512)}
SAMPLES = {"default": 300, "large": 32, "olmoe": 64}
BATCH = {"default": 64, "large": 16, "olmoe": 16}  # olmoe: config/olmoe-paper.yaml's batch_size


def build(shape: dict[str, int], max_len: int, dtype: str, device: str, seed: int = 0) -> torch.nn.Module:
    config = OlmoeConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        num_experts=shape["experts"],
        num_experts_per_tok=shape["top_k"],
        max_position_embeddings=max(64, max_len),
        pad_token_id=PAD_ID,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    with torch.device(device):  # built where it runs: OLMoE-sized weights initialise in seconds on a GPU
        model = OlmoeForCausalLM(config)
    return model.to(dtype=getattr(torch, dtype)).eval()


def make_samples(n: int, lengths: tuple[int, int], vocab: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, size=int(rng.integers(lengths[0], lengths[1] + 1))).tolist() for _ in range(n)]


def _rss_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> None:
    """Hand glibc's free memory back, then reset the kernel's peak resident set of this process
    (Linux >= 4.0; elsewhere the figures stay 0)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_bare(
    model: torch.nn.Module, rows: extraction.TokenRows, batch_size: int, device: str, masked: bool = True
) -> None:
    """The forward passes alone, batched exactly as `extraction.iter_batches` batches them; with
    `masked=False` without the attention mask, as the stage runs them."""
    dev = torch.device(device)
    with torch.inference_mode():
        for idx in extraction.length_batches(rows.lengths, batch_size):
            ids, mask = rows.pad(idx, PAD_ID)
            # the stage's transfers: to a GPU through pinned memory, not waiting
            ids, mask = extraction.to_device(ids, dev), extraction.to_device(mask, dev)
            model(input_ids=ids, attention_mask=mask if masked else None, use_cache=False).logits  # noqa: B018
    _sync(device)


def run_capture(model: torch.nn.Module, rows: extraction.TokenRows, batch_size: int) -> None:
    sample_ids = [f"s{i:06d}" for i in range(len(rows))]
    for _ in extraction.iter_batches(model, rows, sample_ids, PAD_ID, batch_size, routing="full"):
        pass


def run_stage(
    model: torch.nn.Module,
    token_ids: extraction.TokenRows | list[list[int]],
    batch_size: int,
    routing: str | None,
    out: Path,
    ext: ModuleType = extraction,
    tab: ModuleType | None = None,
    stg: ModuleType = stages,
) -> None:
    """What `stages.extract_routing` does for one split of one domain, from its tokenized samples;
    with `tab`, its tables are written by that version of tables.py, with `stg` built by that
    version of stages.py."""
    if tab is not None:
        saved, stg.tables = stg.tables, tab
        try:
            return run_stage(model, token_ids, batch_size, routing, out, ext, stg=stg)
        finally:
            stg.tables = saved
    sample_ids = [f"s{i:06d}" for i in range(len(token_ids))]
    batches = ext.iter_batches(model, token_ids, sample_ids, PAD_ID, batch_size, routing=routing, desc="bench")
    write_tables(batches, out, routing is not None, stage_meta(model), stg)


def stage_meta(model: torch.nn.Module) -> dict[str, object]:
    """What extract_routing records in both tables' metadata."""
    return {
        "seed": 0,
        "checkpoint_sha": "0" * 64,
        "revision": None,
        "routing": "full",
        "architecture": extraction.describe_moe(model),
    }


def write_tables(batches: object, out: Path, routing: bool, meta: dict[str, object], stg: ModuleType = stages) -> None:
    """The stage's tables of one split from its batch results: routing (if `routing`) and loss, in
    `out`, written by `stg` (stages.py, or another version of it)."""
    routing_path = str(out / "routing.parquet") if routing else None
    stg._write_extraction(batches, "bench", "step0", "math", routing_path, str(out / "loss.parquet"), meta)


def measure(args: argparse.Namespace, which: str) -> dict[str, object]:
    shape = {**SHAPES[which], **({"vocab": args.vocab} if args.vocab else {})}
    n = args.samples or SAMPLES[which]
    batch_size = args.batch_size or BATCH[which]
    lengths = tuple(args.lengths) if args.lengths else LENGTHS[which]
    token_ids = make_samples(n, lengths, shape["vocab"], seed=args.seed)
    n_tokens = sum(len(t) for t in token_ids)
    rows = extraction.TokenRows.from_rows(token_ids)  # as the stage holds them after tokenizing
    model = build(shape, lengths[1], args.dtype, args.device, seed=args.seed)
    cuda = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="grokpath-routing-") as tmp:
        # Every pass writes into a fresh folder, removed after it was timed: Snakemake removes a
        # job's old outputs before the job runs, and renaming onto an existing file costs what
        # the job never pays (ext4 flushes the new file's blocks first).
        runs = iter(range(10**9))
        out = Path(tmp) / "0"

        def fresh() -> Path:
            nonlocal out
            shutil.rmtree(out, ignore_errors=True)
            out = Path(tmp) / str(next(runs))
            out.mkdir()
            return out

        passes: dict[str, Callable[[], None]] = {
            "bare": lambda: run_bare(model, rows, batch_size, args.device),
            "unmasked": lambda: run_bare(model, rows, batch_size, args.device, masked=False),
            "capture": lambda: run_capture(model, rows, batch_size),
            "loss": lambda: run_stage(model, rows, batch_size, None, out),
            "extract": lambda: run_stage(model, rows, batch_size, "full", out),
        }
        if args.baseline_extraction or args.baseline_tables or args.baseline_stages:
            base, base_ids = extraction, rows
            if args.baseline_extraction:
                base = load_module(args.baseline_extraction, "baseline_extraction")
                # tokenized as the stage holds them for that version: its own TokenRows where it
                # has them (built here, once, as for the other passes), else lists of ids
                base_ids = base.TokenRows.from_rows(token_ids) if hasattr(base, "TokenRows") else token_ids
            tab = load_module(args.baseline_tables, "baseline_tables") if args.baseline_tables else None
            stg = load_module(args.baseline_stages, "baseline_stages") if args.baseline_stages else stages
            passes["baseline"] = lambda: run_stage(model, base_ids, batch_size, "full", out, base, tab, stg)
        wall: dict[str, list[float]] = {k: [] for k in passes}
        cpu: dict[str, list[float]] = {k: [] for k in passes}
        for fn in passes.values():  # warm-up: allocator, kernels, lazy imports, file system
            fresh()
            fn()
        if args.profile:  # after the warm-up, so first-call imports stay out of it
            profile = cProfile.Profile()
            profile.runcall(passes["extract"])
            print(f"--- cProfile of one extract pass, {which} model (top 30 by own time)")
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        order, shuffle = list(passes), random.Random(args.seed).shuffle
        for _ in range(args.repeats):
            # a fresh order each repeat: no pass always goes first or always follows the same one (a
            # rotation keeps each pass's predecessor, whose leftovers in the caches it then meets)
            shuffle(order)
            for name in order:
                fresh()
                w0, c0 = time.perf_counter(), time.process_time()
                passes[name]()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
        peak: dict[str, float] = {}
        peak_rss: dict[str, float] = {}
        for name, fn in passes.items():  # one more run each, for its peak memory
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            fresh()
            _reset_peak_rss()
            before = _rss_kib("VmRSS")
            fn()
            peak_rss[name] = round(max(0, _rss_kib("VmHWM") - before) / 1024, 1)
            if cuda:
                peak[name] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        routing_bytes = (out / "routing.parquet").stat().st_size

    def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
        return round(statistics.median(x / y for x, y in zip(times[a], times[b], strict=True)), 4)

    med = {k: statistics.median(v) for k, v in wall.items()}
    result: dict[str, object] = {
        "model": which,
        "shape": shape,
        "parameters": sum(p.numel() for p in model.parameters()),
        "samples": n,
        "tokens": n_tokens,
        "lengths": list(lengths),
        "batch_size": batch_size,
        "wall_s": {k: [round(t, 4) for t in v] for k, v in wall.items()},
        "wall_s_median": {k: round(v, 4) for k, v in med.items()},
        "cpu_s_median": {k: round(statistics.median(v), 4) for k, v in cpu.items()},
        "tokens_per_s": {k: round(n_tokens / v) for k, v in med.items()},
        "ratio_extract_vs_bare": ratio(wall, "extract", "bare"),
        "ratio_extract_vs_bare_range": [
            round(min(e / b for e, b in zip(wall["extract"], wall["bare"], strict=True)), 4),
            round(max(e / b for e, b in zip(wall["extract"], wall["bare"], strict=True)), 4),
        ],
        "ratio_extract_vs_bare_cpu": ratio(cpu, "extract", "bare"),
        "ratio_of_medians_extract_vs_bare": round(med["extract"] / med["bare"], 4),
        "ratio_capture_vs_bare": ratio(wall, "capture", "bare"),
        "ratio_capture_vs_bare_cpu": ratio(cpu, "capture", "bare"),
        "ratio_extract_vs_loss": ratio(wall, "extract", "loss"),
        "ratio_extract_vs_loss_cpu": ratio(cpu, "extract", "loss"),
        "ratio_loss_vs_bare": ratio(wall, "loss", "bare"),
        "ratio_unmasked_vs_bare": ratio(wall, "unmasked", "bare"),
        "ratio_extract_vs_unmasked": ratio(wall, "extract", "unmasked"),
        "ratio_extract_vs_unmasked_cpu": ratio(cpu, "extract", "unmasked"),
        "routing_table_bytes": routing_bytes,
        "peak_rss_above_start_mib": peak_rss,
    }
    if "baseline" in passes:
        result["ratio_baseline_vs_bare"] = ratio(wall, "baseline", "bare")
        result["ratio_baseline_vs_bare_cpu"] = ratio(cpu, "baseline", "bare")
        result["ratio_extract_vs_baseline"] = ratio(wall, "extract", "baseline")
        result["ratio_extract_vs_baseline_cpu"] = ratio(cpu, "extract", "baseline")
    if cuda:
        result["peak_gpu_mib"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*SHAPES, "both"], default="both", help="both: default and large")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the stage's extraction.threads)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--samples", type=int, help="samples per pass (default: 300 default, 32 large)")
    parser.add_argument("--batch-size", type=int, help="the stage's extraction.batch_size (default: 64, 16 large)")
    parser.add_argument("--vocab", type=int, help="vocabulary size (default: 300 default, 8192 large)")
    parser.add_argument(
        "--lengths", type=int, nargs=2, metavar=("MIN", "MAX"), help="sample lengths in tokens (default: per model)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-extraction", type=Path, help="another extraction.py to time as `baseline`")
    parser.add_argument("--baseline-tables", type=Path, help="another tables.py for the `baseline` pass's writers")
    parser.add_argument(
        "--baseline-stages", type=Path, help="another stages.py whose _write_extraction builds the `baseline` tables"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one extract pass after the warm-up")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device in this torch ({torch.__version__})")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    results = [measure(args, m) for m in (["default", "large"] if args.model == "both" else [args.model])]
    load_after = os.getloadavg()

    cuda = args.device.startswith("cuda")
    print(f"\n{args.device}, {args.dtype}, {args.threads} torch thread(s), medians of {args.repeats} repeats")
    print(
        f"{'model':8} {'tokens':>7} {'pass':9} {'wall s':>8} {'cpu s':>8} {'tokens/s':>9} {'peak RSS MiB':>13}"
        + (f" {'peak GPU MiB':>13}" if cuda else "")
    )
    for r in results:
        for name in r["wall_s_median"]:
            line = (
                f"{r['model']:8} {r['tokens']:>7} {name:9} {r['wall_s_median'][name]:>8.3f} "
                f"{r['cpu_s_median'][name]:>8.3f} {r['tokens_per_s'][name]:>9} "
                f"{r['peak_rss_above_start_mib'][name]:>13}"
            )
            print(line + (f" {r['peak_gpu_mib'][name]:>13}" if cuda else ""))
        lo, hi = r["ratio_extract_vs_bare_range"]
        print(
            f"{r['model']:8} extract/bare {r['ratio_extract_vs_bare']:.3f}x wall (range {lo:.3f}-{hi:.3f}; "
            f"ratio of medians {r['ratio_of_medians_extract_vs_bare']:.3f}x), "
            f"{r['ratio_extract_vs_bare_cpu']:.3f}x cpu; extract/loss {r['ratio_extract_vs_loss']:.3f}x wall, "
            f"{r['ratio_extract_vs_loss_cpu']:.3f}x cpu; capture/bare {r['ratio_capture_vs_bare']:.3f}x wall, "
            f"{r['ratio_capture_vs_bare_cpu']:.3f}x cpu"
        )
        print(
            f"{r['model']:8} unmasked/bare {r['ratio_unmasked_vs_bare']:.3f}x wall (the forward without the "
            f"attention mask, as the stage runs it); extract/unmasked {r['ratio_extract_vs_unmasked']:.3f}x wall, "
            f"{r['ratio_extract_vs_unmasked_cpu']:.3f}x cpu"
        )
        if "ratio_baseline_vs_bare" in r:
            print(
                f"{r['model']:8} baseline/bare {r['ratio_baseline_vs_bare']:.3f}x wall, "
                f"{r['ratio_baseline_vs_bare_cpu']:.3f}x cpu; extract/baseline {r['ratio_extract_vs_baseline']:.3f}x "
                f"wall, {r['ratio_extract_vs_baseline_cpu']:.3f}x cpu"
            )
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, on {os.cpu_count()} CPUs")
    summary = {
        "benchmark": "routing_overhead",
        "device": args.device,
        "dtype": args.dtype,
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
        + (f", {torch.cuda.get_device_name()}" if cuda else ""),
        "torch": torch.__version__,
        "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
