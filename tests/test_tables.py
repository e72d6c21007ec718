import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grokpath import tables


def _batch(start: int, n: int, layers: int = 2, experts: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(start)
    return {
        "sample_id": np.repeat(np.asarray([f"s{i:04d}" for i in range(start, start + n)], dtype=object), layers),
        "layer": np.tile(np.arange(layers, dtype=np.int16), n),
        "n_tokens": np.repeat(np.arange(start, start + n, dtype=np.int32) + 2, layers),
        "probs": rng.dirichlet(np.ones(experts), size=n * layers).astype(np.float32),
    }


def test_stream_writer_gathers_batches_into_row_groups(tmp_path):
    path = tmp_path / "routing.parquet"
    constants = {"model": "m", "step": "step1", "domain": "math"}
    batches = [_batch(0, 5), _batch(5, 5), _batch(10, 3)]
    with tables.StreamWriter(path, tables.ROUTING_SCHEMA, constants, row_group_rows=20, seed=3) as sink:
        sink.write(batches[0])
        assert not list(tmp_path.iterdir())  # the file is opened with its first row group
        for b in batches[1:]:
            sink.write(b)
            assert [p.name for p in tmp_path.iterdir()] == [f".routing.parquet.tmp-{os.getpid()}"]
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [20, 6]
    df = tables.read(path, tables.ROUTING_SCHEMA)
    assert df["model"].unique().to_list() == ["m"]
    assert df["domain"].unique().to_list() == ["math"]
    assert df["sample_id"].to_list() == np.concatenate([b["sample_id"] for b in batches]).tolist()
    np.testing.assert_array_equal(np.stack(df["probs"].to_list()), np.concatenate([b["probs"] for b in batches]))
    assert tables.read_metadata(path)["seed"] == 3


def test_float_columns_are_split_bytes_without_a_dictionary(tmp_path):
    """Routing weights are nearly all distinct: a dictionary would be as large as the data."""
    path = tmp_path / "routing.parquet"
    with tables.StreamWriter(path, tables.ROUTING_SCHEMA, {"model": "m", "step": "s", "domain": "d"}) as sink:
        sink.write(_batch(0, 50))
    columns = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)}
    assert "BYTE_STREAM_SPLIT" in encodings["probs.list.element"]
    assert not any("DICTIONARY" in e for e in encodings["probs.list.element"])
    assert any("DICTIONARY" in e for e in encodings["sample_id"])
    tables.write(
        pa.table(
            {
                "model": ["m"],
                "step": ["s"],
                "domain": ["d"],
                "sample_id": ["a"],
                "loss": [1.5],
                "n_tokens": pa.array([3], pa.int32()),
            }
        ),
        tmp_path / "loss.parquet",
        tables.LOSS_SCHEMA,
    )
    loss = pq.ParquetFile(tmp_path / "loss.parquet").metadata.row_group(0)
    names = [loss.column(i).path_in_schema for i in range(loss.num_columns)]
    assert "BYTE_STREAM_SPLIT" in loss.column(names.index("loss")).encodings


def test_codecs_and_statistics_per_column(tmp_path):
    """zstd where it pays, none on the one-value keys; min/max statistics on keys, not on floats."""
    path = tmp_path / "routing.parquet"
    with tables.StreamWriter(path, tables.ROUTING_SCHEMA, {"model": "m", "step": "s", "domain": "d"}) as sink:
        sink.write(_batch(0, 50))
    group = pq.ParquetFile(path).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert {name: c.compression for name, c in columns.items()} == {
        "model": "UNCOMPRESSED",
        "step": "UNCOMPRESSED",
        "domain": "UNCOMPRESSED",
        "sample_id": "ZSTD",
        "layer": "ZSTD",
        "n_tokens": "ZSTD",
        "probs.list.element": "ZSTD",
    }
    assert columns["probs.list.element"].statistics is None
    assert columns["sample_id"].statistics.min == "s0000"
    assert columns["sample_id"].statistics.max == "s0049"
    assert columns["model"].statistics.min == "m"
    # a list of integers: its leaf is found like the floats' (dictionary, zstd, statistics)
    options = tables._write_options(tables.PATHWAYS_SCHEMA)
    assert options["compression"]["experts_per_layer.list.element"] == "zstd"
    assert "experts_per_layer.list.element" in options["use_dictionary"]
    assert "experts_per_layer.list.element" in options["write_statistics"]
    assert "consistency" not in options["write_statistics"]
    assert options["use_byte_stream_split"] == ["consistency", "mean_cosine", "routing_entropy", "tau"]


def test_stream_writer_without_rows_writes_an_empty_table(tmp_path):
    """A split without samples still gets its table, with the schema and metadata."""
    path = tmp_path / "routing.parquet"
    with tables.StreamWriter(path, tables.ROUTING_SCHEMA, {"model": "m", "step": "s", "domain": "d"}, seed=5):
        assert not path.exists()
    assert tables.read(path, tables.ROUTING_SCHEMA).height == 0
    assert tables.read_metadata(path)["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["routing.parquet"]


def test_stream_writer_refuses_wrong_columns_and_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "routing.parquet"
    constants = {"model": "m", "step": "s", "domain": "d"}
    with (
        pytest.raises(ValueError, match=r"do not match the non-constant columns"),
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, constants) as sink,
    ):
        sink.write({k: v for k, v in _batch(0, 2).items() if k != "layer"})
    assert not path.exists()
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"constants \['run'\] are not columns"):
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, {**constants, "run": 1})
    bad = _batch(0, 2)
    bad["layer"] = bad["layer"][:1]
    with (
        pytest.raises(ValueError, match=r"differ in length"),
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, constants) as sink,
    ):
        sink.write(bad)
    assert not path.exists()


def test_stream_writer_checks_its_constants_before_any_row(tmp_path):
    """A constant that is not one value of its column's type is refused when the writer is made
    (before a forward pass), naming it, and nothing is written."""
    path = tmp_path / "routing.parquet"
    constants = {"model": "m", "step": "s", "domain": "d"}
    with pytest.raises(ValueError, match=r"constant 'step' is None: a constant is one value"):
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, {**constants, "step": None})
    with pytest.raises(ValueError, match=r"constant 'domain' is \['a', 'b'\]: a constant is one value"):
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, {**constants, "domain": ["a", "b"]})
    with pytest.raises(ValueError, match=r"constant 'layer' is 'x', not a value of its column's type int16"):
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, {**constants, "layer": "x"})
    with pytest.raises(ValueError, match=r"constant 'layer' is 100000, not a value of its column's type int16"):
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, {**constants, "layer": 100_000})
    assert not list(tmp_path.iterdir())
    # a NumPy scalar of the column's type is one value
    with tables.StreamWriter(path, tables.ROUTING_SCHEMA, {**constants, "layer": np.int16(3)}) as sink:
        sink.write({k: v for k, v in _batch(0, 2).items() if k != "layer"})
    assert tables.read(path, tables.ROUTING_SCHEMA)["layer"].to_list() == [3] * 4


def test_stream_writer_failing_last_row_group_leaves_nothing(tmp_path):
    path = tmp_path / "routing.parquet"
    bad = _batch(0, 2)
    bad["n_tokens"] = np.asarray(["x"] * 4, dtype=object)  # not int32: fails when the row group is built
    with (
        pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)),
        tables.StreamWriter(path, tables.ROUTING_SCHEMA, {"model": "m", "step": "s", "domain": "d"}) as sink,
    ):
        sink.write(bad)
    assert not list(tmp_path.iterdir())


def test_read_head_reads_the_first_rows_and_checks_the_schema(tmp_path):
    path = tmp_path / "loss.parquet"
    rows = [
        {"model": "m", "step": "s", "domain": "d", "sample_id": f"x{i}", "loss": float(i), "n_tokens": i}
        for i in range(10)
    ]
    tables.write(rows, path, tables.LOSS_SCHEMA)
    assert tables.read_head(path, tables.LOSS_SCHEMA, 3)["sample_id"].to_list() == ["x0", "x1", "x2"]
    assert tables.read_head(path, tables.LOSS_SCHEMA, 50).height == 10
    tables.write([], tmp_path / "empty.parquet", tables.LOSS_SCHEMA)
    assert tables.read_head(tmp_path / "empty.parquet", tables.LOSS_SCHEMA, 3).height == 0
    with pytest.raises(ValueError, match=r"loss.parquet: schema does not match the expected one"):
        tables.read_head(path, tables.ROUTING_SCHEMA, 3)


def test_to_arrow_casts_to_the_schema_and_keeps_a_table_already_in_it():
    n = 3
    columns = {
        "model": ["m"] * n,
        "step": ["s"] * n,
        "domain": ["d"] * n,
        "sample_id": ["a", "b", "c"],
        "loss": [1.0, 2.0, 3.0],
        "n_tokens": [4, 5, 6],
    }
    schema = tables.LOSS_SCHEMA
    loose = pa.table({name: columns[name] for name in reversed(list(columns))})  # int64, nullable, reordered
    cast = tables.to_arrow(loose, schema)
    assert cast.schema.equals(schema)
    assert cast.column("n_tokens").to_pylist() == [4, 5, 6]
    exact = pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)
    assert tables.to_arrow(exact, schema) is exact  # nothing to cast
    with pytest.raises(ValueError, match="do not match schema"):
        tables.to_arrow(loose.drop_columns(["loss"]), schema)


_WITHOUT_PANDAS = """
import sys
import numpy as np, pyarrow as pa, polars as pl
from grokpath import tables
tables.skip_pandas_probe()
assert not any(isinstance(f, tables._NoPandas) for f in sys.meta_path), "the finder failing `import pandas` is gone"
path = sys.argv[1]
schema = tables.LOSS_SCHEMA
rows = [{"model": "m", "step": "s", "domain": "d", "sample_id": f"x{i}", "loss": 0.5, "n_tokens": 3} for i in range(4)]
tables.write(rows, path, schema, seed=0)
df = tables.read(path, schema)
pa.array(np.arange(3)).to_numpy()
tables.read_arrow(path).column("loss").to_numpy()
pl.from_arrow(tables.read_arrow(path)).to_arrow()
assert "pandas" not in sys.modules, "pyarrow imported pandas after all"
frame = tables.read_arrow(path).to_pandas()  # pandas where it is asked for
assert "pandas" in sys.modules and len(frame) == 4
print("ok")
"""


def test_skip_pandas_probe_keeps_pandas_out_of_table_work_but_not_out_of_reach(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PANDAS, str(tmp_path / "loss.parquet")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_jobs_that_may_hand_pyarrow_pandas_objects_keep_the_probe():
    """Scripts that load HF datasets or run lm-eval (both pass pandas objects to pyarrow) must not
    skip pyarrow's check for pandas; the table stages that skip it are the numerous small jobs."""
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    skipping = {p.stem for p in scripts.glob("*.py") if "pandas=False" in p.read_text()}
    keep = {"run_lm_eval", "prefetch_benchmarks", "prepare_samples", "prepare_instructions", "instruction_tune"}
    keep |= {"decontaminate"}
    assert not skipping & keep
    assert {"compute_pathways", "pathway_distance", "ablate_tau", "extract_routing"} <= skipping
