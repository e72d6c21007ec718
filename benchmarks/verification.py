"""Checkpoint verification: what a stage pays to check a checkpoint folder against its manifest.

Every stage that loads a checkpoint first verifies it (`checkpoints.read_manifest`, through
`ensure_weights`): extraction, decontamination (once per task), LoRA tuning (once per family) and
evaluation (the checkpoint and each tuned model). Reading and hashing every file each time cost
the paper's run 28 GB of sha256 per stage and checkpoint (OLMoE-1B-7B's fp32 weights on the hub);
a file now is hashed again only when its status (device, inode, size, mtime, ctime) changed
since it was last hashed (`checkpoints.Stamps`).

A random-byte checkpoint folder of `--gib` GiB of weights in `--shards` safetensors files (plus a
config and a tokenizer) is materialized as the workflow does it (`materialize_folder`: hard links
and a manifest), then verified, side by side in each repeat:
- `full`: every file read and hashed, as before stamps (the stamps are deleted first, or with
  `--baseline-checkpoints FILE` another checkpoints.py is timed, e.g.
  `git show 32a89a0:src/grokpath/checkpoints.py > /tmp/checkpoints_old.py`);
- `stamped`: `read_manifest` on the folder as a later stage finds it.
The files are in the page cache (they were just written), so `full` is sha256's speed, the best
case: a checkpoint read from disk costs its reading on top. Stamps are only trusted for files last
changed 2 s before they were hashed (`checkpoints._RACY_NS`), so the benchmark waits that long
after writing the folder, as any later stage does.

With `--source hf` the folder is served by a local server speaking the hub's protocol
(tests/hubserver.py) and brought in as `download_checkpoint` does it, in a client process: a first
download (into the HF cache), then a second one from the cache (as after `snakemake prefetch`), each
followed by the first stage's verification; `--repeats` such pairs into fresh caches. Run it with
`PYTHONPATH=<another version>/src` for that version's figures.

    python benchmarks/verification.py [--gib 2] [--shards 2] [--repeats 5] [--dir DIR]
        [--baseline-checkpoints FILE] [--source local|hf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from baseline import load_module

from grokpath import checkpoints

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hubserver import HubServer

PAPER_GB = 27.7  # allenai/OLMoE-1B-7B-0924: 6.9B parameters in float32 on the hub
REPO = "bench/olmoe-verify"
# One download in a client process (huggingface_hub reads its endpoint and cache at import): its seconds.
DOWNLOAD = """
import sys, time
from pathlib import Path
from grokpath import hub
t0 = time.perf_counter()
hub.download_checkpoint(sys.argv[1], "main", Path(sys.argv[2]))
print(time.perf_counter() - t0)
"""


def write_source(folder: Path, gib: float, shards: int, seed: int = 0) -> int:
    """A checkpoint-shaped folder of random bytes; returns its bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    per_shard = int(gib * 2**30) // shards
    for i in range(shards):
        with open(folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors", "wb") as fh:
            for start in range(0, per_shard, 2**26):  # 64 MiB at a time: memory stays flat
                fh.write(rng.bytes(min(2**26, per_shard - start)))
    (folder / "config.json").write_text(json.dumps({"model_type": "olmoe"}))
    (folder / "tokenizer.json").write_text(json.dumps({"vocab": list(range(50_000))}))
    return sum(p.stat().st_size for p in folder.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB of weights")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where the folder is written (default: the system's temp)")
    parser.add_argument("--baseline-checkpoints", type=Path, help="another checkpoints.py to time as `full`")
    parser.add_argument("--source", choices=("local", "hf"), default="local")
    args = parser.parse_args()
    if args.source == "hf":
        hub_source(args)
        return
    base = load_module(args.baseline_checkpoints, "baseline_checkpoints") if args.baseline_checkpoints else None

    with tempfile.TemporaryDirectory(prefix="grokpath-verify-", dir=args.dir) as tmp:
        src, dest = Path(tmp) / "src", Path(tmp) / "ckpt"
        size = write_source(src, args.gib, args.shards)
        t0 = time.perf_counter()
        checkpoints.materialize_folder(src, dest, "local", "0")
        materialize_s = time.perf_counter() - t0
        time.sleep(checkpoints._RACY_NS / 1e9 + 0.5)  # a later stage finds files written earlier
        t0 = time.perf_counter()
        manifest = checkpoints.read_manifest(dest)  # the first stage: hashes what is not stamped yet
        first_s = time.perf_counter() - t0

        def full() -> None:
            if base is not None:
                base.read_manifest(dest)
            else:  # the files are older than the racy window: this stamps them again
                (dest / checkpoints.VERIFIED).unlink(missing_ok=True)
                checkpoints.read_manifest(dest)

        passes = {"full": full, "stamped": lambda: checkpoints.read_manifest(dest)}
        times: dict[str, list[float]] = {name: [] for name in passes}
        for r in range(args.repeats):
            for name in list(passes)[r % 2 :] + list(passes)[: r % 2]:  # neither always goes first
                t0 = time.perf_counter()
                passes[name]()
                times[name].append(time.perf_counter() - t0)

    med = {k: statistics.median(v) for k, v in times.items()}
    gb = size / 1e9
    rate = gb / med["full"]
    print(f"\ncheckpoint folder: {gb:.2f} GB in {len(manifest['files'])} files, page cache warm")
    print(f"materialize (hard links, hash, manifest): {materialize_s:.2f} s; first verification: {first_s:.2f} s")
    print(f"{'verification':14} {'median s':>9} {'min s':>8} {'max s':>8}")
    for name, v in times.items():
        print(f"{name:14} {med[name]:>9.4f} {min(v):>8.4f} {max(v):>8.4f}")
    print(
        f"full: {rate:.2f} GB/s sha256, {PAPER_GB / rate:.1f} s per verification of a {PAPER_GB} GB checkpoint; "
        f"stamped: {med['stamped'] * 1e3:.2f} ms, {med['full'] / med['stamped']:.0f}x less"
    )
    print(
        json.dumps(
            {
                "benchmark": "verification",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "bytes": size,
                "files": len(manifest["files"]),
                "repeats": args.repeats,
                "baseline": str(args.baseline_checkpoints) if base is not None else "stamps deleted",
                "materialize_s": round(materialize_s, 3),
                "first_verification_s": round(first_s, 3),
                "wall_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
                "wall_s_median": {k: round(v, 4) for k, v in med.items()},
                "full_gb_per_s": round(rate, 3),
                "paper_checkpoint_s_full": round(PAPER_GB / rate, 1),
                "ratio_full_vs_stamped": round(med["full"] / med["stamped"], 1),
            }
        )
    )


def hub_source(args: argparse.Namespace) -> None:
    """Download and first verification, from the hub and from the HF cache, `--repeats` times."""
    times: dict[str, list[float]] = {k: [] for k in ("download", "first_after", "cached", "first_after_cached")}
    with tempfile.TemporaryDirectory(prefix="grokpath-verify-", dir=args.dir) as tmp, HubServer() as server:
        src = Path(tmp) / "src"
        size = write_source(src, args.gib, args.shards)
        server.add_repo(REPO, {"main": {p.name: p.read_bytes() for p in src.iterdir()}})
        files = len(list(src.iterdir()))
        for r in range(args.repeats):
            hf_home = Path(tmp) / f"hf{r}"
            for kind, first in (("download", "first_after"), ("cached", "first_after_cached")):
                dest = Path(tmp) / f"{kind}{r}"
                proc = server.run_python(DOWNLOAD, hf_home, args=[REPO, str(dest)], timeout=3600)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr)
                times[kind].append(float(proc.stdout.split()[-1]))
                time.sleep(checkpoints._RACY_NS / 1e9 + 0.5)  # a later stage finds files linked earlier
                t0 = time.perf_counter()
                checkpoints.read_manifest(dest)
                times[first].append(time.perf_counter() - t0)
                shutil.rmtree(dest)
            shutil.rmtree(hf_home)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\ncheckpoint on the hub: {size / 1e9:.2f} GB in {files} files (local server, page cache warm)")
    print(f"{'step':40} {'median s':>9} {'min s':>8} {'max s':>8}")
    labels = {
        "download": "download (into the HF cache)",
        "first_after": "first verification after it",
        "cached": "download from the HF cache",
        "first_after_cached": "first verification after it",
    }
    for k, v in times.items():
        print(f"{labels[k]:40} {med[k]:>9.3f} {min(v):>8.3f} {max(v):>8.3f}")
    print(
        json.dumps(
            {
                "benchmark": "verification",
                "source": "hf",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "bytes": size,
                "files": files,
                "repeats": args.repeats,
                "wall_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
                "wall_s_median": {k: round(v, 3) for k, v in med.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
