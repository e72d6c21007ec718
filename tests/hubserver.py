"""A local HTTP server that speaks the part of the Hugging Face hub protocol huggingface_hub 2.4.0 uses.

Repos live in memory: `HubServer.add_repo(repo_id, {branch: {path: bytes}})`. The routes are the ones the client
really calls (read from huggingface_hub's source and checked by logging requests):

- `GET /api/{models|datasets}/{repo}[/revision/{rev}]`: repo info (`sha`, `siblings`; with `blobs=true` each
  sibling's `size`, `blobId` and, for LFS files, `lfs: {sha256, size, pointerSize}`). `model_info`,
  `dataset_info`, `repo_info`, `snapshot_download` and `datasets.load_dataset` call it.
- `GET /api/{type}s/{repo}/refs`: branches with `targetCommit` (`list_repo_refs`).
- `GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=`: tree listing (`list_repo_tree`, used by
  `snapshot_download` and `HfFileSystem`).
- `POST /api/{type}s/{repo}/paths-info/{rev}`: per-path info (`get_paths_info`, used by `HfFileSystem.info`).
- `GET|HEAD /{repo}/resolve/{rev}/{path}` and `/datasets/{repo}/resolve/...`: file content with the headers
  the client checks (`X-Repo-Commit`, `ETag`, `X-Linked-Etag` and `X-Linked-Size` for LFS files,
  `Content-Length`) and `Range` support (`HfFileSystem` reads byte ranges).

Errors are answered as the hub does: 404 with `X-Error-Code: RepoNotFound` / `RevisionNotFound` /
`EntryNotFound`. Revisions in URLs are percent-encoded by the client (`quote(rev, safe="")`), so paths are
split before they are unquoted.

huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE / HF_HOME at import time and the test session runs with
HF_HUB_OFFLINE=1 (tests/conftest.py), so the server runs in the pytest process (a thread) and the client runs in
a subprocess: `run_python(code, endpoint=server.url, hf_home=tmp)` (or `server.run_python(code, tmp)`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Files the hub stores with git-LFS in a typical repo (its default .gitattributes), plus anything large.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".parquet", ".arrow", ".gguf")
LFS_THRESHOLD = 10 * 1024 * 1024
_DATE = "2024-01-01T00:00:00.000Z"


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: what the hub reports as a file's `oid` / `blobId` and regular ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The git-LFS pointer file git stores in place of an LFS file's content."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(content).hexdigest()}\n"
        f"size {len(content)}\n"
    ).encode()


@dataclass
class _File:
    path: str
    content: bytes
    lfs: bool
    sha256: str = field(init=False)
    oid: str = field(init=False)  # git blob id: of the content, or of the LFS pointer for LFS files
    pointer_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        pointer = lfs_pointer(self.content)
        self.oid = git_blob_oid(pointer if self.lfs else self.content)
        self.pointer_size = len(pointer)

    @property
    def etag(self) -> str:
        # The hub's ETag for an LFS file is its sha256 (sent as X-Linked-Etag); otherwise the git blob id.
        return self.sha256 if self.lfs else self.oid

    def entry(self, commit: _Commit, expand: bool) -> dict[str, Any]:
        e: dict[str, Any] = {"type": "file", "oid": self.oid, "size": len(self.content), "path": self.path}
        if self.lfs:
            e["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": self.pointer_size}
        if expand:
            e["lastCommit"] = commit.last_commit()
        return e


@dataclass
class _Commit:
    sha: str
    files: dict[str, _File]

    def dirs(self) -> set[str]:
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def dir_entry(self, path: str, expand: bool) -> dict[str, Any]:
        e: dict[str, Any] = {
            "type": "directory",
            "oid": hashlib.sha1(f"tree {self.sha} {path}".encode()).hexdigest(),
            "size": 0,
            "path": path,
        }
        if expand:
            e["lastCommit"] = self.last_commit()
        return e

    def last_commit(self) -> dict[str, str]:
        return {"id": self.sha, "title": "fake commit", "date": _DATE}


@dataclass
class _Repo:
    repo_id: str
    repo_type: str
    branches: dict[str, _Commit]

    def commit(self, rev: str) -> _Commit | None:
        if rev in self.branches:
            return self.branches[rev]
        return next((c for c in self.branches.values() if c.sha == rev), None)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class HubServer:
    """A threaded hub on 127.0.0.1 (random free port); use as a context manager.

    - `.url`: the endpoint to put in HF_ENDPOINT.
    - `.add_repo(repo_id, {branch: {path: bytes}}, repo_type="model") -> {branch: sha}`: each branch gets a
      deterministic fake 40-hex commit sha derived from the repo and its content (`.sha(repo_id, branch)`).
    - `.requests`: every (method, raw path with query) seen, in order; `.clear_requests()`.
    - `.fail_next(n, status=503)`: the next n requests of any kind fail with `status`.
    - `.corrupt(repo_id, path, times=1, revision=None)`: the next `times` GETs of that file (at that branch or
      commit sha, or at any revision) send flipped bytes (same length, same headers), as a network or storage
      fault would.
    """

    def __init__(self, lfs_threshold: int = LFS_THRESHOLD, lfs_suffixes: Sequence[str] = LFS_SUFFIXES) -> None:
        self.lfs_threshold = lfs_threshold
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.requests: list[tuple[str, str]] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._corrupt: dict[tuple[str, str, str, str | None], int] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> HubServer:
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hubserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- content -----------------------------------------------------------------------------------------
    def add_repo(
        self, repo_id: str, branches: Mapping[str, Mapping[str, bytes]], repo_type: str = "model"
    ) -> dict[str, str]:
        """Serve `repo_id` with these branches ({branch: {path: content}}); returns {branch: commit sha}."""
        if repo_type not in ("model", "dataset"):
            raise ValueError(f"repo_type must be model or dataset, not {repo_type!r}")
        commits = {}
        for name, files in branches.items():
            h = hashlib.sha1(f"{repo_type}\0{repo_id}\n".encode())
            for path in sorted(files):
                h.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
            commits[name] = _Commit(
                sha=h.hexdigest(), files={p: _File(p, c, self._is_lfs(p, c)) for p, c in sorted(files.items())}
            )
        with self._lock:
            self._repos[(repo_type, repo_id)] = _Repo(repo_id, repo_type, commits)
        return {name: c.sha for name, c in commits.items()}

    def sha(self, repo_id: str, branch: str, repo_type: str = "model") -> str:
        return self._repos[(repo_type, repo_id)].branches[branch].sha

    def lfs_sha256(self, repo_id: str, branch: str, path: str, repo_type: str = "model") -> str:
        return self._repos[(repo_type, repo_id)].branches[branch].files[path].sha256

    def _is_lfs(self, path: str, content: bytes) -> bool:
        return path.endswith(self.lfs_suffixes) or len(content) >= self.lfs_threshold

    # -- fault injection ---------------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def corrupt(
        self, repo_id: str, path: str, times: int = 1, revision: str | None = None, repo_type: str = "model"
    ) -> None:
        sha = None
        if revision is not None:
            commit = self._repos[(repo_type, repo_id)].commit(revision)
            assert commit is not None, f"no revision {revision} in {repo_id}"
            sha = commit.sha
        with self._lock:
            self._corrupt[(repo_type, repo_id, path, sha)] = times

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._fail.pop(0) if self._fail else None

    def _take_corruption(self, repo: _Repo, commit: _Commit, path: str) -> bool:
        with self._lock:
            for key in ((repo.repo_type, repo.repo_id, path, commit.sha), (repo.repo_type, repo.repo_id, path, None)):
                if self._corrupt.get(key, 0) > 0:
                    self._corrupt[key] -= 1
                    return True
            return False

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _find_repo(self, repo_type: str, segments: list[str]) -> tuple[_Repo, list[str]]:
        """The repo named by the first one or two segments ("org/name" or a legacy "name"), and the rest."""
        for k in (2, 1):
            repo = self._repos.get((repo_type, "/".join(unquote(s) for s in segments[:k])))
            if repo is not None and len(segments) >= k:
                return repo, segments[k:]
        name = "/".join(unquote(s) for s in segments[:2])
        raise _HubError(404, "RepoNotFound", f"Repository {name} not found")

    # -- client helpers ----------------------------------------------------------------------------------
    def env(self, hf_home: str | Path, *, offline: bool = False, extra: Mapping[str, str] | None = None) -> dict:
        return hub_env(self.url, hf_home, offline=offline, extra=extra)

    def run_python(
        self,
        code: str,
        hf_home: str | Path,
        *,
        offline: bool = False,
        args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return run_python(
            code, endpoint=self.url, hf_home=hf_home, offline=offline, args=args, extra_env=extra_env, timeout=timeout
        )


def hub_env(
    endpoint: str, hf_home: str | Path, *, offline: bool = False, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An environment for a client subprocess: this endpoint and HF_HOME, online unless `offline`.

    Drops every inherited HF_* / HUGGINGFACE_* variable (the test session sets HF_HUB_OFFLINE=1, a user may have
    HF_TOKEN), keeps proxies away from 127.0.0.1 and turns off progress bars, telemetry and Xet.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    flag = "1" if offline else "0"
    no_proxy = ",".join(x for x in (env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost") if x)
    env.update(
        {
            "HF_ENDPOINT": endpoint,
            "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": flag,
            "HF_DATASETS_OFFLINE": flag,
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_ETAG_TIMEOUT": "10",
            "HF_HUB_DOWNLOAD_TIMEOUT": "20",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def run_python(
    code: str,
    *,
    endpoint: str,
    hf_home: str | Path,
    offline: bool = False,
    args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -c code *args` against the endpoint with its own HF_HOME; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=hub_env(endpoint, hf_home, offline=offline, extra=extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the hub; every response carries a Content-Length

    def log_message(self, format: str, *args: Any) -> None:  # the tests read `.requests` instead
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        self.hub._record(method, self.path)
        body = b""
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            status = self.hub._take_failure()
            if status is not None:
                raise _HubError(status, None, f"injected failure ({status})")
            self._route(method, body)
        except _HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            self._send(err.status, json.dumps({"error": err.message}).encode(), "application/json", headers, method)
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-response
            self.close_connection = True

    def _route(self, method: str, body: bytes) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        segs = [s for s in split.path.split("/") if s]
        if segs[:1] == ["api"] and len(segs) >= 3 and segs[1] in ("models", "datasets"):
            repo, rest = self.hub._find_repo(segs[1][:-1], segs[2:])
            self._api(method, repo, rest, query, body)
            return
        repo_type = "model"
        if segs[:1] == ["datasets"]:
            repo_type, segs = "dataset", segs[1:]
        if "resolve" in segs and method in ("GET", "HEAD"):
            i = segs.index("resolve")
            repo, _ = self.hub._find_repo(repo_type, segs[:i])
            if len(segs) < i + 3:
                raise _HubError(404, "EntryNotFound", "no file path in url")
            self._resolve(method, repo, unquote(segs[i + 1]), unquote("/".join(segs[i + 2 :])))
            return
        raise _HubError(404, None, f"no route for {method} {split.path}")

    # -- /api ---------------------------------------------------------------------------------------------
    def _api(self, method: str, repo: _Repo, rest: list[str], query: dict[str, list[str]], body: bytes) -> None:
        flag = lambda name: query.get(name, ["false"])[-1].lower() in ("1", "true")  # noqa: E731
        if method == "GET" and (not rest or (rest[0] == "revision" and len(rest) >= 2)):
            rev = unquote("/".join(rest[1:])) if rest else "main"
            self._json(self._info(repo, self._commit(repo, rev), blobs=flag("blobs")), method)
        elif method == "GET" and rest == ["refs"]:
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": c.sha} for name, c in repo.branches.items()
            ]
            out: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
            if flag("include_prs"):
                out["pullRequests"] = []
            self._json(out, method)
        elif method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
            commit = self._commit(repo, unquote(rest[1]))
            path = unquote("/".join(rest[2:])).strip("/")
            self._json(self._tree(commit, path, flag("recursive"), flag("expand")), method)
        elif method == "POST" and rest[:1] == ["paths-info"] and len(rest) >= 2:
            commit = self._commit(repo, unquote("/".join(rest[1:])))
            form = parse_qs(body.decode())
            expand = form.get("expand", ["false"])[-1].lower() in ("1", "true")
            dirs = commit.dirs()
            out_list = []
            for p in form.get("paths", []):
                p = p.strip("/")
                if p in commit.files:
                    out_list.append(commit.files[p].entry(commit, expand))
                elif p in dirs:
                    out_list.append(commit.dir_entry(p, expand))
            self._json(out_list, method)
        else:
            raise _HubError(404, None, f"no api route for {method} {self.path}")

    def _commit(self, repo: _Repo, rev: str) -> _Commit:
        commit = repo.commit(rev)
        if commit is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return commit

    def _info(self, repo: _Repo, commit: _Commit, blobs: bool) -> dict[str, Any]:
        siblings = []
        for f in commit.files.values():
            s: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                s.update(size=len(f.content), blobId=f.oid)
                if f.lfs:
                    s["lfs"] = {"sha256": f.sha256, "size": len(f.content), "pointerSize": f.pointer_size}
            siblings.append(s)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": _DATE,
            "createdAt": _DATE,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        else:
            info["cardData"] = {}
        if blobs:
            info["usedStorage"] = sum(len(f.content) for f in commit.files.values())
        return info

    def _tree(self, commit: _Commit, path: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
        dirs = commit.dirs()
        if path and path not in dirs:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on this revision", commit.sha)
        prefix = f"{path}/" if path else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        out = [commit.dir_entry(d, expand) for d in sorted(dirs) if wanted(d)]
        out += [f.entry(commit, expand) for p, f in commit.files.items() if wanted(p)]
        return sorted(out, key=lambda e: e["path"])

    # -- /resolve -----------------------------------------------------------------------------------------
    def _resolve(self, method: str, repo: _Repo, rev: str, path: str) -> None:
        commit = self._commit(repo, rev)
        f = commit.files.get(path)
        if f is None:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on {rev}", commit.sha)
        content = f.content
        if method == "GET" and self.hub._take_corruption(repo, commit, path):
            content = bytes(b ^ 0xFF for b in content)
        size = len(content)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(size)
        status = 200
        rng = self.headers.get("Range")
        if rng:
            span = _parse_range(rng, size)
            if span is None:
                headers["Content-Range"] = f"bytes */{size}"
                self._send(416, b"", "text/plain", headers, method)
                return
            start, end = span
            content = content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            status = 206
        self._send(status, content, "application/octet-stream", headers, method)

    # -- responses ----------------------------------------------------------------------------------------
    def _json(self, obj: Any, method: str) -> None:
        self._send(200, json.dumps(obj).encode(), "application/json", {}, method)

    def _send(self, status: int, body: bytes, ctype: str, headers: Mapping[str, str], method: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if first == "":
        n = int(last)
        start, end = max(size - n, 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None
    return start, end
