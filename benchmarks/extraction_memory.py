"""Extraction memory against the number of samples: the peak resident set of `stages.extract_routing`.

The issue's goal: extraction memory flat in the number of samples (streamed batches, incremental
Parquet writes). For each sample count, a fresh process runs the stage on one domain of that many
samples (and a fixed validation split of 64): first once on 64 samples, so that imports, the model
and the allocators' pools are in place; then glibc hands its free memory back (malloc_trim), the
kernel's peak resident set is reset (Linux clear_refs) and the stage runs on the N samples.
Reported per N, medians of `--repeats` runs: the resident set before that run (`floor`), the peak
during it, `peak - floor` (what the stage held for N samples, each run's value in brackets: the
allocator makes it vary from run to run) and that per token, next to the input itself (the sample
table's texts, the number of tokens); last, the bytes each further token costs between the smallest
and the largest N. Flat means that cost stays near what the stage must hold per sample: its id and
its tokens.

The model is a random-weight OLMoE built from a config (the embedded default's shape unless told
otherwise) with a word tokenizer of `--vocab` words; texts are uniform random words, `--lengths`
words each (the tokenizer adds a BOS token). Ids above 256 are separate objects in a Python list,
so `--vocab` above 256 is what a real tokenizer's ids cost there. With `--baseline-src DIR` every
run is also made with another version of the library first on the import path (e.g. `git worktree
add /tmp/base HEAD` and `--baseline-src /tmp/base/src`), interleaved, side by side in the same run.

    python benchmarks/extraction_memory.py [--samples 1000,4000,16000,64000] [--lengths 10 30]
        [--vocab 300] [--hidden 64] [--layers 4] [--experts 8] [--top-k 2] [--batch-size 64]
        [--repeats 3] [--baseline-src DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WARM = 64  # samples of the untimed first run
VALIDATION = 64


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _settings(args: argparse.Namespace) -> dict:
    return {
        "threads": 1,
        "device": "cpu",
        "dtype": "float32",
        "batch_size": args.batch_size,
        "routing": "full",
        "max_tokens": args.lengths[1] + 1,  # + BOS
    }


def child(spec_path: Path) -> None:
    """Run in a fresh process: the warm-up run, then the measured one; print one JSON line."""
    import ctypes

    from grokpath import stages

    spec = json.loads(spec_path.read_text())

    def run(samples_table: str, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        stages.extract_routing(
            "m",
            "c1",
            spec["checkpoint"],
            {"d": samples_table},
            {"d": spec["validation"]},
            {"d": str(out / "routing.parquet")},
            {"d": str(out / "loss.parquet")},
            {"d": str(out / "vloss.parquet")},
            str(out / "routers.safetensors"),
            spec["settings"],
            0,
        )

    work = Path(spec["work"])
    run(spec["warm"], work / "warm")
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    floor = _rss_kib("VmRSS")
    run(spec["samples"], work / "measured")
    peak = _rss_kib("VmHWM")
    print(
        json.dumps(
            {
                "floor_kib": floor,
                "peak_kib": peak,
                "routing_bytes": (work / "measured" / "routing.parquet").stat().st_size,
                "grokpath": stages.__file__,
            }
        )
    )


def _words(n: int, lengths: tuple[int, int], vocab: int, rng: np.random.Generator) -> list[str]:
    return [
        " ".join(f"w{i}" for i in rng.integers(0, vocab, int(rng.integers(lengths[0], lengths[1] + 1))))
        for _ in range(n)
    ]


def _checkpoint(args: argparse.Namespace, tok, root: Path) -> Path:
    import torch
    from transformers import OlmoeConfig, OlmoeForCausalLM

    from grokpath import checkpoints

    config = OlmoeConfig(
        vocab_size=len(tok),
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_experts=args.experts,
        num_experts_per_tok=args.top_k,
        max_position_embeddings=max(64, args.lengths[1] + 1),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    OlmoeForCausalLM(config).save_pretrained(root / "src")
    tok.save_pretrained(root / "src")
    checkpoints.materialize_folder(root / "src", root / "c1", "local", "1")
    return root / "c1"


def _table(texts: list[str], tok, split: str, path: Path, max_tokens: int) -> int:
    """Write a sample table of `texts` (in order); returns the bytes of its texts."""
    from grokpath import samples, tables

    tables.write(
        samples.build_manifest(texts, tok, "m", "d", split, len(texts), 0, max_tokens), path, tables.SAMPLES_SCHEMA
    )
    return sum(len(t.encode()) for t in texts)


def measure(src: str | None, spec: dict, work: Path) -> dict:
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps({**spec, "work": str(work)}))
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(spec_path)], capture_output=True, text=True, env=env, check=False
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="1000,4000,16000,64000", help="sample counts, comma-separated")
    parser.add_argument("--lengths", type=int, nargs=2, default=(10, 30), metavar=("MIN", "MAX"), help="words per text")
    parser.add_argument("--vocab", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs per sample count and version (medians)")
    parser.add_argument("--baseline-src", help="another version's src/ folder, run side by side")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    if not Path("/proc/self/clear_refs").exists():
        sys.exit("extraction_memory.py reads and resets the peak resident set through Linux's /proc: run it on Linux")
    from grokpath.tokenizer import train_word_tokenizer

    counts = sorted({int(n) for n in args.samples.split(",")})
    rng = np.random.default_rng(0)
    versions = {"this": None} if args.baseline_src is None else {"baseline": args.baseline_src, "this": None}
    results: dict[str, list[dict]] = {name: [] for name in versions}
    paths: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="extraction_memory-") as tmp:
        root = Path(tmp)
        tok = train_word_tokenizer([" ".join(f"w{i}" for i in range(args.vocab))])
        max_tokens = args.lengths[1] + 1
        spec = {"checkpoint": str(_checkpoint(args, tok, root)), "settings": _settings(args)}
        spec["warm"], spec["validation"] = str(root / "warm.parquet"), str(root / "validation.parquet")
        _table(_words(WARM, args.lengths, args.vocab, rng), tok, "samples", root / "warm.parquet", max_tokens)
        texts = _words(VALIDATION, args.lengths, args.vocab, rng)
        _table(texts, tok, "validation", root / "validation.parquet", max_tokens)
        for n in counts:
            texts = _words(n, args.lengths, args.vocab, rng)
            text_bytes = _table(texts, tok, "samples", root / f"samples-{n}.parquet", max_tokens)
            n_tokens = sum(len(t.split()) + 1 for t in texts)
            del texts
            runs: dict[str, list[dict]] = {name: [] for name in versions}
            for r in range(args.repeats):  # versions interleaved: the machine's drift hits both
                for name, src in versions.items():
                    work = root / f"{name}-{n}-{r}"
                    work.mkdir()
                    got = measure(src, {**spec, "samples": str(root / f"samples-{n}.parquet")}, work)
                    shutil.rmtree(work)
                    paths[name] = got["grokpath"]
                    runs[name].append(got)
                    print(
                        f"{name:>8} {n:>7} samples, run {r + 1}: floor {got['floor_kib'] / 1024:7.1f} MiB, "
                        f"peak {got['peak_kib'] / 1024:7.1f} MiB",
                        flush=True,
                    )
            for name, got in runs.items():
                added = [(g["peak_kib"] - g["floor_kib"]) / 1024 for g in got]
                med = statistics.median(added)
                results[name].append(
                    {
                        "samples": n,
                        "tokens": n_tokens,
                        "text_mib": text_bytes / 2**20,
                        "floor_mib": statistics.median(g["floor_kib"] for g in got) / 1024,
                        "peak_mib": statistics.median(g["peak_kib"] for g in got) / 1024,
                        "added_mib": med,
                        "added_mib_runs": added,
                        "added_bytes_per_token": med * 2**20 / n_tokens,
                        "routing_mib": got[0]["routing_bytes"] / 2**20,
                    }
                )
    print()
    for name, rows in results.items():
        print(f"{name} ({paths[name]}), medians of {args.repeats} runs:")
        print("| samples | tokens | texts MiB | peak MiB | peak - floor MiB (runs) | per token | routing table MiB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            spread = ", ".join(f"{a:.0f}" for a in r["added_mib_runs"])
            print(
                f"| {r['samples']} | {r['tokens']} | {r['text_mib']:.1f} | {r['peak_mib']:.1f} "
                f"| {r['added_mib']:.1f} ({spread}) | {r['added_bytes_per_token']:.0f} B | {r['routing_mib']:.1f} |"
            )
    slopes = {}
    if len(counts) > 1:  # what each further token costs, the fixed part (one batch's buffers) left out
        for name, rows in results.items():
            first, last = rows[0], rows[-1]
            slopes[name] = (last["added_mib"] - first["added_mib"]) * 2**20 / (last["tokens"] - first["tokens"])
            print(f"{name}: {slopes[name]:.1f} bytes per token from {first['samples']} to {last['samples']} samples")
    print(
        json.dumps(
            {
                "benchmark": "extraction_memory",
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "shape": {k: getattr(args, k) for k in ("hidden", "layers", "experts", "top_k", "vocab", "batch_size")},
                "lengths": list(args.lengths),
                "repeats": args.repeats,
                "results": results,
                "slope_bytes_per_token": slopes,
            }
        )
    )


if __name__ == "__main__":
    main()
