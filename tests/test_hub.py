"""grokpath.hub and `grokpath revisions/prefetch` against a local hub (tests/hubserver.py).

huggingface_hub fixes its endpoint and offline mode at import, and this session runs with HF_HUB_OFFLINE=1,
so the server runs here (a thread) and every client call runs in a subprocess with its own HF_HOME.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import torch
import yaml
from hubserver import HubServer, git_blob_oid, hub_env, run_python
from transformers import OlmoeConfig, OlmoeForCausalLM

from grokpath import checkpoints
from grokpath.checkpoints import content_hash, file_entries, read_manifest
from grokpath.hub import HubError, branch_step, resolve_steps, sort_branches

REPO = "allenai/OLMoE-tiny"
BRANCHES = ("step5000-tokens20B", "step50000-tokens200B", "step125000-tokens500B")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"

# Runs grokpath.hub functions in the client process: argv[1] is a JSON list of [function, args, kwargs];
# prints one JSON list of {"ok": result} or {"error": class name, "message": ...}.
CLIENT = r"""
import json, logging, os, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from grokpath import checkpoints, hub
if "CLOCK_OFFSET_S" in os.environ:  # verification runs that much after the files were linked
    import time, types
    offset = int(os.environ["CLOCK_OFFSET_S"]) * 10**9
    checkpoints.time = types.SimpleNamespace(time_ns=lambda: time.time_ns() + offset)
out = []
for fn, args, kwargs in json.loads(sys.argv[1]):
    if "dest" in kwargs:
        kwargs["dest"] = Path(kwargs["dest"])
    try:
        out.append({"ok": getattr(hub, fn)(*args, **kwargs)})
    except hub.HubError as err:
        out.append({"error": type(err).__name__, "message": str(err)})
print(json.dumps(out))
"""


# -- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def olmoe_series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Three checkpoints of a tiny random OLMoE (save_pretrained files), one per step branch."""
    cfg = OlmoeConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    series = {}
    for seed, branch in enumerate(BRANCHES):
        torch.manual_seed(seed)
        folder = tmp_path_factory.mktemp(branch)
        OlmoeForCausalLM(cfg).eval().save_pretrained(folder)
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert "model.safetensors" in files
        assert "config.json" in files
        # extra.txt and extra/notes.txt: path order (extra/ first) differs from string order (extra.txt first).
        extra = {"extra.txt": f"{branch}\n".encode(), "extra/notes.txt": b"notes\n"}
        series[branch] = {**files, **extra, ".gitattributes": GITATTRIBUTES}
    return series


@pytest.fixture
def hub(olmoe_series: dict[str, dict[str, bytes]]) -> Any:
    with HubServer() as server:
        server.add_repo(REPO, {"main": olmoe_series[BRANCHES[-1]], **olmoe_series})
        yield server


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    return tmp_path / "hf"


def call(
    hub: HubServer,
    hf_home: Path,
    calls: list[tuple[str, list[Any], dict[str, Any]]],
    offline: bool = False,
    extra_env: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Run grokpath.hub calls in a client process; (results, stderr)."""
    proc = hub.run_python(CLIENT, hf_home, args=[json.dumps(calls)], offline=offline, extra_env=extra_env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def download(revision: str, dest: Path, **kwargs: Any) -> tuple[str, list[Any], dict[str, Any]]:
    return ("download_checkpoint", [REPO, revision], {"dest": str(dest), "backoff_s": 0.01, **kwargs})


def cli(hub: HubServer, hf_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grokpath.cli", *args],
        env=hub.env(hf_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def expected_files(files: dict[str, bytes]) -> list[dict[str, Any]]:
    """Manifest entries, in checkpoints.file_entries' order (by path parts) and without hidden files."""
    return [
        {"name": n, "size": len(files[n]), "sha256": hashlib.sha256(files[n]).hexdigest()}
        for n in sorted(files, key=PurePosixPath)
        if not n.startswith(".")
    ]


def storage(hf_home: Path) -> Path:
    return hf_home / "hub" / ("models--" + REPO.replace("/", "--"))


def resolve_gets(hub: HubServer, sha: str, name: str) -> int:
    return sum(1 for m, p in hub.requests if m == "GET" and p == f"/{REPO}/resolve/{sha}/{name}")


def hub_branch_files(hub: HubServer, branch: str) -> list[str]:
    return list(hub._repos[("model", REPO)].branches[branch].files)


def hub_file(hub: HubServer, branch: str, name: str) -> bytes:
    return hub._repos[("model", REPO)].branches[branch].files[name].content


# -- pure helpers ---------------------------------------------------------------------------------------

OLMOE_LIKE = ["main", "step125000-tokens500B", "step5000-tokens20B", "step1000", "step50000-tokens200B", "dev"]


def test_resolve_steps_exact_and_suffixed_names() -> None:
    assert resolve_steps(OLMOE_LIKE, [1000, 5000, 50000, 125000]) == {
        1000: "step1000",
        5000: "step5000-tokens20B",
        50000: "step50000-tokens200B",
        125000: "step125000-tokens500B",
    }


def test_resolve_steps_does_not_take_a_longer_number() -> None:
    # step5000 must not match step50000-...: the only branch that starts with "step5000" is the wrong one.
    with pytest.raises(HubError, match=r"no branch for step 5000.*step50000-tokens200B"):
        resolve_steps(["main", "step50000-tokens200B", "step4000-tokens16B"], [5000])


def test_resolve_steps_missing_step_names_close_branches() -> None:
    with pytest.raises(HubError) as info:
        resolve_steps(OLMOE_LIKE, [6000])
    msg = str(info.value)
    assert "step 6000" in msg
    assert "step5000-tokens20B" in msg
    assert "step1000" in msg


def test_resolve_steps_ambiguous_step() -> None:
    with pytest.raises(HubError, match="several branches: step5000, step5000-tokens20B"):
        resolve_steps(["step5000", "step5000-tokens20B"], [5000])


def test_branch_order_and_steps() -> None:
    assert sort_branches(OLMOE_LIKE) == [
        "main",
        "dev",
        "step1000",
        "step5000-tokens20B",
        "step50000-tokens200B",
        "step125000-tokens500B",
    ]
    assert [branch_step(b) for b in ("step5000-tokens20B", "step7", "stepper", "main")] == [5000, 7, None, None]


# -- through the hub ------------------------------------------------------------------------------------


def test_server_routes_seen_by_the_client(hub: HubServer, hf_home: Path) -> None:
    """The routes other clients (HfFileSystem, paths-info, dataset_info, errors) use, not only snapshots."""
    code = f"""
import json
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError
api = HfApi()
out = {{"paths": [(p.path, getattr(p, "lfs", None) is not None) for p in api.get_paths_info(
    "{REPO}", ["config.json", "model.safetensors", "nope"], revision="{BRANCHES[0]}")]}}
out["tree"] = sorted(f.path for f in api.list_repo_tree("{REPO}", revision="main"))
with HfFileSystem().open("{REPO}/model.safetensors", "rb", revision="{BRANCHES[0]}") as fh:
    fh.seek(8)
    out["range"] = fh.read(16).hex()
try:
    hf_hub_download("{REPO}", "missing.txt")
except RemoteEntryNotFoundError:
    out["missing"] = "EntryNotFound"
print(json.dumps(out))
"""
    proc = hub.run_python(code, hf_home)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["paths"] == [["config.json", False], ["model.safetensors", True]]
    assert out["tree"] == sorted({p.split("/")[0] for p in hub_branch_files(hub, "main")})  # not recursive
    assert out["range"] == hub_file(hub, BRANCHES[0], "model.safetensors")[8:24].hex()
    assert out["missing"] == "EntryNotFound"
    assert ("POST", f"/api/models/{REPO}/paths-info/{BRANCHES[0]}") in hub.requests


def test_list_branches_and_resolve_steps_through_the_hub(hub: HubServer, hf_home: Path) -> None:
    (res,), _ = call(hub, hf_home, [("list_branches", [REPO], {})])
    assert res["ok"] == ["main", *BRANCHES]
    assert resolve_steps(res["ok"], [5000, 125000]) == {5000: BRANCHES[0], 125000: BRANCHES[2]}


def test_cli_revisions_lists_branches_sorted_by_step(hub: HubServer, hf_home: Path) -> None:
    proc = cli(hub, hf_home, "revisions", REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["main", *BRANCHES]


def test_cli_revisions_steps_prints_config_yaml(hub: HubServer, hf_home: Path) -> None:
    # Through the installed entry point (pyproject [project.scripts]).
    exe = Path(sys.executable).with_name("grokpath")
    proc = subprocess.run(
        [str(exe), "revisions", REPO, "--steps", "5000,50000,125000"],
        env=hub.env(hf_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "- {id: step5000, step: 5000, revision: step5000-tokens20B}" in proc.stdout.splitlines()
    assert yaml.safe_load(proc.stdout) == [
        {"id": f"step{s}", "step": s, "revision": b} for s, b in zip((5000, 50000, 125000), BRANCHES, strict=True)
    ]


def test_cli_errors_exit_2_without_traceback(hub: HubServer, hf_home: Path) -> None:
    missing = cli(hub, hf_home, "revisions", REPO, "--steps", "5000,6000")
    assert missing.returncode == 2
    assert "no branch for step 6000" in missing.stderr
    assert "step5000-tokens20B" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert missing.stdout == ""
    unknown = cli(hub, hf_home, "revisions", "allenai/no-such-model")
    assert unknown.returncode == 2
    assert "allenai/no-such-model not found" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad = cli(hub, hf_home, "revisions", REPO, "--steps", "5k")
    assert bad.returncode == 2
    assert "comma-separated integers" in bad.stderr


def test_download_series_then_reuse_the_cache_without_requests(
    hub: HubServer, hf_home: Path, tmp_path: Path, olmoe_series: dict[str, dict[str, bytes]]
) -> None:
    out = tmp_path / "checkpoints"
    results, _ = call(hub, hf_home, [download(b, out / b) for b in BRANCHES])
    for branch, res in zip(BRANCHES, results, strict=True):
        manifest = res["ok"]
        sha = hub.sha(REPO, branch)
        dest = out / branch
        assert manifest["commit_sha"] == sha
        assert manifest["source"] == "hf"
        assert manifest["repo"] == REPO
        assert manifest["revision"] == branch
        assert manifest["path"] is None
        assert manifest["files"] == expected_files(olmoe_series[branch])
        assert manifest["content_hash"] == content_hash(manifest["files"])
        assert read_manifest(dest, verify=True) == manifest
        assert file_entries(dest) == manifest["files"]  # what materialize_folder would record
        # Hard links to the cache blobs, not copies.
        blob = (storage(hf_home) / "snapshots" / sha / "model.safetensors").resolve()
        assert blob.parent.name == "blobs"
        assert blob.samefile(dest / "model.safetensors")
        assert (storage(hf_home) / "refs" / branch).read_text() == sha
    assert sorted(p.name for p in out.iterdir()) == sorted(BRANCHES)  # no staging or download leftovers

    # Again, offline, by branch name (cache refs/) and by commit sha: no request at all.
    hub.clear_requests()
    again = [download(b, tmp_path / "offline" / b) for b in BRANCHES]
    again += [download(hub.sha(REPO, b), tmp_path / "by-sha" / b) for b in BRANCHES]
    results2, _ = call(hub, hf_home, again, offline=True)
    assert hub.requests == []
    for first, by_branch, by_sha in zip(results, results2[:3], results2[3:], strict=True):
        assert by_branch["ok"] == first["ok"]
        assert by_sha["ok"] == {**first["ok"], "revision": first["ok"]["commit_sha"]}

    # Online, a cached revision is used as it is: no request either.
    results3, _ = call(hub, hf_home, [download(BRANCHES[0], tmp_path / "online-again")])
    assert hub.requests == []
    assert results3[0]["ok"] == results[0]["ok"]


@pytest.mark.parametrize("cached", [False, True])
def test_the_first_stage_after_a_download_hashes_nothing_again(
    hub: HubServer, hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    if cached:  # from the HF cache (prefetched): verified once more where the files are linked
        call(hub, hf_home, [download(BRANCHES[0], tmp_path / "first")])
    dest = tmp_path / "ckpt"
    # files hashed less than 2 s after they were linked are not stamped; a real checkpoint's are,
    # but for the first seconds' worth of hashing
    (res,), _ = call(hub, hf_home, [download(BRANCHES[0], dest)], extra_env={"CLOCK_OFFSET_S": "10"})
    stamped = json.loads((dest / checkpoints.VERIFIED).read_text())
    assert sorted(stamped) == sorted(f["name"] for f in res["ok"]["files"])
    hashed: list[str] = []
    monkeypatch.setattr(checkpoints, "sha256_file", lambda path: hashed.append(path.name))
    assert read_manifest(dest, verify=True) == res["ok"]
    assert hashed == []


def test_corrupted_cached_blob_is_downloaded_again(hub: HubServer, hf_home: Path, tmp_path: Path) -> None:
    branch, sha = BRANCHES[0], hub.sha(REPO, BRANCHES[0])
    (first,), _ = call(hub, hf_home, [download(branch, tmp_path / "a")])
    blob = (storage(hf_home) / "snapshots" / sha / "model.safetensors").resolve()
    blob.unlink()  # a fresh file of the same size: dest a/ keeps its own (good) hard link
    blob.write_bytes(b"\0" * len(hub_file(hub, branch, "model.safetensors")))

    hub.clear_requests()
    (again,), stderr = call(hub, hf_home, [download(branch, tmp_path / "b")])
    assert again["ok"]["files"] == first["ok"]["files"]
    assert read_manifest(tmp_path / "b", verify=True)["commit_sha"] == sha
    assert resolve_gets(hub, sha, "model.safetensors") == 1
    assert resolve_gets(hub, sha, "config.json") == 0
    assert "corrupt" in stderr

    # Offline, a corrupt cache cannot be repaired: say so, leave no manifest.
    blob = (storage(hf_home) / "snapshots" / sha / "config.json").resolve()
    blob.write_bytes(blob.read_bytes().replace(b"olmoe", b"OLMOE"))
    (res,), _ = call(hub, hf_home, [download(branch, tmp_path / "c")], offline=True)
    assert res["error"] == "OfflineMissingError"
    assert "config.json" in res["message"]
    assert "snakemake prefetch" in res["message"]
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_corrupt_transfer_is_fetched_once_more_then_fails(hub: HubServer, hf_home: Path, tmp_path: Path) -> None:
    a, b = BRANCHES[0], BRANCHES[1]
    hub.corrupt(REPO, "config.json", times=1, revision=a)  # git blob id check (not an LFS file)
    hub.corrupt(REPO, "model.safetensors", times=2, revision=b)  # LFS sha256 check, twice: give up
    results, stderr = call(hub, hf_home, [download(a, tmp_path / "a"), download(b, tmp_path / "b")])
    assert read_manifest(tmp_path / "a", verify=True) == results[0]["ok"]
    assert resolve_gets(hub, hub.sha(REPO, a), "config.json") == 2
    assert results[1]["error"] == "HubError"
    assert "model.safetensors" in results[1]["message"]
    assert "second download" in results[1]["message"]
    assert not (tmp_path / "b" / "manifest.json").exists()
    assert "downloading them once more" in stderr
    # The corrupt file was not left in the cache: the next call downloads it and succeeds.
    (res,), _ = call(hub, hf_home, [download(b, tmp_path / "b")])
    assert read_manifest(tmp_path / "b", verify=True) == res["ok"]


@pytest.mark.parametrize("status", [503, 429])
def test_transient_failures_are_retried(hub: HubServer, hf_home: Path, tmp_path: Path, status: int) -> None:
    hub.fail_next(2, status=status)
    (res,), stderr = call(hub, hf_home, [download(BRANCHES[0], tmp_path / "ckpt")])
    assert res["ok"]["commit_sha"] == hub.sha(REPO, BRANCHES[0])
    assert "retry 1/4" in stderr
    assert "retry 2/4" in stderr
    assert "retry 3/4" not in stderr
    info = f"/api/models/{REPO}/revision/{BRANCHES[0]}?blobs=true"
    assert hub.requests[:3] == [("GET", info)] * 3


def test_retries_give_up_with_a_hub_error(hub: HubServer, hf_home: Path, tmp_path: Path) -> None:
    hub.fail_next(3, status=502)
    (res,), stderr = call(hub, hf_home, [download(BRANCHES[0], tmp_path / "ckpt", retries=2)])
    assert res["error"] == "HubError"
    assert "502" in res["message"]
    assert "retry 2/2" in stderr
    assert len(hub.requests) == 3
    # A hub that cannot be reached at all (connection refused) is retried too.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client runs: nothing listens there
    calls = [download(BRANCHES[0], tmp_path / "ckpt", retries=1)]
    proc = run_python(CLIENT, endpoint=f"http://127.0.0.1:{port}", hf_home=hf_home, args=[json.dumps(calls)])
    (res,) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["error"] == "HubError"
    assert "retry 1/1" in proc.stderr


def test_a_hub_host_that_does_not_resolve_fails_at_once(hf_home: Path, tmp_path: Path) -> None:
    """No address for the hub's host (no such name, or no DNS at all, as offline) is not retried: the
    retries of a connection error took ~30 s before the same error. The message says how to go on."""
    calls = [download(BRANCHES[0], tmp_path / "ckpt", retries=3, backoff_s=5.0), ("list_branches", [REPO], {})]
    endpoint = "http://grokpath-no-such-host.invalid"  # RFC 2606: never resolves
    started = time.perf_counter()
    proc = run_python(CLIENT, endpoint=endpoint, hf_home=hf_home, args=[json.dumps(calls)])
    assert time.perf_counter() - started < 20  # one retry alone would sleep 5 s, three 35 s
    download_error, branches_error = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "retry" not in proc.stderr
    for res in (download_error, branches_error):
        assert res["error"] == "HubError"
        assert "the hub's host grokpath-no-such-host.invalid has no address here" in res["message"]
    assert "HF_HUB_OFFLINE=1" in download_error["message"]
    assert f"grokpath prefetch {REPO} {BRANCHES[0]}" in download_error["message"]
    assert "list its branches where the hub is reachable" in branches_error["message"]


def test_missing_revision_or_repo_is_not_retried(hub: HubServer, hf_home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "ckpt"
    dest.mkdir()
    (dest / "manifest.json").write_text("{}")  # an earlier checkpoint there must not look complete afterwards
    results, _ = call(
        hub,
        hf_home,
        [download("step999-tokens1B", dest), ("download_checkpoint", ["allenai/nope", "main"], {"dest": str(dest)})],
    )
    rev, repo = results
    assert rev["error"] == "HubError"
    assert "'step999-tokens1B' not found in allenai/OLMoE-tiny" in rev["message"]
    assert f"grokpath revisions {REPO}" in rev["message"]
    assert repo["error"] == "HubError"
    assert "repository allenai/nope (revision 'main') not found" in repo["message"]
    assert "grokpath revisions allenai/nope" in repo["message"]
    assert len(hub.requests) == 2  # one each: a 404 is never retried
    assert not (dest / "manifest.json").exists()


def test_offline_without_cache_says_to_prefetch(hub: HubServer, hf_home: Path, tmp_path: Path) -> None:
    results, _ = call(
        hub, hf_home, [download(BRANCHES[1], tmp_path / "ckpt"), ("list_branches", [REPO], {})], offline=True
    )
    for res in results:
        assert res["error"] == "OfflineMissingError"
        assert REPO in res["message"]
    assert "snakemake prefetch` with the same --configfile" in results[0]["message"]
    # a branch list is in no cache: prefetching would not help
    assert "where the hub is reachable" in results[1]["message"]
    assert "prefetch" not in results[1]["message"]
    assert BRANCHES[1] in results[0]["message"]
    assert f"grokpath prefetch {REPO} {BRANCHES[1]}" in results[0]["message"]
    assert hub.requests == []
    assert not (tmp_path / "ckpt").exists()


def test_keep_cache_false_leaves_no_cache_copy(
    hub: HubServer, hf_home: Path, tmp_path: Path, olmoe_series: dict[str, dict[str, bytes]]
) -> None:
    out = tmp_path / "checkpoints"
    (res,), _ = call(hub, hf_home, [download(BRANCHES[2], out / "last", keep_cache=False)])
    assert res["ok"]["commit_sha"] == hub.sha(REPO, BRANCHES[2])
    assert res["ok"]["files"] == expected_files(olmoe_series[BRANCHES[2]])
    assert read_manifest(out / "last", verify=True) == res["ok"]
    assert not storage(hf_home).exists()
    assert [p.name for p in out.iterdir()] == ["last"]  # the temporary download folder is gone
    files = sorted(p.relative_to(out / "last").as_posix() for p in (out / "last").rglob("*") if p.is_file())
    assert files == sorted(["manifest.json", *(n for n in olmoe_series[BRANCHES[2]] if not n.startswith("."))])


def test_prefetch_then_download_offline(hub: HubServer, hf_home: Path, tmp_path: Path) -> None:
    proc = cli(hub, hf_home, "prefetch", REPO, BRANCHES[0], BRANCHES[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{b} {hub.sha(REPO, b)}" for b in BRANCHES[:2]]
    hub.clear_requests()
    results, _ = call(hub, hf_home, [download(b, tmp_path / b) for b in BRANCHES[:2]], offline=True)
    assert [r["ok"]["commit_sha"] for r in results] == [hub.sha(REPO, b) for b in BRANCHES[:2]]
    assert hub.requests == []


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_datasets_streams_a_dataset_repo(tmp_path: Path, fmt: str) -> None:
    rows = [{"text": f"row {i}", "n": i} for i in range(7)]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        files = {"data/train-00000-of-00001.parquet": buf.getvalue()}
    else:
        files = {"data/train.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()}
    code = """
import json
from datasets import load_dataset
print(json.dumps(list(load_dataset("someone/tiny-set", split="train", streaming=True))))
"""
    with HubServer() as server:
        server.add_repo("someone/tiny-set", {"main": files}, repo_type="dataset")
        proc = server.run_python(code, tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == rows


def test_hub_env_drops_the_sessions_offline_flags(tmp_path: Path) -> None:
    env = hub_env("http://127.0.0.1:1", tmp_path)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py
    assert env["HF_HUB_OFFLINE"] == "0"
    assert env["HF_DATASETS_OFFLINE"] == "0"
    assert env["HF_ENDPOINT"] == "http://127.0.0.1:1"
    assert env["HF_HOME"] == str(tmp_path)
    assert git_blob_oid(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git hash-object /dev/null


def test_offline_evaluation_says_what_to_prefetch_and_keeps_other_errors(monkeypatch):
    """run_lm_eval's evaluation, offline: a benchmark dataset that is not cached (datasets raises
    ConnectionError from huggingface_hub's OfflineModeIsEnabled) says to prefetch; any other error
    of the evaluation stays as it is."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    from grokpath.stages import hub_errors

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def unreachable():
        try:
            raise OfflineModeIsEnabled("offline")
        except OfflineModeIsEnabled as e:
            raise ConnectionError("Couldn't reach 'tau/commonsense_qa' on the Hub (OfflineModeIsEnabled)") from e

    what = "benchmark data of ['commonsense_qa']"
    prefetch = r"\['commonsense_qa'\] is not on this machine.*prefetch"
    with pytest.raises(RuntimeError, match=prefetch), hub_errors(what, network_only=True):
        unreachable()
    with pytest.raises(MemoryError, match="out of memory"), hub_errors(what, network_only=True):
        raise MemoryError("out of memory")
    with pytest.raises(KeyError), hub_errors(what, network_only=True):
        raise KeyError("a bug")
