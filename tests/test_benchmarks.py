"""Every benchmark under benchmarks/ runs at a tiny size and ends with its JSON summary.

The benchmarks reach into the library (extraction._HeadLoss and _Capture, stages._write_extraction,
tables' writers, the hub server of the tests), so a refactor can break one without any other test
noticing, and the README's figures could then no longer be reproduced. Each runs as a user runs
it (`python benchmarks/NAME.py ...`, in its own process) and its summary is checked for what the
run must have done, never for how fast: timings here would only measure the machine.
`default_run.py` and `incremental.py` run Snakemake on the test config's series.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _routing_overhead(s: dict[str, Any]) -> None:
    (result,) = s["results"]
    assert (result["model"], result["samples"]) == ("default", 20)
    assert set(result["wall_s"]) == {"bare", "unmasked", "capture", "loss", "extract"}
    assert all(len(times) == 2 for times in result["wall_s"].values())
    assert result["ratio_extract_vs_bare"] > 0
    assert result["routing_table_bytes"] > 0


def _extraction_budget(s: dict[str, Any]) -> None:
    result = s["result"]
    assert (result["samples"], result["batches"]) == (300, 5)
    added = result["added_ms"]
    assert set(added) == {"loss beyond the output layer", "router hooks", "routing reduction", "tables"}
    assert result["added_total_ms"] == pytest.approx(sum(added.values()), abs=0.01)


def _extraction_memory(s: dict[str, Any]) -> None:
    runs = s["results"]["this"]
    assert [r["samples"] for r in runs] == [50, 100]
    assert all(r["routing_mib"] > 0 and r["peak_mib"] >= r["floor_mib"] for r in runs)


def _pathway_distance(s: dict[str, Any]) -> None:
    # every pair below max_pairs: the subsampled mean is the full one; the benchmark itself exits
    # if the pure-Python programme and rapidfuzz disagree on its pairs
    assert (s["samples"], s["pairs"], s["python_dp_pairs"]) == (30, 435, 3)
    assert s["subsample_mean_distance"] == s["mean_distance"] > 0


def _storage(s: dict[str, Any]) -> None:
    # the size asked for, then the embedded default's
    assert [(r["samples"], r["layers"], r["experts"]) for r in s["results"]] == [(20, 2, 8), (300, 4, 8)]
    for result in s["results"]:
        written = result["bytes"]
        # the stage's streamed writer lays the table out as tables.write does
        assert written["tables.write"] == written["tables.StreamWriter"] > 0


def _embedding(s: dict[str, Any]) -> None:
    # the checkout's embeddings.py as its own baseline: two processes each, the same vectors
    assert (s["texts"], s["repeats"], s["shape"]) == (12, 1, [12, 384])
    assert set(s["wall_s"]) == {"current", "baseline"}
    assert s["max_abs_difference"] == 0.0
    assert all(0 < s["work_s_median"][v] < s["wall_s_median"][v] for v in ("current", "baseline"))


def _tuning_step(s: dict[str, Any]) -> None:
    assert (s["model"], s["steps"]) == ("default", 1)
    assert [r["length"] for r in s["results"]] == [64, 128]
    assert all(r["step_s"] > 0 and r["peak_mib"] >= 0 for r in s["results"])


def _verification(s: dict[str, Any]) -> None:
    assert s["files"] >= 2
    assert s["bytes"] > 10_000_000
    assert set(s["wall_s"]) == {"full", "stamped"}


def _evaluation(s: dict[str, Any]) -> None:
    assert (s["items"], s["fewshot"]) == (10, 0)
    assert s["requests"] > 0
    assert len(s["wall_s"]["current"]) == 1


def _eval_cache(s: dict[str, Any]) -> None:
    # the goal 5: an unchanged evaluation sends nothing to the model the second time
    assert s["first_forward_passes"] > 0
    assert s["fresh_cache_forward_passes"] == s["first_forward_passes"]
    assert s["second_forward_passes"] == 0
    assert s["identical_responses"] is True


def _disk_bounded(s: dict[str, Any]) -> None:
    assert (s["checkpoints"], s["checkpoints_on_disk"]) == (3, 1)
    size = s["checkpoint_bytes"]
    # kept: every checkpoint stays; bounded: only their released stubs do
    assert s["keep_final_bytes"] >= 3 * size
    assert s["bounded_final_bytes"] < size
    assert s["bounded_peak_bytes"] < s["keep_peak_bytes"]


def _pretraining(s: dict[str, Any]) -> None:
    # the checkout's pretrain.py as its own baseline: the same series, else the benchmark exits
    assert (s["model"], s["steps"], s["repeats"]) == ("tiny", 4, 1)
    assert set(s["wall_s"]) == {"current", "baseline"}
    assert s["same_series"] is True
    parts = s["parts_s_median"]
    assert all(parts[k] > 0 for k in ("evaluation_seconds", "save_seconds", "monitor_seconds", "training_seconds"))
    assert parts["run_seconds"] <= s["wall_s_median"]["current"]


def _default_run(s: dict[str, Any]) -> None:
    assert (s["configfile"], len(s["wall_s"])) == ("config/test.yaml", 1)
    rules = s["rules"]
    # the test config's series: one pretraining, three checkpoints, each extracted and evaluated
    assert rules["pretrain_tiny_moe"]["jobs"] == 1
    assert rules["extract_routing"]["jobs"] == 3
    assert rules["run_lm_eval"]["jobs"] == 3
    assert all(r["max_rss_mib"] > 0 for r in rules.values())
    assert s["peak_rss_mib"] > 0
    assert len(s["live_monitors"]) == 1
    assert 0 < s["live_monitor_overhead"] < 1


def _incremental(s: dict[str, Any]) -> None:
    assert (s["configfile"], s["checkpoints"]) == ("config/test.yaml", 2)
    assert s["scratch_jobs"] > 0
    assert s["unchanged_jobs"] == 0  # the goal (a): a rerun with nothing changed runs nothing
    # (b) the series' last checkpoint added: extracted once, nothing retrained
    assert s["added_checkpoint_rule_extract_routing"] == 1
    assert "added_checkpoint_rule_pretrain_tiny_moe" not in s
    # (c) tau changed: every checkpoint's pathways again (3 x 2 domains), no extraction
    assert s["changed_tau_rule_compute_pathways"] == 6
    assert "changed_tau_rule_extract_routing" not in s


FAST: dict[str, tuple[list[str], Callable[[dict[str, Any]], None]]] = {
    "routing_overhead": (["--model", "default", "--repeats", "2", "--samples", "20"], _routing_overhead),
    "extraction_budget": (["--repeats", "1"], _extraction_budget),
    "extraction_memory": (["--samples", "50,100", "--repeats", "1"], _extraction_memory),
    "pathway_distance": (
        ["--samples", "30", "--layers", "2", "--experts", "8", "--baseline-pairs", "3", "--repeats", "1"],
        _pathway_distance,
    ),
    "storage": (["--repeats", "1", "--samples", "20", "--layers", "2", "--experts", "8"], _storage),
    "tuning_step": (["--lengths", "64,128", "--steps", "1", "--warmup", "0"], _tuning_step),
    "verification": (["--gib", "0.01", "--repeats", "1"], _verification),
    "evaluation": (["--repeats", "1", "--items", "10"], _evaluation),
    "eval_cache": (["--items", "10"], _eval_cache),
    "pretraining": (
        [
            *("--configfile", str(ROOT / "config/test.yaml"), "--model", "tiny", "--steps", "4", "--repeats", "1"),
            *("--baseline", str(ROOT / "src/grokpath/pretrain.py")),
        ],
        _pretraining,
    ),
    "embedding": (
        ["--texts", "12", "--repeats", "1", "--baseline-embeddings", str(ROOT / "src/grokpath/embeddings.py")],
        _embedding,
    ),
}
# these run Snakemake
WORKFLOW: dict[str, tuple[list[str], Callable[[dict[str, Any]], None]]] = {
    "disk_bounded": (["--checkpoints", "3", "--on-disk", "1", "--hidden", "16"], _disk_bounded),
    "default_run": (["--repeats", "1", "--configfile", "config/test.yaml"], _default_run),
    "incremental": (
        ["--configfile", str(ROOT / "config/test.yaml"), "--checkpoints", "2", "--every", "10", "--repeats", "1"],
        _incremental,
    ),
}


def _summary(name: str, args: list[str], tmp_path: Path) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args],
        cwd=tmp_path,  # as a user may: from anywhere, nothing written into the checkout
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert run.returncode == 0, f"{name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) > 1, f"{name} printed no table before its summary:\n{run.stdout}"
    summary = json.loads(lines[-1])
    assert summary["benchmark"] == name
    return summary


def test_every_benchmark_is_covered():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    helpers = {"baseline"}  # imported by the others, not run
    assert scripts - helpers == set(FAST) | set(WORKFLOW)


@pytest.mark.parametrize("name", sorted(FAST))
def test_benchmark_runs_and_ends_with_its_summary(name, tmp_path):
    args, check = FAST[name]
    check(_summary(name, args, tmp_path))


def test_routing_overhead_times_other_versions_of_the_modules_as_a_baseline(tmp_path):
    """The before/after of the README's routing rows: other files of extraction.py, tables.py and
    stages.py (here the checkout's own) run as one more pass, side by side with the others."""
    src = ROOT / "src" / "grokpath"
    baseline = ["--baseline-extraction", str(src / "extraction.py"), "--baseline-tables", str(src / "tables.py")]
    baseline += ["--baseline-stages", str(src / "stages.py")]
    args = ["--model", "default", "--repeats", "1", "--samples", "20", *baseline]
    (result,) = _summary("routing_overhead", args, tmp_path)["results"]
    assert set(result["wall_s"]) == {"bare", "unmasked", "capture", "loss", "extract", "baseline"}
    assert result["ratio_extract_vs_baseline"] > 0
    assert result["ratio_baseline_vs_bare"] > 0


@pytest.mark.workflow
@pytest.mark.parametrize("name", sorted(WORKFLOW))
def test_workflow_benchmark_runs_and_ends_with_its_summary(name, tmp_path):
    args, check = WORKFLOW[name]
    check(_summary(name, args, tmp_path))


def test_pretraining_refuses_a_baseline_that_trains_another_series(tmp_path):
    """A speed-up of pretraining must leave the series as it is: a baseline whose optimiser differs
    (here Adam's beta2) trains other weights, and the benchmark says so instead of timing it."""
    source = (ROOT / "src/grokpath/pretrain.py").read_text()
    assert "betas=(0.9, 0.98)" in source
    other = tmp_path / "pretrain_other.py"
    other.write_text(source.replace("betas=(0.9, 0.98)", "betas=(0.9, 0.97)"))
    # 10 steps: the test series saves and evaluates at steps 0 and 10
    args = ["--configfile", str(ROOT / "config/test.yaml"), "--model", "tiny", "--steps", "10", "--repeats", "1"]
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/pretraining.py"), *args, "--baseline", str(other)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert run.returncode != 0
    # the same initial weights; the trained ones and their evaluations differ
    assert "the baseline trained another series: step000010 weights, trajectory differ" in run.stderr
