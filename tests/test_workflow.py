"""Snakemake end to end on config/test.yaml in a temporary directory: outputs, schemas, value
ranges, rerun behaviour and lint."""

import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from expected_rules import FIGURES_ON_MONITORS

from grokpath import checkpoints, distance, pathways, status, tables

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

pytestmark = pytest.mark.workflow


def _snakemake(workdir: Path, *args: str, configfile: str | None = "config/test.yaml") -> subprocess.CompletedProcess:
    """Snakemake in `workdir` on `configfile` (None: the Snakefile's own default, config.yaml)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [SNAKEMAKE, "--cores", "2", *(["--configfile", configfile] if configfile else []), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table (empty when nothing is to be done)."""
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, wd / name)
    for name in ("workflow", "config", "envs"):
        shutil.copytree(ROOT / name, wd / name)
    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    # Start with two checkpoints; a later test adds the third.
    cfg["models"]["tiny"]["checkpoints"] = cfg["models"]["tiny"]["checkpoints"][:2]
    (wd / "config" / "test.yaml").write_text(yaml.safe_dump(cfg))
    result = _snakemake(wd)
    assert result.returncode == 0, result.stderr[-5000:]
    return wd


def _cfg(wd):
    return yaml.safe_load((wd / "config" / "test.yaml").read_text())


def test_outputs_have_their_schemas_and_sane_values(workdir):
    wd = workdir
    cfg = _cfg(wd)
    ids = [c["id"] for c in cfg["models"]["tiny"]["checkpoints"]]
    domains = list(cfg["domains"])
    n_layers = 2
    n_experts = 4
    for step in ids:
        manifest = checkpoints.read_manifest(wd / "resources/checkpoints/tiny" / step)  # verifies sha256
        assert manifest["source"] == "pretrain"
        assert {f["name"] for f in manifest["files"]} >= {"config.json", "model.safetensors", "tokenizer.json"}
    for domain in domains:
        samples = tables.read(wd / f"results/samples/tiny/{domain}.parquet", tables.SAMPLES_SCHEMA)
        assert samples.height == cfg["domains"][domain]["n_samples"]
        assert samples["sample_id"].n_unique() == samples.height
        assert (samples["n_tokens"] >= 2).all()
        assert samples["token_sha256"].str.contains(r"^[0-9a-f]{64}$").all()
        val = tables.read(wd / f"results/samples/tiny/{domain}.validation.parquet", tables.SAMPLES_SCHEMA)
        assert val.height == cfg["domains"][domain]["n_validation"]
        test_items = [
            json.loads(x) for x in (wd / f"results/samples/tiny/{domain}.test.jsonl").read_text().splitlines()
        ]
        assert len(test_items) == 20
        assert all(it["answer"] == it["choices"][it["label"]] for it in test_items)
        groups = tables.read(wd / f"results/groups/tiny/{domain}.parquet", tables.GROUPS_SCHEMA)
        assert set(groups["sample_id"]) == set(samples["sample_id"])
        assert set(groups["memorized_at"].drop_nulls()) <= set(ids)
        assert (groups["eps"] > 0).all()
        assert (groups["delta"] == 0.05).all()
        for step in ids:
            routing = tables.read(wd / f"results/routing/tiny/{step}/{domain}.parquet", tables.ROUTING_SCHEMA)
            assert routing.height == samples.height * n_layers
            assert sorted(routing["layer"].unique().to_list()) == list(range(n_layers))
            probs = np.stack(routing["probs"].to_numpy())
            assert probs.shape[1] == n_experts
            assert ((probs >= 0) & (probs <= 1)).all()
            np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
            meta = tables.read_metadata(wd / f"results/routing/tiny/{step}/{domain}.parquet")
            assert meta["seed"] == 0
            assert set(meta["versions"]) == {"grokpath", "torch", "transformers", "lm-eval"}
            assert len(meta["checkpoint_sha"]) == 64
            loss = tables.read(wd / f"results/loss/tiny/{step}/{domain}.parquet", tables.LOSS_SCHEMA)
            assert set(loss["sample_id"]) == set(samples["sample_id"])
            assert (loss["loss"] > 0).all()
            assert loss["loss"].is_finite().all()
            assert (loss.sort("sample_id")["n_tokens"] == samples.sort("sample_id")["n_tokens"]).all()
            vloss = tables.read(wd / f"results/validation_loss/tiny/{step}/{domain}.parquet", tables.LOSS_SCHEMA)
            assert vloss.height == val.height
            paths = tables.read(wd / f"results/pathways/tiny/{step}/{domain}.parquet", tables.PATHWAYS_SCHEMA)
            assert paths.height == samples.height
            for p, counts in zip(paths["pathway"], paths["experts_per_layer"], strict=True):
                layers = pathways.parse(p)
                assert [len(x) for x in layers] == counts.to_list()
                assert all(0 <= e < n_experts for layer in layers for e in layer)
                assert all(len(set(layer)) == len(layer) for layer in layers)
            assert paths["mean_cosine"].is_between(-1, 1).all()
            assert paths["consistency"].is_finite().all()
            assert (paths["tau"] == 0.7).all()
            dist = tables.read(wd / f"results/distance/tiny/{step}/{domain}.parquet", tables.DISTANCE_SCHEMA)
            assert "all" in dist["group"].to_list()
            whole = dist.filter(pl.col("layer").is_null())
            assert (whole["mean_distance"] >= 0).all()
            assert (dist["n_pairs"] <= cfg["distance"]["max_pairs"]).all()
            assert set(dist["layer"].drop_nulls()) == set(range(n_layers))
    # The controls: math x code distances per checkpoint (Fig. 12), entropy vs distance (Fig. 13).
    last = {
        d: tables.read(wd / f"results/pathways/tiny/{ids[-1]}/{d}.parquet", tables.PATHWAYS_SCHEMA) for d in domains
    }
    for step in ids:
        cross = tables.read(wd / f"results/controls/cross_domain/tiny/{step}.parquet", tables.CROSS_DISTANCE_SCHEMA)
        assert cross.select("domain_a", "domain_b").rows() == [tuple(domains)]  # every pair, in config order
        assert cross["n_pairs"][0] == min(24 * 24, cfg["distance"]["max_pairs"])
    a, b = domains
    seed = zlib.crc32(f"0/{a}x{b}".encode())  # the same pairs at every checkpoint
    expected = distance.mean_cross(list(last[a]["pathway"]), list(last[b]["pathway"]), 100, seed=seed)
    assert cross["mean_distance"][0] == pytest.approx(expected[1])
    entropy = tables.read(wd / "results/controls/entropy_distance/tiny.parquet", tables.ENTROPY_DISTANCE_SCHEMA)
    assert entropy.height == 24 * len(domains)
    assert (entropy["step"] == ids[-1]).all()
    assert entropy["routing_entropy"].is_between(0, np.log(n_experts) + 1e-9).all()
    assert (entropy["n_partners"] == 23).all()  # 256 partners asked, 23 others: all of them
    for d in domains:
        got = entropy.filter(pl.col("domain") == d).sort("sample_id")
        means, _ = distance.per_sample_mean(list(last[d].sort("sample_id")["pathway"]))
        np.testing.assert_allclose(got["mean_distance"].to_numpy(), means)
        np.testing.assert_allclose(
            got["routing_entropy"].to_numpy(), last[d].sort("sample_id")["routing_entropy"].to_numpy()
        )
    monitors = tables.read(wd / "results/tables/monitors.parquet", tables.MONITORS_SCHEMA)
    assert set(monitors["step"]) == set(ids)
    assert set(monitors["domain"]) == set(domains)
    per = monitors.filter(pl.col("group") == "all")
    assert per.height == len(ids) * len(domains)
    assert per["mean_training_loss"].is_finite().all()
    assert per["validation_loss"].is_finite().all()
    assert (per["n_samples"] == 24).all()
    summary = json.loads((wd / "results/pretrain/tiny/grokking.json").read_text())
    assert set(summary) == {"math", "code", "commonsense"}
    traj = tables.read(wd / "results/pretrain/tiny/trajectory.parquet", tables.TRAJECTORY_SCHEMA)
    assert sorted(traj["step"].unique().to_list()) == [0, 10, 20, 30]
    for step in ids:
        for task in ("math_generate", "math_choice"):
            res = json.loads((wd / f"results/evals/tiny/{step}/{task}.json").read_text())
            assert (
                res["checkpoint_sha"]
                == checkpoints.read_manifest(wd / "resources/checkpoints/tiny" / step)["content_hash"]
            )
            assert res["lm_eval_version"] == "0.4.13"
            assert res["num_fewshot"] == 0
            metric = "exact_match,first_word" if task.endswith("generate") else "acc,none"
            assert 0 <= res["results"][metric] <= 1
            items = tables.read(wd / f"results/evals/tiny/{step}/{task}.samples.parquet", tables.EVAL_ITEMS_SCHEMA)
            assert items.height == 10  # limit: 10
            assert items["correct"].is_in([0, 1]).all()
            assert items["correct"].mean() == pytest.approx(res["results"][metric])
    for task in ("math_generate", "math_choice"):
        tg = tables.read(wd / f"results/test_groups/tiny/{task}.parquet", tables.TEST_GROUPS_SCHEMA)
        assert tg.height == 10
        assert set(tg["learned_at"].drop_nulls()) <= set(ids)
        matches = tables.read(wd / f"results/matching/tiny/{task}.parquet", tables.MATCHES_SCHEMA)
        assert matches["similarity"].is_between(-1, 1).all()
        assert (matches["delay"] == matches["test_step"] - matches["train_step"]).all()
    ablation = tables.read(wd / "results/ablation/tau/tiny/step000020/math.parquet", tables.TAU_ABLATION_SCHEMA)
    assert sorted(ablation["tau"].unique()) == [0.5, 0.6, 0.7, 0.8]
    at_07 = ablation.filter((pl.col("tau") == 0.7) & (pl.col("group") == "all"))["mean_distance"][0]
    dist = tables.read(wd / "results/distance/tiny/step000020/math.parquet", tables.DISTANCE_SCHEMA)
    assert at_07 == dist.filter((pl.col("group") == "all") & pl.col("layer").is_null())["mean_distance"][0]
    corr = tables.read(wd / "results/tables/correlations.parquet", tables.CORRELATIONS_SCHEMA)
    assert set(corr["monitor"]) == {
        "pathway_distance",
        "pathway_consistency",
        "training_loss",
        "training_loss_ma",
        "validation_loss",
    }
    assert set(corr["task"]) == {"math_generate", "math_choice"}
    finite = corr.drop_nans("pearson_r").drop_nulls("pearson_r")
    assert finite["pearson_r"].is_between(-1, 1).all()
    assert (wd / "results/tables/correlations.csv").read_text().startswith("model,domain,task,monitor")
    for fig in (
        "pretrain_trajectory",
        "fig1_memorized_counts",
        "fig2_local_grokking",
        "fig4_distance_groups",
        "fig5_layerwise_distance",
        "fig6_consistency_groups",
        "fig7_accuracy_vs_monitors",
        "table1_correlations",
        "fig9_tau_ablation",
        "fig10_eps_ablation",
        "fig11_delta_ablation",
        "fig12_cross_domain",
        "fig13_distance_vs_entropy",
    ):
        png = (wd / f"results/figures/tiny/{fig}.png").read_bytes()
        assert png.startswith(b"\x89PNG"), fig
        assert len(png) > 10_000, fig
        assert (wd / f"results/figures/tiny/{fig}.pdf").read_bytes().startswith(b"%PDF")
    for name in ("extract_routing/tiny/step000010.log", "pretrain_tiny_moe/tiny.log"):
        assert (wd / "logs" / name).stat().st_size > 0
    assert (wd / "benchmarks/extract_routing/tiny/step000010.tsv").exists()


def test_second_run_does_nothing(workdir):
    assert _planned_jobs(_snakemake(workdir, "-n")) == {}


def test_changing_tau_reruns_only_pathways_and_what_follows(workdir):
    jobs = _planned_jobs(_snakemake(workdir, "-n", "--config", "tau=0.5"))
    figures = dict.fromkeys(FIGURES_ON_MONITORS, 1)
    assert jobs == {
        "compute_pathways": 4,
        "pathway_distance": 4,
        "cross_domain_distance": 2,
        "entropy_distance": 1,
        "plot_distance_vs_entropy": 1,
        "ablate_memorization": 2,  # reads every checkpoint's pathways
        "plot_memorization_ablation": 2,  # Figs 10 and 11
        "aggregate_monitors": 1,
        "correlate": 1,
        **figures,
        "all": 1,
    }
    # `grokpath status` shows the same jobs as outdated, those rerun for a change upstream too
    cfg = {**_cfg(workdir), "tau": 0.5}
    (workdir / "config" / "tau.yaml").write_text(yaml.safe_dump(cfg))
    matrix = status.status(workdir, cfg, "config/tau.yaml")
    outdated: dict[str, int] = {}
    for rows in matrix.cells.values():
        for row in rows.values():
            for rule, state in row.items():
                outdated[rule] = outdated.get(rule, 0) + (state == "outdated")
                assert state in ("done", "outdated"), (rule, state)
    assert {rule for rule, n in outdated.items() if n} == set(jobs) - {"all"}
    for step in (c["id"] for c in cfg["models"]["tiny"]["checkpoints"]):  # a cell per checkpoint and stage
        row = matrix.cells["tiny"][step]
        assert row["compute_pathways"] == row["pathway_distance"] == "outdated"
        assert row["extract_routing"] == "done"


def test_config_overrides_without_a_configfile_apply_to_the_embedded_default(workdir):
    """`--config key=value` alone changes keys of config.yaml, as Snakemake documents it: it does
    not replace the whole default (which once failed with "'models' is a required property")."""
    result = _snakemake(workdir, "-n", "--config", "tau=0.5", configfile=None)
    jobs = _planned_jobs(result)
    default = yaml.safe_load((workdir / "config.yaml").read_text())
    # the embedded default's series, not the test config's (already run in `workdir`)
    assert jobs["pretrain_tiny_moe"] == sum(m["source"] == "pretrain" for m in default["models"].values())
    # its pretrain.threads (2) reaches the rule: the series depends on it
    job = (result.stdout + result.stderr).split("rule pretrain_tiny_moe:", 1)[1].split("\n[", 1)[0]
    assert f"threads: {default['models']['tiny-moe']['pretrain']['threads']}\n" in job, job
    bad = _snakemake(workdir, "-n", "--config", "tau=7", configfile=None)  # validated on top of the default
    assert bad.returncode != 0
    assert "config key tau: 7 is invalid" in bad.stdout + bad.stderr
    assert "required property" not in bad.stdout + bad.stderr


def test_turning_layerwise_distances_off_drops_fig5_and_reruns_no_ablation(workdir):
    cfg = _cfg(workdir)
    cfg.setdefault("distance", {})["layerwise"] = False
    (workdir / "config" / "no_layers.yaml").write_text(yaml.safe_dump(cfg))
    # a whole copy of the test config: merged with it or instead of it, layerwise is off
    jobs = _planned_jobs(_snakemake(workdir, "-n", "--configfile", "config/no_layers.yaml"))
    assert jobs["pathway_distance"] == 4
    # Fig 5 would have nothing to plot; the ablations and controls do not read `layerwise`.
    for rule in ("plot_layerwise_distance", "ablate_tau", "cross_domain_distance", "ablate_memorization"):
        assert rule not in jobs, jobs


def test_adding_a_checkpoint_reruns_only_its_jobs_and_the_combining_ones(workdir):
    wd = workdir
    cfg = _cfg(wd)
    cfg["models"]["tiny"]["checkpoints"].append({"id": "step000030", "step": 30})
    (wd / "config" / "test.yaml").write_text(yaml.safe_dump(cfg))
    jobs = _planned_jobs(_snakemake(wd, "-n"))
    assert jobs == {
        "download_checkpoint": 1,  # the new checkpoint
        "extract_routing": 1,
        "compute_pathways": 2,  # its two domains
        "assign_memorization": 2,  # combines all checkpoints
        "pathway_distance": 6,  # groups changed, so every checkpoint's group distances
        "cross_domain_distance": 1,
        "entropy_distance": 1,  # the last checkpoint changed
        "plot_distance_vs_entropy": 1,
        "ablate_memorization": 2,  # combines all checkpoints
        "plot_memorization_ablation": 2,  # Figs 10 and 11
        "aggregate_monitors": 1,
        "run_lm_eval": 1,  # the new checkpoint
        "assign_test_groups": 2,  # combine all checkpoints, per task
        "match_groups": 2,
        "correlate": 1,
        **dict.fromkeys(FIGURES_ON_MONITORS, 1),
        "plot_memorized_counts": 1,
        "ablate_tau": 6,  # groups changed, so every checkpoint's ablation
        "plot_tau_ablation": 1,
        "all": 1,
    }
    before = (wd / "results/routing/tiny/step000010/math.parquet").stat().st_mtime_ns
    result = _snakemake(wd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (wd / "results/routing/tiny/step000010/math.parquet").stat().st_mtime_ns == before
    monitors = tables.read(wd / "results/tables/monitors.parquet", tables.MONITORS_SCHEMA)
    assert "step000030" in monitors["step"].to_list()
    assert _planned_jobs(_snakemake(wd, "-n")) == {}


def test_report_holds_every_figure_and_the_tables(workdir):
    """`snakemake --report` (the README's last step) builds one HTML file that embeds every figure
    the run made, the monitors table (as Parquet, not text) and Table 1's CSV."""
    result = _snakemake(workdir, "--report", "report.html")
    assert result.returncode == 0, result.stdout + result.stderr
    html = (workdir / "report.html").read_text()
    figures = sorted((workdir / "results" / "figures" / "tiny").glob("*.png"))
    assert figures
    for figure in figures:
        assert figure.name in html, figure.name
    assert "data:application/vnd.apache.parquet;" in html
    assert "monitors.parquet" in html
    assert "correlations.csv" in html


def test_lint_is_clean(workdir):
    result = _snakemake(workdir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_instruction_tuning_adds_one_job_per_checkpoint_and_family(workdir):
    (workdir / "math_instruct.jsonl").write_text('{"prompt": "1 + 2 =", "response": "3"}\n')
    cfg = _cfg(workdir)
    cfg["instruction_tune"] = {"enabled": True, "datasets": {"math": "math_instruct.jsonl"}}
    (workdir / "config" / "tuned.yaml").write_text(yaml.safe_dump(cfg))
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2", "--configfile", "config/tuned.yaml", "-n"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    jobs = _planned_jobs(result)
    n_ckpt = len(cfg["models"]["tiny"]["checkpoints"])
    assert jobs["instruction_tune"] == n_ckpt
    assert jobs["run_lm_eval"] == n_ckpt  # evaluated again, on the tuned models


def test_a_local_checkpoint_saved_again_reruns_what_read_it(workdir):
    """Weights written over in a local checkpoint folder (as save_pretrained into the same folder
    does) fetch the checkpoint again and rerun the stages that read it; they were once kept, the
    folder's time unchanged and its copy ancient. A folder that is itself a Snakemake output
    (with its .snakemake_timestamp) does not look updated after each run that fetched it."""
    wd = workdir
    for step, src in (("a", "step000010"), ("b", "step000020")):
        shutil.copytree(wd / "resources/checkpoints/tiny" / src, wd / "localckpt" / step)
    assert (wd / "localckpt/b/.snakemake_timestamp").exists()
    cfg = _cfg(wd)
    cfg["models"]["mine"] = {
        "source": "local",
        "checkpoints": [{"id": s, "step": n, "path": f"localckpt/{s}"} for s, n in (("a", 10), ("b", 20))],
    }
    (wd / "config" / "local.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/routing/mine/b/math.parquet"

    def snakemake(*args):  # the target before --configfile, which takes every name after it
        return _snakemake(wd, *args, target, "--configfile", "config/local.yaml", configfile=None)

    run = snakemake()
    assert run.returncode == 0, run.stderr[-5000:]
    assert _planned_jobs(snakemake("-n")) == {}
    sha = tables.read_metadata(wd / target)["checkpoint_sha"]

    shutil.copyfile(wd / "localckpt/a/model.safetensors", wd / "localckpt/b/model.safetensors")
    jobs = _planned_jobs(snakemake("-n"))
    assert jobs == {"download_checkpoint": 1, "extract_routing": 1}
    run = snakemake()
    assert run.returncode == 0, run.stderr[-5000:]
    manifest = checkpoints.read_manifest(wd / "resources/checkpoints/mine/b")
    assert tables.read_metadata(wd / target)["checkpoint_sha"] == checkpoints.checkpoint_sha(manifest) != sha
    assert _planned_jobs(snakemake("-n")) == {}
