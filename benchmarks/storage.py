"""Storage of the routing tables: bytes per (sample, layer) and the time to read a domain back.

One domain's routing table (`tables.ROUTING_SCHEMA`: one row per sample and MoE layer, the
token-averaged routing weights over all experts as a list) for the paper's setting (10,000
samples x 16 layers x 64 experts) and the embedded default (300 samples x 4 layers x 8 experts),
written with each candidate encoding; every write and read is repeated, interleaved, and the
medians reported. The weights are Dirichlet draws around a per-layer expert popularity (as in
benchmarks/pathway_distance.py), rounded to float32: like real token averages, their mantissas are
full of noise, so what compresses is the exponent bytes and the repeated key columns.

Candidates:
- `tables.write` is what the workflow writes in one piece, `tables.StreamWriter` what
  `extract_routing` streams (batches of 64 samples gathered into row groups of
  `tables.ROW_GROUP_ROWS`): zstd, no dictionary and Parquet's BYTE_STREAM_SPLIT encoding for the
  weights (byte 0 of every float, then byte 1, ...: lossless, the sign/exponent bytes line up and
  compress) and no min/max statistics for the weights, dictionaries for the key columns, and no
  compression for the one-value model/step/domain keys (`tables._write_options`);
- `float32 zstd dict`: pyarrow's defaults (a dictionary for every column), one row group;
  `float32 zstd dict stream`: the same, one row group per batch of 64 samples (what the workflow
  wrote before, through a ParquetWriter per batch);
- `float32 lz4`, `float32 snappy`, `float32 none`: other codecs (pyarrow's defaults otherwise);
- `float32 zstd plain`: no dictionary for the weights (the key columns keep theirs);
- `float32 lz4 bss`: BYTE_STREAM_SPLIT with lz4;
- `float16 zstd`, `float16 zstd bss`: half the bytes, but lossy: the table says how many pathways
  (`pathways.pathway`, tau 0.7) change when the weights are rounded to float16.
- `baseline tables.write`, `baseline tables.StreamWriter` (with `--baseline-tables FILE`): the same
  with another version of tables.py, e.g. `git show HEAD:src/grokpath/tables.py > /tmp/tables_head.py`,
  for a before/after measured in the same run; `--candidates` keeps only the named ones.
`read` is `pyarrow.parquet.read_table`; `load` is `stages.load_routing`, what compute_pathways and
ablate_tau call (read, sort by sample and layer, weights as an [N, L, K] array). Every float32
candidate is checked to give the weights back bit for bit.

Why float32 + zstd stays (measured on a 2-core x86_64, pyarrow 26): rounding to float16 changes
66% of the paper-sized pathways (64 experts: a weight near 1/64 moves by up to ~1e-5, enough to
swap two near-tied experts or move the tau cut) and 0.7% of the default's (8 experts); half the
bytes are not worth monitors computed from other pathways. zstd at Arrow's default level is 9-11%
smaller than lz4, snappy or no compression (238 vs 261-266 bytes per (sample, layer) at 64
experts, 48 vs 52-58 at 8), and one paper-sized domain (10,000 x 16 x 64) loads in 0.2-0.3 s
whatever the codec: decompression is not what a read costs.

Why no dictionary and split bytes for floats (now `tables._write_options`): pyarrow dictionary-
encodes every column by default, and the weights are nearly all distinct, so the dictionary is as
large as the data and its indices come on top. One large row group overflows the dictionary and
falls back to plain pages, but a row group per batch of 64 samples never overflows: the routing
tables the workflow used to write took 362 bytes per (sample, layer), 52% more than the same table
in one row group. No dictionary and BYTE_STREAM_SPLIT for float columns give 214 bytes, 39% less,
lossless, at the same read time; 33-38 instead of 48-50 bytes at 8 experts.

    python benchmarks/storage.py [--repeats 5] [--samples 10000] [--layers 16] [--experts 64]
        [--baseline-tables FILE] [--candidates NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from baseline import load_module

from grokpath import pathways, stages, tables

STREAM_BATCH = 64  # extraction.batch_size default: samples per row group as extract_routing writes
META = {"seed": 0, "checkpoint_sha": "0" * 64, "revision": "step0", "routing": "full"}
FLOAT16_SCHEMA = pa.schema(
    [
        f if f.name != "probs" else pa.field("probs", pa.list_(pa.float16()), nullable=False)
        for f in tables.ROUTING_SCHEMA
    ]
)
# name -> (schema, compression, encoding of the weights, writer); encodings: "dict" is pyarrow's
# default (a dictionary, which random floats overflow into plain pages), "plain" no dictionary,
# "bss" BYTE_STREAM_SPLIT
CANDIDATES: dict[str, tuple[pa.Schema, str, str, str]] = {
    "tables.write": (tables.ROUTING_SCHEMA, "zstd", "bss", "tables.write"),
    "tables.StreamWriter": (tables.ROUTING_SCHEMA, "zstd", "bss", "StreamWriter"),
    "float32 zstd dict": (tables.ROUTING_SCHEMA, "zstd", "dict", "pq"),
    "float32 zstd dict stream": (tables.ROUTING_SCHEMA, "zstd", "dict", "stream"),
    "float32 lz4": (tables.ROUTING_SCHEMA, "lz4", "dict", "pq"),
    "float32 snappy": (tables.ROUTING_SCHEMA, "snappy", "dict", "pq"),
    "float32 none": (tables.ROUTING_SCHEMA, "none", "dict", "pq"),
    "float32 zstd plain": (tables.ROUTING_SCHEMA, "zstd", "plain", "pq"),
    "float32 lz4 bss": (tables.ROUTING_SCHEMA, "lz4", "bss", "pq"),
    "float16 zstd": (FLOAT16_SCHEMA, "zstd", "dict", "pq"),
    "float16 zstd bss": (FLOAT16_SCHEMA, "zstd", "bss", "pq"),
}
BASELINE = {  # with --baseline-tables: the workflow's two writers from another tables.py
    "baseline tables.write": (tables.ROUTING_SCHEMA, "zstd", "bss", "tables.write"),
    "baseline tables.StreamWriter": (tables.ROUTING_SCHEMA, "zstd", "bss", "StreamWriter"),
}
# the tables module each of the workflow's writers comes from (another one for the baselines)
MODULES: dict[str, ModuleType] = {}


def routing_weights(n: int, layers: int, experts: int, seed: int = 0, concentration: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    popularity = rng.dirichlet(np.ones(experts), size=layers)
    alpha = concentration * experts * popularity + 1e-3
    return np.stack([rng.dirichlet(alpha[layer], size=n) for layer in range(layers)], axis=1).astype(np.float32)


def routing_frame(weights: np.ndarray, domain: str = "math") -> pl.DataFrame:
    """The routing table of one domain, rows as extract_routing writes them."""
    n, n_layers, k = weights.shape
    ids = [f"{domain}-samples-{i:06d}" for i in range(n)]
    rng = np.random.default_rng(1)
    return pl.DataFrame(
        {
            "model": ["tiny-moe"] * (n * n_layers),
            "step": ["step001100"] * (n * n_layers),
            "domain": [domain] * (n * n_layers),
            "sample_id": np.repeat(ids, n_layers).tolist(),
            "layer": np.tile(np.arange(n_layers), n),
            "n_tokens": np.repeat(rng.integers(10, 2048, size=n), n_layers),
            "probs": weights.reshape(n * n_layers, k),
        }
    )


def stream_batches(frame: pl.DataFrame) -> list[dict[str, np.ndarray]]:
    """The frame as the batches extract_routing hands its StreamWriter (prepared before any timing)."""
    rows = STREAM_BATCH * frame["layer"].n_unique()
    return [
        {
            "sample_id": part["sample_id"].to_numpy(),
            "layer": part["layer"].to_numpy().astype(np.int16),
            "n_tokens": part["n_tokens"].to_numpy().astype(np.int32),
            "probs": np.stack(part["probs"].to_numpy()),
        }
        for part in (frame.slice(start, rows) for start in range(0, frame.height, rows))
    ]


def write(frame: pl.DataFrame, batches: list[dict[str, np.ndarray]], path: Path, candidate: str) -> None:
    schema, codec, encoding, writer = CANDIDATES[candidate]
    module = MODULES.get(candidate, tables)
    if writer == "tables.write":  # exactly what the workflow does
        module.write(frame, path, schema, **META)
        return
    if writer == "StreamWriter":  # batch by batch, as extract_routing streams them
        constants = {name: frame[name][0] for name in ("model", "step", "domain")}
        with module.StreamWriter(path, schema, constants, **META) as sink:
            for batch in batches:
                sink.write(batch)
        return
    table = tables.to_arrow(frame, schema)
    table = table.replace_schema_metadata(tables._metadata(schema, META))
    keys = [name for name in schema.names if name != "probs"]
    options = {
        "compression": codec,
        "use_dictionary": True if encoding == "dict" else keys,  # a dictionary wins over any other encoding
        "use_byte_stream_split": ["probs.list.element"] if encoding == "bss" else False,
    }
    if writer == "stream":  # a row group per batch of 64 samples
        rows = STREAM_BATCH * frame["layer"].n_unique()
        with pq.ParquetWriter(path, table.schema, **options) as sink:
            for start in range(0, frame.height, rows):
                sink.write_table(table.slice(start, rows))
        return
    pq.write_table(table, path, **options)


def pathways_changed(weights: np.ndarray, tau: float) -> float:
    """Fraction of samples whose pathway string changes when the weights go through float16."""
    half = weights.astype(np.float16).astype(np.float32)
    changed = sum(
        pathways.pathway(a, tau)[0] != pathways.pathway(b, tau)[0] for a, b in zip(weights, half, strict=True)
    )
    return changed / len(weights)


def measure(n: int, layers: int, experts: int, repeats: int, tmp: Path) -> dict[str, object]:
    weights = routing_weights(n, layers, experts)
    frame = routing_frame(weights)
    batches = stream_batches(frame)
    raw = weights.nbytes
    sizes: dict[str, int] = {}
    times: dict[str, dict[str, list[float]]] = {c: {"write": [], "read": [], "load": []} for c in CANDIDATES}
    ops: list[tuple[str, str, Callable[[], object]]] = []
    for c in CANDIDATES:
        path = tmp / f"{n}-{experts}-{c.replace(' ', '_')}.parquet"
        ops.append((c, "write", lambda c=c, path=path: write(frame, batches, path, c)))
        ops.append((c, "read", lambda path=path: pq.read_table(path)))
        ops.append((c, "load", lambda path=path: stages.load_routing(str(path))))
    for _, _, fn in ops:  # warm-up: every file written once, every reader imported
        fn()
    for r in range(repeats):
        for c, what, fn in ops[r % len(ops) :] + ops[: r % len(ops)]:
            start = time.perf_counter()
            fn()
            times[c][what].append(time.perf_counter() - start)
    for c in CANDIDATES:
        path = tmp / f"{n}-{experts}-{c.replace(' ', '_')}.parquet"
        sizes[c] = path.stat().st_size
        _, _, back = stages.load_routing(str(path))
        if CANDIDATES[c][0] is tables.ROUTING_SCHEMA and not np.array_equal(back, weights):
            raise SystemExit(f"{c}: weights did not come back bit for bit")
    return {
        "samples": n,
        "layers": layers,
        "experts": experts,
        "raw_weight_bytes": raw,
        "bytes": sizes,
        "bytes_per_sample_layer": {c: round(s / (n * layers), 1) for c, s in sizes.items()},
        "seconds_median": {c: {k: round(statistics.median(v), 4) for k, v in t.items()} for c, t in times.items()},
        "float16_pathways_changed": round(pathways_changed(weights, 0.7), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=10_000, help="paper setting: samples per domain")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--baseline-tables", type=Path, help="another tables.py to time as `baseline ...`")
    parser.add_argument("--candidates", nargs="+", metavar="NAME", help="only these candidates (names as printed)")
    args = parser.parse_args()
    if args.baseline_tables:
        baseline = load_module(args.baseline_tables, "baseline_tables")
        CANDIDATES.update(BASELINE)
        MODULES.update(dict.fromkeys(BASELINE, baseline))
    if args.candidates:
        unknown = sorted(set(args.candidates) - set(CANDIDATES))
        if unknown:
            raise SystemExit(f"--candidates: unknown {unknown}; known: {list(CANDIDATES)}")
        for name in [c for c in CANDIDATES if c not in args.candidates]:
            del CANDIDATES[name]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="grokpath-storage-") as tmp:
        results = [
            measure(args.samples, args.layers, args.experts, args.repeats, Path(tmp)),
            measure(300, 4, 8, args.repeats, Path(tmp)),  # the embedded default: one domain
        ]
    load_after = os.getloadavg()
    for r in results:
        n, n_layers, k = r["samples"], r["layers"], r["experts"]
        print(
            f"\n{n} samples x {n_layers} layers x {k} experts: {r['raw_weight_bytes'] / 2**20:.1f} MiB of float32 "
            f"weights ({k * 4} bytes per (sample, layer)); float16 changes "
            f"{r['float16_pathways_changed'] * 100:.2f}% of the pathways (tau 0.7)"
        )
        print(f"{'candidate':28} {'MiB':>8} {'B/(sample,layer)':>17} {'write s':>8} {'read s':>8} {'load s':>8}")
        for c in CANDIDATES:
            t = r["seconds_median"][c]
            print(
                f"{c:28} {r['bytes'][c] / 2**20:>8.2f} {r['bytes_per_sample_layer'][c]:>17.1f} "
                f"{t['write']:>8.4f} {t['read']:>8.4f} {t['load']:>8.4f}"
            )
    print(f"\nmedians of {args.repeats} interleaved repeats; pyarrow {pa.__version__}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, on {os.cpu_count()} CPUs")
    print(
        json.dumps(
            {
                "benchmark": "storage",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "pyarrow": pa.__version__,
                "repeats": args.repeats,
                "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
