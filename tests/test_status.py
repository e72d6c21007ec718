import base64
import json
import shutil
from pathlib import Path

import pytest

from grokpath import cli, status

SUMMARY = "\n".join(
    "\t".join(row)
    for row in [
        ("output_file", "date", "rule", "log-file(s)", "status", "plan"),
        ("results/tables/monitors.parquet", "-", "aggregate_monitors", "-", "missing", "update pending"),
        ("results/routing/m/s1/math.parquet", "Wed", "extract_routing", "logs/x", "ok", "no update"),
        ("results/routers/m/s1.safetensors", "Wed", "extract_routing", "logs/x", "ok", "no update"),
        ("results/routing/m/s2/math.parquet", "-", "extract_routing", "-", "missing", "update pending"),
        ("results/routers/m/s2.safetensors", "-", "extract_routing", "-", "missing", "update pending"),
        ("results/routing/m/s3/math.parquet", "-", "extract_routing", "-", "missing", "update pending"),
        ("results/evals/m/s1/t.json", "Wed", "run_lm_eval", "logs/y", "updated input files", "update pending"),
        ("results/evals/m/s2/t.json", "-", "run_lm_eval", "-", "missing", "update pending"),
        # unchanged itself, rerun after a job upstream (Snakemake plans it)
        ("results/distance/m/s2/math.parquet", "Wed", "pathway_distance", "logs/w", "ok", "update pending"),
        ("results/samples/m/math.parquet", "Wed", "prepare_samples", "logs/z", "ok", "no update"),
        ("results/figures/m/fig.png", "-", "plot_x", "-", "missing", "update pending"),
        # disk-bounded mode's tuned models: removed once evaluated, or not made yet
        ("resources/tuned/m/s1/math", "-", "instruction_tune", "logs/t", "removed temp file", "no update"),
        ("resources/tuned/m/s2/math", "-", "instruction_tune", "-", "removed temp file", "update pending"),
    ]
)
CKPTS = {"m": ["s1", "s2", "s3"]}


def _workdir(tmp_path):
    (tmp_path / "logs/extract_routing/m").mkdir(parents=True)
    (tmp_path / "logs/extract_routing/m/s3.log").write_text(
        "INFO ...\nTraceback (most recent call last):\nValueError: x\n"
    )
    marker = tmp_path / ".snakemake/incomplete"
    marker.mkdir(parents=True)
    (marker / base64.b64encode(b"results/routers/m/s2.safetensors").decode()).write_text("")
    return tmp_path


def test_matrix_states(tmp_path):
    matrix = status.build_matrix(status.parse_summary(SUMMARY), CKPTS, _workdir(tmp_path))
    cells = matrix.cells["m"]
    assert cells["s1"] == {"extract_routing": "done", "run_lm_eval": "outdated", "instruction_tune": "done"}
    assert cells["s2"] == {  # killed while extracting
        "extract_routing": "incomplete",
        "run_lm_eval": "missing",
        "pathway_distance": "outdated",
        "instruction_tune": "missing",
    }
    assert cells["s3"] == {"extract_routing": "failed"}  # its log ends in a traceback
    assert cells[status.SERIES] == {"prepare_samples": "done", "plot_x": "missing"}
    assert matrix.cells[status.ALL_MODELS][status.SERIES] == {"aggregate_monitors": "missing"}
    assert matrix.rules.index("extract_routing") < matrix.rules.index("run_lm_eval") < matrix.rules.index("plot_x")
    assert matrix.counts() == {"done": 3, "missing": 4, "failed": 1, "incomplete": 1, "outdated": 2}
    text = status.render(matrix)
    assert "s2  ! ~ ·" in text
    assert "s3  ✗" in text
    assert "across checkpoints: ✓ prepare_samples  · plot_x" in text


def test_not_a_summary():
    with pytest.raises(ValueError, match=r"not the output of `snakemake --summary`"):
        status.parse_summary("Building DAG of jobs...\n")


def test_cli_status_on_a_fresh_directory(tmp_path, capsys, monkeypatch):
    """Nothing has run: every stage of every checkpoint is missing, from the real Snakemake summary."""
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "Snakefile", tmp_path)
    for name in ("workflow", "envs", "config"):
        shutil.copytree(root / name, tmp_path / name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["status", "-d", str(tmp_path), "--configfile", "config/test.yaml", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["cells"]["tiny"]) == {"step000010", "step000020", "step000030", status.SERIES}
    assert out["cells"]["tiny"]["step000020"]["extract_routing"] == "missing"
    assert out["counts"]["done"] == 0
    assert cli.main(["status", "-d", str(tmp_path), "--configfile", "nope.yaml"]) == 2
