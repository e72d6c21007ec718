"""Snakemake through profiles/slurm on a SLURM cluster (scripts/slurm/up.sh brings one up on
localhost): config/test.yaml gives the same tables as a local run, sacct shows the jobs, a job
that fails is reported as failed with its logs kept, and a rerun does only what is missing.

Skipped when there is no SLURM client or no cluster answers; GROKPATH_REQUIRE_SLURM=1 (set by
.ci/run, which brings the cluster up) turns that skip into a failure."""

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from expected_rules import FIGURES_ON_MONITORS
from polars.testing import assert_frame_equal

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
CONFIG = ("--configfile", "config/test.yaml")
# The plugin waits 40 s before its first status query by default and backs off by 10 s while no
# job finishes; the test's jobs take 10-40 s.
SLURM = ("--workflow-profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "2")
# One group job per domain (profiles/slurm: groups) holds these rules' jobs.
GROUP = "monitors"
GROUPED = ("assign_memorization", "compute_pathways", "pathway_distance", "ablate_tau")
# The failing job and the second output deleted with it (see test_a_failed_job...).
BROKEN = "results/pathways/tiny/step000020/math.parquet"
FAILING_OUTPUT = "results/distance/tiny/step000020/math.parquet"
FAILING_LOG = "logs/pathway_distance/tiny/step000020/math.log"
ALSO_DELETED = "results/matching/tiny/math_choice.parquet"

pytestmark = pytest.mark.slurm


def _run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, check=False)


@functools.cache
def _cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    for tool in ("sinfo", "sbatch", "squeue", "sacct"):
        if shutil.which(tool) is None:
            return f"no `{tool}`: no SLURM client here (bash scripts/slurm/up.sh brings a cluster up)"
    sinfo = _run("sinfo", "-h", "-o", "%t")
    states = sinfo.stdout.split()
    if sinfo.returncode != 0 or not {"idle", "mix", "alloc"} & set(states):
        return f"no SLURM node is up (sinfo: {(sinfo.stdout + sinfo.stderr).strip()!r}); run scripts/slurm/up.sh"
    sacct = _run("sacct", "-n", "-X", "-S", "now-1minutes")
    if sacct.returncode != 0:
        return f"sacct fails, so the plugin cannot follow jobs (no accounting?): {sacct.stderr.strip()!r}"
    return None


def _copy_workflow(dest: Path) -> Path:
    dest.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("workflow", "config", "envs", "profiles"):
        shutil.copytree(ROOT / name, dest / name)
    return dest


def _fill_in_site(profile: Path) -> None:
    """Set the profile's partition (and account, when the user has one) placeholders for this
    cluster, as a user would: the placeholders must work once uncommented."""
    text = profile.read_text()
    partition = _run("sinfo", "-h", "-o", "%P").stdout.split()[0].rstrip("*")
    text = text.replace('# slurm_partition: "<partition>"', f'slurm_partition: "{partition}"')
    user = _run("id", "-un").stdout.strip()
    accounts = _run("sacctmgr", "-n", "-P", "list", "assoc", f"user={user}", "format=account").stdout.split()
    if accounts:
        text = text.replace('# slurm_account: "<account>"', f'slurm_account: "{sorted(accounts)[0]}"')
    profile.write_text(text)


SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+?/logs/slurm/(?:rule|group)_([^/]+)/\S*?)\)")


def _submitted(result: subprocess.CompletedProcess) -> dict[str, str]:
    """SLURM job id -> rule of each job the run submitted (group_rule1_rule2... for a group job,
    without `group_`), from Snakemake's output."""
    return {m.group(1): m.group(3) for m in SUBMITTED.finditer(result.stdout + result.stderr)}


def _slurm_logs(result: subprocess.CompletedProcess) -> dict[str, Path]:
    """SLURM job id -> its SLURM log file (sbatch --output)."""
    return {m.group(1): Path(m.group(2)) for m in SUBMITTED.finditer(result.stdout + result.stderr)}


def _sacct(job_ids) -> dict[str, dict[str, str]]:
    """sacct's record of each job: State, ExitCode, Comment (the rule, from the plugin)."""
    fields = ("JobID", "State", "ExitCode", "Comment", "WorkDir")
    deadline = time.monotonic() + 30
    while True:
        out = _run("sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields))
        assert out.returncode == 0, out.stderr
        records = [dict(zip(fields, line.split("|"), strict=True)) for line in out.stdout.splitlines()]
        rows = {r["JobID"]: r for r in records}
        # the controller hands the last states to slurmdbd asynchronously
        if set(job_ids) <= set(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def _planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table (empty when nothing is to be done)."""
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    jobs = {}
    for line in text.split("Job stats:", 1)[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def _rule_of(where: str) -> str:
    """The rule of a submitted job; GROUP for a group job (named group_rule1_rule2...)."""
    return GROUP if where.startswith(GROUP + "_") else where


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The test config run locally and through the SLURM profile, at the same time (the SLURM
    run mostly waits on status polls), each in its own copy of the workflow."""
    problem = _cluster_problem()
    if problem:
        if os.environ.get("GROKPATH_REQUIRE_SLURM") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    base = tmp_path_factory.mktemp("slurm")
    local, slurm = _copy_workflow(base / "local"), _copy_workflow(base / "slurm")
    _fill_in_site(slurm / "profiles/slurm/config.yaml")
    t0 = time.monotonic()
    with subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", *CONFIG],
        cwd=local,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    ) as local_run:
        result = _run(SNAKEMAKE, *SLURM, *CONFIG, cwd=slurm)
        local_log, _ = local_run.communicate()
    assert local_run.returncode == 0, local_log[-5000:]
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    print(f"local and SLURM runs of config/test.yaml, side by side: {time.monotonic() - t0:.0f} s")
    return {"local": local, "slurm": slurm, "result": result}


def _tables(wd: Path) -> list[Path]:
    return sorted(p.relative_to(wd) for p in (wd / "results").rglob("*.parquet"))


def test_the_tables_are_those_of_a_local_run(runs):
    local, slurm = runs["local"], runs["slurm"]
    tables = _tables(local)
    assert _tables(slurm) == tables
    assert Path("results/tables/monitors.parquet") in tables
    assert {p.parts[1] for p in tables} >= {"routing", "loss", "pathways", "distance", "groups", "tables", "evals"}
    for path in tables:
        assert_frame_equal(pl.read_parquet(slurm / path), pl.read_parquet(local / path), check_exact=True)
    assert (slurm / "results/tables/correlations.csv").read_text() == (
        local / "results/tables/correlations.csv"
    ).read_text()
    for path in sorted((local / "results/evals").rglob("*.json")):
        ours = json.loads((slurm / path.relative_to(local)).read_text())
        theirs = json.loads(path.read_text())
        assert ours["results"] == theirs["results"], path
        assert ours["checkpoint_sha"] == theirs["checkpoint_sha"], path
    summary = "results/pretrain/tiny/grokking.json"
    assert json.loads((slurm / summary).read_text()) == json.loads((local / summary).read_text())
    figures = sorted(p.name for p in (local / "results/figures/tiny").iterdir())
    assert sorted(p.name for p in (slurm / "results/figures/tiny").iterdir()) == figures


def test_sacct_shows_the_jobs_that_ran(runs):
    submitted = _submitted(runs["result"])
    # What ran on the cluster: the model stages per checkpoint, matching per task, one group job
    # per domain for the small per-checkpoint stages; everything marked localrule ran here.
    assert Counter(_rule_of(w) for w in submitted.values()) == {
        "pretrain_tiny_moe": 1,
        "extract_routing": 3,
        "run_lm_eval": 3,
        "match_groups": 2,
        GROUP: 2,
        "cross_domain_distance": 3,  # per checkpoint, reading both domains
        "entropy_distance": 1,
        "ablate_memorization": 2,  # per domain, reading every checkpoint
    }
    for where in submitted.values():
        if _rule_of(where) == GROUP:
            assert set(where.removeprefix(GROUP + "_").split("_")) <= set("_".join(GROUPED).split("_"))
    records = _sacct(submitted)
    assert set(records) == set(submitted)
    for job_id, rec in records.items():
        assert rec["State"] == "COMPLETED", rec
        assert rec["ExitCode"] == "0:0", rec
        assert Path(rec["WorkDir"]) == runs["slurm"], rec
        assert rec["Comment"].startswith(f"rule_{submitted[job_id]}"), rec
    # the jobs found the environment Snakemake runs in: its outputs and logs are there
    assert (runs["slurm"] / "logs/extract_routing/tiny/step000010.log").stat().st_size > 0


def test_a_failed_job_is_reported_failed_with_its_logs_kept(runs):
    wd = runs["slurm"]
    good = (wd / BROKEN).read_bytes()
    runs["good_pathways"] = good
    # A bad input written into the copy: a table that is not Parquet, which its three readers
    # that rerun (pathway_distance, whose output is deleted too, and the controls) fail on.
    (wd / BROKEN).write_bytes(b"not a parquet file\n")
    (wd / FAILING_OUTPUT).unlink()
    (wd / ALSO_DELETED).unlink()
    result = _run(SNAKEMAKE, *SLURM, *CONFIG, cwd=wd)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-5000:]
    assert "Error in group monitors" in out or "Error in rule pathway_distance" in out, out[-5000:]
    submitted = _submitted(result)
    # only what is missing or reads the rewritten table
    assert Counter(_rule_of(w) for w in submitted.values()) == {
        GROUP: 1,
        "match_groups": 1,
        "cross_domain_distance": 1,
        "ablate_memorization": 1,
    }, submitted
    failed = next(j for j, w in submitted.items() if _rule_of(w) == GROUP)
    records = _sacct(submitted)
    for job, where in submitted.items():
        if where != "match_groups":
            assert records[job]["State"] == "FAILED", records[job]
            assert records[job]["ExitCode"] != "0:0", records[job]
    done = next(j for j, w in submitted.items() if w == "match_groups")
    assert records[done]["State"] == "COMPLETED"  # keep-going: the independent job ran
    assert (wd / ALSO_DELETED).exists()
    assert not (wd / FAILING_OUTPUT).exists()
    # the rule's log has the error; SLURM's log of the failed job is kept (successful ones go)
    rule_log = (wd / FAILING_LOG).read_text()
    assert "stage failed" in rule_log, rule_log
    assert "Traceback" in rule_log, rule_log
    slurm_log = _slurm_logs(result)[failed]
    assert slurm_log.is_relative_to(wd / "logs/slurm"), slurm_log
    slurm_text = slurm_log.read_text()
    assert "pathway_distance" in slurm_text
    # the job ran Snakemake from this environment (the plugin: `<sys.executable> -m snakemake`)
    assert f"Command: {sys.prefix}/" in slurm_text
    assert not _slurm_logs(result)[done].exists()


def test_a_rerun_does_only_what_is_missing(runs):
    wd = runs["slurm"]
    if "good_pathways" not in runs:
        pytest.skip("needs the failed run of the previous test")
    (wd / BROKEN).write_bytes(runs["good_pathways"])
    assert _planned_jobs(_run(SNAKEMAKE, *SLURM, *CONFIG, "-n", cwd=wd)) == {
        "pathway_distance": 1,
        "cross_domain_distance": 1,
        "ablate_memorization": 1,
        "plot_memorization_ablation": 2,  # Figs 10 and 11
        "aggregate_monitors": 1,
        "correlate": 1,
        **dict.fromkeys(FIGURES_ON_MONITORS, 1),
        "all": 1,
    }
    result = _run(SNAKEMAKE, *SLURM, *CONFIG, cwd=wd)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    submitted = _submitted(result)
    assert sorted(submitted.values()) == ["ablate_memorization", "cross_domain_distance", f"{GROUP}_pathway_distance"]
    assert {r["State"] for r in _sacct(submitted).values()} == {"COMPLETED"}
    for path in (FAILING_OUTPUT, "results/tables/monitors.parquet"):
        assert_frame_equal(pl.read_parquet(wd / path), pl.read_parquet(runs["local"] / path), check_exact=True)
    assert _planned_jobs(_run(SNAKEMAKE, *SLURM, *CONFIG, "-n", cwd=wd)) == {}


def test_a_cuda_config_asks_for_a_gpu_for_the_model_stages_only(runs, tmp_path):
    """With `device: cuda` in the config, the model-loading rules' jobs ask for a GPU (`gpu=1`,
    which the plugin turns into --gpus), with the GPU model and partition uncommented in the
    profile as it says; no other job does (a dry run: this cluster has no GPU)."""
    wd = runs["slurm"]
    profile = tmp_path / "slurm-gpu"
    profile.mkdir()
    text = (wd / "profiles/slurm/config.yaml").read_text()
    text = text.replace('# gpu_model: "<gpu model>"', 'gpu_model: "a100"')
    text = text.replace('# slurm_partition: "<gpu partition>"', 'slurm_partition: "gpu"')
    (profile / "config.yaml").write_text(text)
    stages = ("extract_routing", "run_lm_eval")
    cuda = ("--config", "extraction={device: cuda}", "evaluation={device: cuda}")
    result = _run(
        SNAKEMAKE,
        "--workflow-profile",
        str(profile),
        *CONFIG,
        *cuda,
        "-n",
        "--forcerun",
        *stages,
        "match_groups",
        cwd=wd,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    resources = {}  # job (in order) -> its resources line
    for line in result.stdout.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            job = (m.group(1), len(resources))
            resources[job] = ""
        elif m := re.match(r"^\s*resources: (.*)$", line):
            resources[job] = m.group(1)
    seen = Counter()
    for (rule, _), res in resources.items():
        fields = set(res.split(", "))
        assert ("gpu=1" in fields) == (rule in stages), (rule, res)
        assert ({"gpu_model=a100", "slurm_partition=gpu"} <= fields) == (rule in stages), (rule, res)
        seen[rule] += 1
    assert seen["extract_routing"] == 3
    assert seen["run_lm_eval"] == 3
