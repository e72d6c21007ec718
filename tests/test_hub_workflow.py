"""The workflow on a hub series, end to end, against the local hub (tests/hubserver.py).

A tiny OLMoE series on step branches, its pretraining texts and validation texts as hub datasets
and the paper's MATH benchmark data (qwedsacf/competition_math) are served locally. Then, like a
user on a cluster: `snakemake prefetch` with the hub reachable, the whole run with
HF_HUB_OFFLINE=1/HF_DATASETS_OFFLINE=1 (zero requests), in disk-bounded mode with decontamination
on; and an offline run without prefetch, which must name what to prefetch.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import random_olmoe
from hubserver import HubServer

from grokpath import checkpoints, io, tables
from grokpath.tokenizer import train_word_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REPO = "grok-org/tiny-moe"
BRANCHES = {"s10": "step10-tokens1M", "s20": "step20-tokens2M", "s30": "step30-tokens3M"}

pytestmark = pytest.mark.workflow


def _texts(rng: random.Random, n: int) -> list[str]:
    return [f"{a} + {b} = {(a + b) % 23}" for a, b in ((rng.randrange(23), rng.randrange(23)) for _ in range(n))]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


MATH_PROBLEMS = [
    {
        "problem": f"What is {a} + {b} ?",
        "solution": f"It is $\\boxed{{{a + b}}}$.",
        "level": "Level 1",
        "type": "Algebra",
    }
    for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (2, 2))
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    rng = random.Random(0)
    train, val = _texts(rng, 80), _texts(rng, 20)
    words = [*train, *val, *(p["problem"] + " " + p["solution"] for p in MATH_PROBLEMS), "Problem: Answer:"]
    tok = train_word_tokenizer(words)
    branches = {}
    for seed, branch in enumerate(BRANCHES.values()):
        folder = tmp_path_factory.mktemp(branch)
        random_olmoe(tok, hidden=32, layers=2, seed=seed).save_pretrained(folder)
        tok.save_pretrained(folder)
        branches[branch] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with HubServer() as server:
        server.add_repo(REPO, branches)
        server.add_repo(
            "grok-org/math-text", {"main": {"data/train.jsonl": _jsonl([{"text": t} for t in train])}}, "dataset"
        )
        server.add_repo(
            "grok-org/math-val", {"main": {"data/train.jsonl": _jsonl([{"body": t} for t in val])}}, "dataset"
        )
        server.add_repo("qwedsacf/competition_math", {"main": {"data/train.jsonl": _jsonl(MATH_PROBLEMS)}}, "dataset")
        yield server, train


def _workdir(tmp_path: Path, train: list[str]) -> Path:
    wd = tmp_path / "wf"
    wd.mkdir()
    shutil.copy(ROOT / "Snakefile", wd)
    for name in ("workflow", "envs"):
        shutil.copytree(ROOT / name, wd / name)
    test_items = [
        {"item_id": f"t{i}", "prompt": t.rsplit(" ", 1)[0], "answer": t.rsplit(" ", 1)[1]}
        for i, t in enumerate(train[:10])
    ]
    io.write_jsonl(wd / "test.jsonl", test_items)
    config = {
        "keep_checkpoints": False,
        "models": {
            "hubm": {
                "source": "hf",
                "repo": REPO,
                "checkpoints": [{"id": i, "step": int(i[1:]), "revision": b} for i, b in BRANCHES.items()],
            }
        },
        "domains": {
            "math": {
                "source": "hf",
                "n_samples": 24,
                "n_validation": 8,
                "dataset": {"path": "grok-org/math-text", "keyword": "+", "shuffle_buffer": 50},
                "validation_dataset": {"path": "grok-org/math-val", "text_field": "body"},
                "test_path": "test.jsonl",
                "tasks": [
                    {"name": "math_generate", "task": "generate"},
                    {"name": "competition_math", "task": "grokpath_competition_math", "max_gen_toks": 8},
                ],
            }
        },
        "decontamination": {"enabled": True, "drop_fraction": 0.2},
        "extraction": {"batch_size": 16},
        "distance": {"max_pairs": 100},
        "ablation": {"taus": []},
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    return wd


def _run(server: HubServer, wd: Path, hf_home: Path, *args: str, offline: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, *args, "--cores", "2", "--configfile", "config.yaml"],
        cwd=wd,
        env=server.env(hf_home, offline=offline),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def test_prefetch_then_offline_disk_bounded_run(hub, tmp_path):
    server, train = hub
    wd, hf_home = _workdir(tmp_path, train), tmp_path / "hf_home"

    fetched = _run(server, wd, hf_home, "prefetch", offline=False)
    assert fetched.returncode == 0, fetched.stderr[-5000:]
    for ckpt, branch in BRANCHES.items():
        record = json.loads((wd / f"resources/prefetch/hubm/{ckpt}.json").read_text())
        assert record["commit_sha"] == server.sha(REPO, branch)
    assert json.loads((wd / "resources/prefetch/benchmarks.json").read_text())["tasks"] == {
        "grokpath_competition_math": len(MATH_PROBLEMS)
    }
    samples = tables.read(wd / "results/samples/hubm/math.parquet", tables.SAMPLES_SCHEMA)
    assert samples.height == 24
    assert set(samples["text"]) <= set(train)

    server.clear_requests()
    run = _run(server, wd, hf_home, offline=True)
    assert run.returncode == 0, run.stderr[-5000:]
    assert server.requests == []  # everything came from the caches and frozen samples

    # Disk-bounded: every checkpoint's weights were released after its last reader.
    for ckpt in BRANCHES:
        folder = wd / "resources/checkpoints/hubm" / ckpt
        assert not list(folder.glob("*.safetensors"))
        assert (folder / "tokenizer.json").is_file()
        assert checkpoints.read_manifest(folder, skip_weights=True)["commit_sha"] == server.sha(REPO, BRANCHES[ckpt])
        assert json.loads((folder.parent / f"{ckpt}.released").read_text())["bytes_freed"] > 0
    sha = {ckpt: server.sha(REPO, branch) for ckpt, branch in BRANCHES.items()}
    for ckpt in BRANCHES:
        meta = json.loads((wd / f"results/evals/hubm/{ckpt}/math_generate.json").read_text())
        assert meta["checkpoint_sha"] == sha[ckpt]
        assert meta["revision"] == BRANCHES[ckpt]
        comp = tables.read(wd / f"results/evals/hubm/{ckpt}/competition_math.samples.parquet", tables.EVAL_ITEMS_SCHEMA)
        assert comp.height == len(MATH_PROBLEMS)
        assert set(comp["target"]) == {str(a + b) for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (2, 2))}
        assert comp["prompt"][0].startswith("What is")

    # Decontamination: 20% of each benchmark dropped (rounded up), scored under the last checkpoint.
    for task, n in (("math_generate", 10), ("competition_math", len(MATH_PROBLEMS))):
        scores = tables.read(wd / f"results/decontamination/hubm/{task}.parquet", tables.DECONTAMINATION_SCHEMA)
        assert scores.height == n
        assert int(scores["dropped"].sum()) == -(-n // 5)
        assert (scores["step"] == "s30").all()
        assert tables.read_metadata(wd / f"results/decontamination/hubm/{task}.parquet")["checkpoint_sha"] == sha["s30"]
        dropped = set(scores.filter(scores["dropped"])["item_id"])
        for ckpt in BRANCHES:
            clean = tables.read(
                wd / f"results/evals_clean/hubm/{ckpt}/{task}.samples.parquet", tables.EVAL_ITEMS_SCHEMA
            )
            assert clean.height == n - len(dropped)
            assert not dropped & set(clean["item_id"])
        groups = tables.read(wd / f"results/test_groups/hubm/{task}.parquet", tables.TEST_GROUPS_SCHEMA)
        assert groups.height == n - len(dropped)
    assert (wd / "results/tables/correlations.csv").is_file()
    monitors = tables.read(wd / "results/tables/monitors.parquet", tables.MONITORS_SCHEMA)
    assert set(monitors["step"]) == set(BRANCHES)

    # A rerun offline plans nothing, although the weights are gone.
    dry = _run(server, wd, hf_home, "-n", offline=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # A benchmark added later fetches the same weights back (from the prefetched cache, offline)
    # and reruns the evaluations and what reads them, never the extraction.
    config = yaml.safe_load((wd / "config.yaml").read_text())
    config["domains"]["math"]["tasks"].append({"name": "math_fewshot", "task": "generate", "num_fewshot": 1})
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    routers = {c: (wd / f"results/routers/hubm/{c}.safetensors").stat().st_mtime_ns for c in BRANCHES}
    again = _run(server, wd, hf_home, offline=True)
    assert again.returncode == 0, again.stderr[-5000:]
    assert "rule extract_routing" not in again.stderr + again.stdout
    assert routers == {c: (wd / f"results/routers/hubm/{c}.safetensors").stat().st_mtime_ns for c in BRANCHES}
    for ckpt in BRANCHES:
        assert (wd / f"results/evals/hubm/{ckpt}/math_fewshot.json").is_file()
        assert not list((wd / "resources/checkpoints/hubm" / ckpt).glob("*.safetensors"))  # released again
    assert server.requests == []


def test_offline_without_prefetch_names_what_to_fetch(hub, tmp_path):
    server, train = hub
    wd, hf_home = _workdir(tmp_path, train), tmp_path / "hf_home"
    server.clear_requests()
    run = _run(server, wd, hf_home, "results/samples/hubm/math.parquet", offline=True)
    assert run.returncode != 0
    log = (wd / "logs/download_checkpoint/hubm/s10.log").read_text()
    assert f"{REPO}" in log
    assert "prefetch" in log
    assert server.requests == []
    assert not (wd / "resources/checkpoints/hubm/s10" / checkpoints.MANIFEST).exists()  # nothing looks complete


def test_paper_config_plans_its_whole_dag_offline(tmp_path):
    """`snakemake -n --configfile config/olmoe-paper.yaml` never calls the hub while planning."""
    run = subprocess.run(
        [
            *(SNAKEMAKE, "-n", "--quiet", "rules", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path)),
            *("--configfile", str(ROOT / "config/olmoe-paper.yaml")),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout, re.MULTILINE))
    assert jobs["download_checkpoint"] == "10"
    assert jobs["instruction_tune"] == "30"  # 10 checkpoints x 3 families (math, code, general)
    assert jobs["decontaminate"] == "4"
    assert jobs["release_checkpoint"] == "10"
    assert jobs["prepare_samples"] == "4"
    assert int(jobs["total"]) > 250
