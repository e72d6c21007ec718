"""Interruptions and reproducibility, end to end on a small config.

Run A goes through uninterrupted. Run B is killed with SIGKILL (the whole process group: Snakemake
and its job) once during routing extraction and once during an evaluation, and resumed each time
with `--rerun-incomplete`. The resumed runs must recompute nothing that had finished, and every
table of B must equal A's (content, not timestamps): two runs from scratch with the same config and
seed give identical results, interrupted or not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from grokpath import tables

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

pytestmark = pytest.mark.workflow


def _workdir(base: Path) -> Path:
    wd = base
    wd.mkdir()
    shutil.copy(ROOT / "Snakefile", wd)
    for name in ("workflow", "envs"):
        shutil.copytree(ROOT / name, wd / name)
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["domains"]["math"]["tasks"] = config["domains"]["math"]["tasks"][:1]  # one benchmark is enough
    config["ablation"] = {"taus": []}
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    return wd


def _cmd(*args: str) -> list[str]:
    return [SNAKEMAKE, "--cores", "1", "--configfile", "config.yaml", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(wd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), cwd=wd, capture_output=True, text=True, env=_env(), check=False)


def _kill_when(wd: Path, started: str, *args: str, timeout: float = 600) -> None:
    """Start the run (with `args`) and SIGKILL it (and its job) once the log file `started` exists."""
    proc = subprocess.Popen(
        _cmd(*args), cwd=wd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while not (wd / started).exists():
            assert proc.poll() is None, f"the run ended before {started} began"
            assert time.monotonic() < deadline, f"{started} never began"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the job: it is loading the model or computing
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tables(wd: Path) -> dict[str, pl.DataFrame]:
    out = {}
    for path in sorted((wd / "results").rglob("*.parquet")):
        out[str(path.relative_to(wd))] = pl.read_parquet(path)
    return out


def _mtimes(wd: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(wd)): p.stat().st_mtime_ns for p in sorted(wd.glob(pattern))}


def test_killed_runs_resume_without_recomputing_and_match_an_uninterrupted_run(tmp_path):
    a = _workdir(tmp_path / "a")
    result = _run(a)
    assert result.returncode == 0, result.stderr[-5000:]

    b = _workdir(tmp_path / "b")
    # Until the monitors only, so no evaluation runs before the second kill (with one core,
    # Snakemake's order among ready jobs is not fixed: it may run them before the extractions).
    _kill_when(b, "logs/extract_routing/tiny/step000020.log", "--until", "aggregate_monitors")
    assert not (b / "results/routers/tiny/step000020.safetensors").exists()  # nothing looks complete
    finished = _mtimes(b, "results/routers/tiny/step000010.safetensors") | _mtimes(b, "resources/pretrain/**/*.json")
    assert finished  # the first checkpoint's extraction had finished before the kill
    grid = subprocess.run(
        [str(Path(sys.executable).with_name("grokpath")), "status", "--json", "--configfile", "config.yaml"],
        cwd=b,
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    cells = json.loads(grid.stdout)["cells"]["tiny"]
    assert cells["step000020"]["extract_routing"] == "incomplete"  # the killed job, as `grokpath status` shows it
    assert cells["(series)"]["pretrain_tiny_moe"] == "done"
    assert _run(b, "--unlock").returncode == 0  # what a user does after a kill: the lock stayed behind
    resumed = _run(b, "--rerun-incomplete", "--until", "aggregate_monitors")
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert "rule pretrain_tiny_moe" not in resumed.stderr + resumed.stdout
    assert finished == {k: (b / k).stat().st_mtime_ns for k in finished}  # not recomputed

    assert not list(b.glob("results/evals/**/*.json"))
    _kill_when(b, "logs/run_lm_eval/tiny/step000020.log")
    assert not (b / "results/evals/tiny/step000020/math_generate.json").exists()
    done = _mtimes(b, "results/evals/tiny/*/*.json") | _mtimes(b, "results/routing/**/*.parquet")
    assert _run(b, "--unlock").returncode == 0
    resumed = _run(b, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert done == {k: (b / k).stat().st_mtime_ns for k in done}
    dry = _run(b, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr

    ta, tb = _tables(a), _tables(b)
    assert set(ta) == set(tb)
    assert len(ta) > 40
    for name, df in ta.items():
        assert df.equals(tb[name]), name  # NaN == NaN; exact, not approximate
    for name in ("results/evals/tiny/step000030/math_generate.json", "results/pretrain/tiny/grokking.json"):
        ja, jb = json.loads((a / name).read_text()), json.loads((b / name).read_text())
        if "results" in ja:  # lm-eval reports its own timings in the config; compare what it measured
            ja, jb = ja["results"], jb["results"]
        assert ja == jb, name

    # Every table records what produced it: versions, seed, and the checkpoint(s) it comes from.
    for name in ta:
        meta = tables.read_metadata(a / name)
        assert set(meta["versions"]) == {"grokpath", "torch", "transformers", "lm-eval"}, name
        assert meta["seed"] == 0, name
        if name.startswith("results/pretrain/"):
            continue  # the run that makes the checkpoints
        shas = meta.get("checkpoint_shas") or {
            "one": meta.get("checkpoint_sha") or meta.get("tokenizer_checkpoint_sha")
        }
        assert all(isinstance(s, str) and len(s) == 64 for s in shas.values()), name
    monitors_meta = tables.read_metadata(a / "results/tables/monitors.parquet")
    assert sorted(monitors_meta["checkpoint_shas"]) == ["tiny/step000010", "tiny/step000020", "tiny/step000030"]
