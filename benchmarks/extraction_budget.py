"""Where the extraction stage's overhead over a bare forward pass goes, piece by piece.

`routing_overhead.py` times whole passes side by side; this script times each piece of work the
stage adds, on its own, outside the pass (after one of the other pieces, not after the model's
work on a batch), over the same length-bucketed batches of the same random-weight OLMoE config, every piece once per
repeat in a shuffled order (seeded), medians over repeats, per pass over all the samples:

- `bare`: `model(..., use_cache=False).logits` per batch (routing_overhead.py's bare pass);
- `output layer`: the model's `lm_head` on each batch's final hidden states (computed beforehand):
  the part of the bare pass that the loss replaces;
- `loss beyond the output layer`: `extraction._HeadLoss` (the output layer run inside the
  per-sample loss, what the stage runs on the CPU) minus `output layer`;
- `router hooks`: each router called on its batch's inputs with `extraction._Capture`'s hooks
  minus without them;
- `routing reduction`: `_Capture.reduce` of each batch's held router outputs (softmax over the
  experts, token averages) and their stack into [B, L, K];
- `tables`: `stages._write_extraction` from the pass's batch results (routing and loss tables,
  into a fresh folder each time), and `loss table` alone (what a validation split writes).

The sum of the added pieces against `bare` is about what the stage's work costs at best: inside a
pass the model's kernels and these take turns in the same caches (routing_overhead.py measures the
whole passes). On the default model it is 5.8-6.2% of the bare pass (README, "Performance").

    python benchmarks/extraction_budget.py [--model default|large] [--repeats 100] [--threads 1]
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
from collections.abc import Callable
from pathlib import Path

import torch
from routing_overhead import BATCH, LENGTHS, PAD_ID, SAMPLES, SHAPES, build, make_samples, stage_meta, write_tables

from grokpath import extraction


def measure(args: argparse.Namespace) -> dict[str, object]:
    shape = SHAPES[args.model]
    rows = extraction.TokenRows.from_rows(make_samples(SAMPLES[args.model], LENGTHS[args.model], shape["vocab"]))
    model = build(shape, LENGTHS[args.model][1], "float32", "cpu")
    batches = [rows.pad(idx, PAD_ID) for idx in extraction.length_batches(rows.lengths, BATCH[args.model])]
    gates = extraction.moe_gates(model)
    score = extraction.scoring(model)
    capture = extraction._Capture(gates, "full", score)
    head = extraction._HeadLoss(model.lm_head)
    router_inputs: list[list[torch.Tensor]] = []  # per batch, per router: its input
    held, hidden = [], []
    with torch.inference_mode():
        for ids, mask in batches:
            inputs: list[torch.Tensor] = []
            pre = [g.register_forward_pre_hook(lambda _m, a, keep=inputs: keep.append(a[0])) for _, g in gates]
            capture.start(mask)
            hidden.append(model.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state)
            for h in pre:
                h.remove()
            router_inputs.append(inputs)
            held.append(list(capture._held))
    capture.close()
    sample_ids = [f"s{i:06d}" for i in range(len(rows))]
    results = list(
        extraction.iter_batches(model, rows, sample_ids, PAD_ID, BATCH[args.model], routing="full", desc="budget")
    )
    meta = stage_meta(model)
    tmp = Path(tempfile.mkdtemp(prefix="grokpath-budget-"))
    folders = iter(range(10**9))

    def bare() -> None:
        for ids, mask in batches:
            model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # noqa: B018

    def output_layer() -> None:
        for h in hidden:
            model.lm_head(h)

    def loss() -> None:
        for h, (ids, mask) in zip(hidden, batches, strict=True):
            head(h, ids, mask)

    def routers(hooked: bool) -> Callable[[], None]:
        def run() -> None:
            keep = extraction._Capture(gates, "full", score) if hooked else None
            for inputs, (_, mask) in zip(router_inputs, batches, strict=True):
                if keep is not None:
                    keep.start(mask)
                for x, (_, gate) in zip(inputs, gates, strict=True):
                    gate(x)
            if keep is not None:
                keep.close()

        return run

    def reduction() -> None:
        for outputs, (_, mask) in zip(held, batches, strict=True):
            capture.start(mask)
            capture._held, capture._n_held = list(outputs), 1
            reduced = capture.reduce()
            torch.stack([reduced[i] for i, _ in gates], dim=1)

    def tables(routing: bool) -> Callable[[], None]:
        def run() -> None:
            out = tmp / str(next(folders))
            out.mkdir()
            write_tables(iter(results), out, routing, meta)

        return run

    pieces: dict[str, Callable[[], None]] = {
        "bare": bare,
        "output layer": output_layer,
        "loss (output layer inside)": loss,
        "routers": routers(False),
        "routers with hooks": routers(True),
        "routing reduction": reduction,
        "tables": tables(True),
        "loss table": tables(False),
    }
    times: dict[str, list[float]] = {k: [] for k in pieces}
    try:
        with torch.inference_mode():
            for fn in pieces.values():  # warm-up
                fn()
            order, shuffle = list(pieces), random.Random(0).shuffle
            for _ in range(args.repeats):
                shuffle(order)  # each piece after a different one each time: none meets the same caches
                for name in order:
                    t0 = time.perf_counter()
                    pieces[name]()
                    times[name].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    added = {
        "loss beyond the output layer": ms["loss (output layer inside)"] - ms["output layer"],
        "router hooks": ms["routers with hooks"] - ms["routers"],
        "routing reduction": ms["routing reduction"],
        "tables": ms["tables"],
    }
    return {
        "model": args.model,
        "samples": len(rows),
        "batches": len(batches),
        "tokens": int(rows.lengths.sum()),
        "ms": {k: round(v, 3) for k, v in ms.items()},
        "added_ms": {k: round(v, 3) for k, v in added.items()},
        "added_total_ms": round(sum(added.values()), 3),
        "added_share_of_bare": round(sum(added.values()) / ms["bare"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["default", "large"], default="default")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the stage's extraction.threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = measure(args)
    bare = r["ms"]["bare"]
    print(
        f"\n{args.model} model, {r['samples']} samples in {r['batches']} batches, {args.threads} torch thread(s), "
        f"medians of {args.repeats} repeats, ms per pass"
    )
    print(f"{'piece':32} {'ms':>9} {'of bare':>8}")
    for name, value in r["ms"].items():
        print(f"{name:32} {value:9.3f} {value / bare:8.2%}")
    print("added by the stage:")
    for name, value in r["added_ms"].items():
        print(f"  {name:30} {value:9.3f} {value / bare:8.2%}")
    print(f"  {'total':30} {r['added_total_ms']:9.3f} {r['added_share_of_bare']:8.2%}")
    summary = {
        "benchmark": "extraction_budget",
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "result": r,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
