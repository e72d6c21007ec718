"""The small distance jobs never import polars (`lazy.LazyModule`), and still write what they did."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from safetensors.numpy import save_file

from grokpath import stages, tables
from grokpath.lazy import LazyModule


def test_lazy_module_imports_on_first_attribute_read():
    lazy = LazyModule("json")
    assert lazy.dumps([1]) == "[1]"
    assert "json" in repr(lazy)
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        LazyModule("no_such_module_here").anything


def _inputs(tmp_path) -> dict[str, str]:
    """A routing table (12 samples, 3 MoE layers, 4 experts), its routers and a groups table with
    two memorization groups."""
    rng = np.random.default_rng(0)
    n, layers, k = 12, 3, 4
    ids = [f"s{i:02d}" for i in range(n)]
    probs = rng.dirichlet(np.ones(k), size=(n, layers)).astype(np.float32)
    routing = tables.build(
        {
            "model": "m",
            "step": "c2",
            "domain": "math",
            "sample_id": np.repeat(np.asarray(ids, dtype=object), layers),
            "layer": np.tile(np.arange(layers, dtype=np.int16), n),
            "n_tokens": np.full(n * layers, 5, dtype=np.int32),
            "probs": list(probs.reshape(n * layers, k)),
        },
        tables.ROUTING_SCHEMA,
    )
    paths = {
        name: str(tmp_path / f"{name}.parquet") for name in ("routing", "groups", "pathways", "dist", "tau", "cross")
    }
    tables.write(routing, paths["routing"], tables.ROUTING_SCHEMA, seed=0, checkpoint_sha="a" * 64)
    paths["routers"] = str(tmp_path / "routers.safetensors")
    save_file({f"layer{i}": rng.normal(size=(k, 8)).astype(np.float32) for i in range(layers)}, paths["routers"])
    memorized = ["c1"] * 4 + ["c2"] * 5 + [None] * 3
    groups = tables.build(
        {
            "model": "m",
            "domain": "math",
            "sample_id": ids,
            "memorized_at": memorized,
            "memorized_step": [None if m is None else int(m[1]) * 10 for m in memorized],
            "eps": 0.5,
            "delta": 0.1,
            "eps_searched": False,
        },
        tables.GROUPS_SCHEMA,
    )
    tables.write(groups, paths["groups"], tables.GROUPS_SCHEMA, seed=0)
    return paths


_JOBS = """
import json, sys
from grokpath import logs, stages
p = json.loads(sys.argv[1])
settings = {"level": "char", "layerwise": True, "max_pairs": 1000}
stages.compute_pathways("m", "c2", "math", p["routing"], p["routers"], 0.7, p["pathways"])
stages.pathway_distance("m", "c2", "math", p["pathways"], p["groups"], ["c1", "c2"], settings, 0, p["dist"])
stages.ablate_tau("m", "c2", "math", p["routing"], p["groups"], ["c1", "c2"], [0.5, 0.9], settings, 0, p["tau"])
pairs = [["math", "code"]]
stages.cross_domain_distance("m", "c2", {"math": p["pathways"], "code": p["pathways"]}, pairs, settings, 0, p["cross"])
assert "polars" not in sys.modules, "a small table job imported polars"
print("ok")
"""


def test_small_table_jobs_do_not_import_polars(tmp_path):
    import json

    paths = _inputs(tmp_path)
    run = subprocess.run([sys.executable, "-c", _JOBS, json.dumps(paths)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
    # what they wrote: every sample's pathway; groups in training order, then "all"
    pathways = tables.read(paths["pathways"], tables.PATHWAYS_SCHEMA)
    assert pathways["sample_id"].to_list() == [f"s{i:02d}" for i in range(12)]
    dist = tables.read(paths["dist"], tables.DISTANCE_SCHEMA).filter(pl.col("layer").is_null())
    assert dist["group"].to_list() == [stages.group_label("c1"), stages.group_label("c2"), stages.GROUP_ALL]
    assert dist["n_samples"].to_list() == [4, 5, 12]
    assert dist["n_pairs"].to_list() == [6, 10, 66]
    tau = tables.read(paths["tau"], tables.TAU_ABLATION_SCHEMA)
    assert sorted(set(tau["tau"].to_list())) == [0.5, 0.9]
    assert tau.height == 6
    cross = tables.read(paths["cross"], tables.CROSS_DISTANCE_SCHEMA)
    assert cross["n_pairs"].to_list() == [144]


def test_build_broadcasts_single_values_and_checks_columns():
    schema = pa.schema([pa.field("model", pa.string(), nullable=False), pa.field("x", pa.float64())])
    table = tables.build({"model": "m", "x": np.arange(3.0)}, schema)
    assert table.schema == schema
    assert table.column("model").to_pylist() == ["m"] * 3
    assert tables.build({"model": "m", "x": np.float32(0.5)}, schema).column("x").to_pylist() == [0.5]
    with pytest.raises(ValueError, match="do not match schema"):
        tables.build({"model": "m"}, schema)
    with pytest.raises(ValueError, match="differ in length"):
        tables.build({"model": ["a", "b"], "x": [1.0]}, schema)
    with pytest.raises(ValueError, match=r"columns \{'model': None\} are neither one value"):
        tables.build({"model": None, "x": [1.0]}, schema)


def test_build_takes_arrow_arrays_of_the_schemas_type_as_they_are():
    schema = pa.schema([pa.field("model", pa.string()), pa.field("probs", pa.list_(pa.float32()))])
    probs = pa.array([[0.5, 0.5], [1.0, 0.0]], pa.list_(pa.float32()))
    table = tables.build({"model": "m", "probs": probs}, schema)
    assert table.column("probs").chunk(0).equals(probs)
    assert table.column("model").to_pylist() == ["m", "m"]
    with pytest.raises(ValueError, match=r"column 'probs' is list<item: double>, the schema says list<item: float>"):
        tables.build({"model": "m", "probs": pa.array([[0.5, 0.5]], pa.list_(pa.float64()))}, schema)
