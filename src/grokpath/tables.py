"""One schema constant per Parquet table, and the one way tables are written and read.

Every table carries model/step/domain columns (where they apply) so aggregation is a plain concat,
and its file metadata records the versions, seed and checkpoint that produced it.
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from grokpath import __version__
from grokpath.io import atomic_path
from grokpath.lazy import LazyModule

if TYPE_CHECKING:
    import polars as pl
else:  # imported by the jobs that use it (`lazy.LazyModule`)
    pl = LazyModule("polars")

_KEYS = [pa.field("model", pa.string(), nullable=False)]
_STEP = pa.field("step", pa.string(), nullable=False)
_DOMAIN = pa.field("domain", pa.string(), nullable=False)
_SAMPLE = pa.field("sample_id", pa.string(), nullable=False)

TRAJECTORY_SCHEMA = pa.schema(
    [
        *_KEYS,
        pa.field("step", pa.int64(), nullable=False),
        _DOMAIN,
        pa.field("train_loss", pa.float64()),
        pa.field("train_accuracy", pa.float64()),
        pa.field("test_accuracy", pa.float64()),
    ]
)

# The monitors measured during pretraining (grokpath.monitor) on a fixed sample set per domain,
# at finer steps than the saved checkpoints.
LIVE_MONITORS_SCHEMA = pa.schema(
    [
        *_KEYS,
        pa.field("step", pa.int64(), nullable=False),
        _DOMAIN,
        pa.field("n_samples", pa.int64(), nullable=False),
        pa.field("pathway_distance", pa.float64(), nullable=False),
        pa.field("pathway_consistency", pa.float64(), nullable=False),
        pa.field("sample_loss", pa.float64(), nullable=False),
    ]
)

SAMPLES_SCHEMA = pa.schema(
    [
        *_KEYS,
        _DOMAIN,
        pa.field("split", pa.string(), nullable=False),
        _SAMPLE,
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("token_sha256", pa.string(), nullable=False),
    ]
)

# Routing: one row per (sample, MoE layer). float32 probabilities are what the router computes in
# (softmax in float32; float16 would change 66% of paper-sized pathways, benchmarks/storage.py);
# the repetitive model/step/domain columns are dictionaries of one value and runs of its index,
# a few bytes, and the weights are written as every table's floats are (`_write_options`).
ROUTING_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        _SAMPLE,
        pa.field("layer", pa.int16(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("probs", pa.list_(pa.float32()), nullable=False),
    ]
)

LOSS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        _SAMPLE,
        pa.field("loss", pa.float64(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
    ]
)

GROUPS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _DOMAIN,
        _SAMPLE,
        pa.field("memorized_at", pa.string()),
        pa.field("memorized_step", pa.int64()),
        pa.field("eps", pa.float64(), nullable=False),
        pa.field("delta", pa.float64(), nullable=False),
        pa.field("eps_searched", pa.bool_(), nullable=False),
    ]
)

PATHWAYS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        _SAMPLE,
        pa.field("pathway", pa.string(), nullable=False),
        pa.field("experts_per_layer", pa.list_(pa.int16()), nullable=False),
        pa.field("consistency", pa.float64(), nullable=False),
        pa.field("mean_cosine", pa.float64(), nullable=False),
        pa.field("routing_entropy", pa.float64(), nullable=False),
        pa.field("tau", pa.float64(), nullable=False),
    ]
)

DISTANCE_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        pa.field("group", pa.string(), nullable=False),
        pa.field("layer", pa.int16()),
        pa.field("n_samples", pa.int64(), nullable=False),
        pa.field("n_pairs", pa.int64(), nullable=False),
        pa.field("mean_distance", pa.float64()),
        pa.field("level", pa.string(), nullable=False),
    ]
)

# The memorization thresholds' ablations (paper Figs. 10 and 11): per eps or delta `value`, the
# samples memorized before the last checkpoint and their mean pathway distance at `step`.
MEMORIZATION_ABLATION_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        pa.field("parameter", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("eps", pa.float64(), nullable=False),
        pa.field("delta", pa.float64(), nullable=False),
        pa.field("n_memorized", pa.int64(), nullable=False),
        pa.field("n_pairs", pa.int64(), nullable=False),
        pa.field("mean_distance", pa.float64()),
        pa.field("level", pa.string(), nullable=False),
    ]
)

# The cross-domain control (paper Fig. 12): mean distance between two domains' samples.
CROSS_DISTANCE_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        pa.field("domain_a", pa.string(), nullable=False),
        pa.field("domain_b", pa.string(), nullable=False),
        pa.field("n_pairs", pa.int64(), nullable=False),
        pa.field("mean_distance", pa.float64()),
        pa.field("level", pa.string(), nullable=False),
    ]
)

# Distance vs routing entropy (paper Fig. 13): per sample of one checkpoint, its routing entropy
# (nats, mean over MoE layers) and its mean pathway distance to `n_partners` others of its domain.
ENTROPY_DISTANCE_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        _SAMPLE,
        pa.field("routing_entropy", pa.float64(), nullable=False),
        pa.field("mean_distance", pa.float64()),
        pa.field("n_partners", pa.int64(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
    ]
)

EVAL_ITEMS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        pa.field("task", pa.string(), nullable=False),
        pa.field("doc_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("prediction", pa.string(), nullable=False),
        pa.field("correct", pa.int8(), nullable=False),
    ]
)

# Min-K%++ score of each benchmark item under the scoring checkpoint `step`; `dropped` items are
# left out of every later stage.
DECONTAMINATION_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        _DOMAIN,
        pa.field("task", pa.string(), nullable=False),
        pa.field("doc_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("dropped", pa.bool_(), nullable=False),
    ]
)

TEST_GROUPS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _DOMAIN,
        pa.field("task", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("learned_at", pa.string()),
        pa.field("learned_step", pa.int64()),
    ]
)

MATCHES_SCHEMA = pa.schema(
    [
        *_KEYS,
        _DOMAIN,
        pa.field("task", pa.string(), nullable=False),
        pa.field("train_group", pa.string(), nullable=False),
        pa.field("test_group", pa.string(), nullable=False),
        pa.field("train_step", pa.int64(), nullable=False),
        pa.field("test_step", pa.int64(), nullable=False),
        pa.field("delay", pa.int64(), nullable=False),
        pa.field("similarity", pa.float64(), nullable=False),
        pa.field("n_train", pa.int64(), nullable=False),
        pa.field("n_test", pa.int64(), nullable=False),
    ]
)

CORRELATIONS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _DOMAIN,
        pa.field("task", pa.string(), nullable=False),
        pa.field("monitor", pa.string(), nullable=False),
        pa.field("pearson_r", pa.float64()),
        pa.field("pearson_p", pa.float64()),
        pa.field("pearson_ci_low", pa.float64()),
        pa.field("pearson_ci_high", pa.float64()),
        pa.field("spearman_rho", pa.float64()),
        pa.field("spearman_p", pa.float64()),
        pa.field("spearman_ci_low", pa.float64()),
        pa.field("spearman_ci_high", pa.float64()),
        pa.field("n_checkpoints", pa.int64(), nullable=False),
        pa.field("checkpoints", pa.string(), nullable=False),
        pa.field("window", pa.string(), nullable=False),
    ]
)

TAU_ABLATION_SCHEMA = DISTANCE_SCHEMA.append(pa.field("tau", pa.float64(), nullable=False))

MONITORS_SCHEMA = pa.schema(
    [
        *_KEYS,
        _STEP,
        pa.field("step_number", pa.int64(), nullable=False),
        _DOMAIN,
        pa.field("group", pa.string(), nullable=False),
        pa.field("n_samples", pa.int64(), nullable=False),
        pa.field("mean_distance", pa.float64()),
        pa.field("mean_consistency", pa.float64()),
        pa.field("mean_training_loss", pa.float64()),
        pa.field("validation_loss", pa.float64()),
    ]
)


class _NoPandas:
    """An import finder under which `import pandas` fails (ModuleNotFoundError)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is skipped by tables.skip_pandas_probe", name=name)


def skip_pandas_probe() -> None:
    """Let pyarrow note that pandas is absent, in a job that hands it no pandas objects.

    pyarrow checks the first value it converts (`pa.array`, `to_numpy`, ...) for a pandas object,
    importing pandas to do so when it is installed (lm-eval needs it): ~0.25 s, a third of each
    small job (compute_pathways, pathway_distance, ...). Made here while `import pandas` fails,
    that first check notes that pandas is absent, and pyarrow keeps the note: pandas objects are no
    longer recognised as such, while whatever asks pyarrow for pandas (`to_pandas`) imports it
    then. Nothing happens where pandas was imported already."""
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([])  # pyarrow's first check for a pandas object
    finally:
        sys.meta_path.remove(finder)


def versions() -> dict[str, str]:
    """Versions of the packages whose behaviour decides the numbers in a table."""
    return dict(_versions())  # a copy: callers may add to it


@functools.cache
def _versions() -> dict[str, str]:
    # cached: reading package metadata from disk cost ~13 ms per table written, which was most of
    # the routing capture's overhead on small models (benchmarks/routing_overhead.py)
    out = {"grokpath": __version__}
    for pkg in ("torch", "transformers", "lm-eval"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _is_polars(df: object) -> bool:
    polars = sys.modules.get("polars")  # where polars was never imported, df is none of its frames
    return polars is not None and isinstance(df, polars.DataFrame)


def to_arrow(df: pl.DataFrame | pa.Table | list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Cast to exactly `schema`: missing or extra columns are a bug, not something to guess about."""
    if isinstance(df, list):
        return pa.Table.from_pylist(df, schema=schema)
    table = df.to_arrow() if _is_polars(df) else df
    if table.schema.equals(schema):
        # built with the schema already (`pa.Table.from_arrays(..., schema=...)`): no cast, whose
        # compute calls cost ~0.35 ms right after a model pass, on a 300-row loss table
        return table
    if set(table.column_names) != set(schema.names):
        raise ValueError(f"columns {sorted(table.column_names)} do not match schema {sorted(schema.names)}")
    return table.select(schema.names).cast(schema)


# What `build` broadcasts to every row, as polars' DataFrame broadcasts a Python scalar.
_SINGLE = (str, int, float, bool, np.generic)


def build(columns: Mapping[str, Any], schema: pa.Schema) -> pa.Table:
    """A table in `schema` from its columns, each an Arrow array of the field's type (taken as it
    is), a NumPy array or a sequence of values, or one value (str, number, bool) for every row, as
    polars' DataFrame broadcasts it (a NumPy scalar too)."""
    if set(columns) != set(schema.names):
        raise ValueError(f"columns {sorted(columns)} do not match schema {sorted(schema.names)}")
    single = {name for name, v in columns.items() if isinstance(v, _SINGLE)}
    unsized = {name: v for name, v in columns.items() if name not in single and not hasattr(v, "__len__")}
    if unsized:
        raise ValueError(
            f"columns {unsized} are neither one value for every row (str, number, bool) nor a sequence of values"
        )
    lengths = {len(v) for name, v in columns.items() if name not in single}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 1
    return pa.Table.from_arrays([_column(columns[f.name], f, n, f.name in single) for f in schema], schema=schema)


def _column(values: Any, field: pa.Field, n: int, single: bool) -> pa.Array:
    if single:
        return pa.repeat(pa.scalar(values, field.type), n)  # no Python list of n values
    if isinstance(values, pa.Array):
        if values.type != field.type:
            raise ValueError(f"column {field.name!r} is {values.type}, the schema says {field.type}")
        return values
    return pa.array(values, field.type)


def frame(rows: list[dict[str, Any]], schema: pa.Schema) -> pl.DataFrame:
    return pl.from_arrow(to_arrow(rows, schema))  # type: ignore[return-value]


def _metadata(schema: pa.Schema, meta: dict[str, Any]) -> dict[bytes, bytes]:
    info = {"versions": versions(), **meta}
    return {**(schema.metadata or {}), b"grokpath": json.dumps(info, sort_keys=True, default=str).encode()}


def _gathered_column(parts: list[Any], kind: pa.DataType) -> pa.Array:
    """One Arrow column from a writer's gathered batches (NumPy arrays or lists)."""
    if all(isinstance(p, np.ndarray) for p in parts):
        values = np.concatenate(parts)
        if pa.types.is_list(kind) and values.ndim == 2:  # one row per table row: offsets, no copy per row
            width = values.shape[1]
            offsets = pa.array(np.arange(0, values.size + 1, width, dtype=np.int32))
            return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), kind.value_type))
        return pa.array(values, kind)
    return pa.array(list(itertools.chain.from_iterable(parts)), kind)


def _leaves(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    """(Parquet column path, value type) of every leaf: `probs.list.element` for a list column."""
    leaves = []
    for field in schema:
        kind, path = field.type, field.name
        while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            kind, path = kind.value_type, f"{path}.list.element"
        leaves.append((path, kind))
    return leaves


# Key columns that hold one value, or a handful, per table: dictionary-encoded they are a few bytes
# of run lengths, so zstd saves nothing on them and only costs a compression context per page.
_UNCOMPRESSED = {_KEYS[0].name, _STEP.name, _DOMAIN.name}


@functools.cache
def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """zstd, but not for the model/step/domain keys (`_UNCOMPRESSED`); floats without a dictionary
    and in BYTE_STREAM_SPLIT (bytes 0 of every value, then bytes 1, ...), and without statistics.

    Measured weights are nearly all distinct, so pyarrow's default dictionary was as large as the
    data with its indices on top, and split bytes line the sign/exponent bytes up for zstd: routing
    tables are 39% smaller (214 instead of 362 bytes per (sample, layer) at 64 experts), lossless,
    read as fast (benchmarks/storage.py). Min/max statistics serve filters on keys; nothing filters
    on a float. Without them and without zstd on the keys, routing tables are written 6% faster,
    paper-sized or the default's, in the same bytes (storage.py --baseline-tables)."""
    leaves = _leaves(schema)
    floats = [path for path, kind in leaves if pa.types.is_floating(kind)]
    others = [path for path, _ in leaves if path not in floats]
    return {
        "compression": {path: "none" if path in _UNCOMPRESSED else "zstd" for path, _ in leaves},
        "use_dictionary": others,
        "use_byte_stream_split": floats or False,
        "write_statistics": others,
    }


def write(df: pl.DataFrame | pa.Table | list[dict[str, Any]], path: str | Path, schema: pa.Schema, **meta: Any) -> None:
    """Write atomically (`_write_options`); `meta` (seed, checkpoint sha, ...) lands in the file metadata."""
    table = to_arrow(df, schema)
    table = table.replace_schema_metadata(_metadata(schema, meta))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **_write_options(schema.remove_metadata()))


# Rows gathered per row group by StreamWriter: 2^16 (sample, layer) rows is 4,096 samples of a
# 16-layer model, 16 MiB of float32 weights at 64 experts: memory stays flat in the number of
# samples, while a row group per batch of 64 samples took 50% more bytes (small row groups
# compress worse) and its Arrow and Parquet calls cost ~1 ms per batch between forward passes,
# when their code and data are out of the CPU caches (benchmarks/routing_overhead.py).
ROW_GROUP_ROWS = 2**16


def _check_constant(name: str, value: Any, kind: pa.DataType) -> None:
    """A StreamWriter constant is one value of its column's type: checked when the writer is made,
    before a forward pass, not when the first row group is built after the pass."""
    if not isinstance(value, _SINGLE):
        raise ValueError(f"constant {name!r} is {value!r}: a constant is one value (str, number, bool) for every row")
    try:
        pa.scalar(value, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
        raise ValueError(f"constant {name!r} is {value!r}, not a value of its column's type {kind}: {error}") from None


class StreamWriter:
    """Incremental Parquet writes, renamed into place on close.

    `write` takes a batch of rows: every column but the `constants` (one value for the whole
    table: model, step, domain) as a NumPy array (2-D for a list column, one row per table row)
    or a list. Batches are only gathered (no Arrow call per batch); each `row_group_rows` rows
    become one Arrow table and one row group.
    """

    def __init__(
        self,
        path: str | Path,
        schema: pa.Schema,
        constants: Mapping[str, Any] | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        **meta: Any,
    ) -> None:
        self._schema = schema.with_metadata(_metadata(schema, meta))
        self._constants = dict(constants or {})
        self._columns = [name for name in schema.names if name not in self._constants]
        unknown = set(self._constants) - set(schema.names)
        if unknown:
            raise ValueError(f"constants {sorted(unknown)} are not columns of the schema {schema.names}")
        for name, value in self._constants.items():
            _check_constant(name, value, schema.field(name).type)
        self._row_group_rows = row_group_rows
        self._pending: dict[str, list[Any]] = {name: [] for name in self._columns}
        self._n_pending = 0
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        # Opened with the first row group: a table of one row group (every domain of the embedded
        # default) is opened, written and closed in one go, right before the loss table, while
        # pyarrow's code is in the CPU caches, instead of before the first forward pass.
        self._writer: pq.ParquetWriter | None = None

    def write(self, rows: Mapping[str, Any]) -> None:
        if set(rows) != set(self._columns):
            raise ValueError(f"columns {sorted(rows)} do not match the non-constant columns {sorted(self._columns)}")
        lengths = {name: len(values) for name, values in rows.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns of one batch differ in length: {lengths}")
        for name, values in rows.items():
            self._pending[name].append(values)
        self._n_pending += next(iter(lengths.values()))
        if self._n_pending >= self._row_group_rows:
            self._flush()

    def _flush(self) -> None:
        n = self._n_pending
        if n:
            gathered = {
                name: _gathered_column(self._pending[name], self._schema.field(name).type) for name in self._columns
            }
            self._opened().write_table(build(self._constants | gathered, self._schema), row_group_size=n)
        self._pending = {name: [] for name in self._columns}
        self._n_pending = 0

    def _opened(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, self._schema, **_write_options(self._schema.remove_metadata()))
        return self._writer

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        failed = None
        if exc_type is None:
            try:
                self._flush()
            except BaseException as error:  # the last row group failed: nothing may be renamed into place
                failed = error
                exc_type, exc, tb = type(error), error, error.__traceback__
        self._pending = {name: [] for name in self._columns}
        if exc_type is None:
            self._opened().close()  # a table without rows still has its schema and metadata
        elif self._writer is not None:
            self._writer.close()
        self._ctx.__exit__(exc_type, exc, tb)
        if failed is not None:
            raise failed


def read_arrow(path: str | Path, schema: pa.Schema | None = None) -> pa.Table:
    """A whole Parquet file as an Arrow table (checked as `read` checks it, given a `schema`),
    through its file reader: `pq.read_table` goes through pyarrow.dataset, whose import costs ~20
    ms in each job that reads a table, and each read of a small table 1.0 ms instead of 0.6."""
    with pq.ParquetFile(path) as parquet:
        table = parquet.read()
    if schema is not None:
        _check_schema(path, table.schema, schema)
    return table


def read(path: str | Path, schema: pa.Schema) -> pl.DataFrame:
    """Read a table and check that it has exactly the expected schema."""
    return pl.from_arrow(read_arrow(path, schema))  # type: ignore[return-value]


def read_head(path: str | Path, schema: pa.Schema, n: int) -> pl.DataFrame:
    """The first `n` rows of a table, checked as `read` checks it, without reading the rest."""
    parquet = pq.ParquetFile(path)
    _check_schema(path, parquet.schema_arrow, schema)
    first = next(parquet.iter_batches(batch_size=n), None)
    table = pa.Table.from_batches([first]) if first is not None else parquet.schema_arrow.empty_table()
    return pl.from_arrow(table)  # type: ignore[return-value]


def _check_schema(path: str | Path, found: pa.Schema, schema: pa.Schema) -> None:
    if found.remove_metadata() != schema.remove_metadata():
        raise ValueError(f"{path}: schema does not match the expected one:\n{found}\nexpected:\n{schema}")


def provenance(paths: Iterable[str | Path]) -> dict[str, Any]:
    """What a table made from other tables records of them: their seed and every checkpoint's sha
    ({"model/step": sha}, from the inputs' own `checkpoint_sha` or `checkpoint_shas`)."""
    seeds, shas = set(), {}
    for path in paths:
        meta = read_metadata(path)
        if "seed" in meta:
            seeds.add(meta["seed"])
        shas.update(meta.get("checkpoint_shas", {}))
        if "checkpoint_sha" in meta:
            first = pq.ParquetFile(path).read_row_group(0, columns=["model", "step"]) if _has_step(path) else None
            if first is not None and first.num_rows:
                shas[f"{first.column('model')[0]}/{first.column('step')[0]}"] = meta["checkpoint_sha"]
    out: dict[str, Any] = {"checkpoint_shas": dict(sorted(shas.items()))}
    if len(seeds) == 1:
        out["seed"] = seeds.pop()
    return out


def _has_step(path: str | Path) -> bool:
    names = pq.read_schema(path).names
    return "model" in names and "step" in names


def read_metadata(path: str | Path) -> dict[str, Any]:
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw.get(b"grokpath", b"{}"))
