"""Hugging Face hub checkpoints: list a repo's branches, map training steps to them, download one revision.

A hub checkpoint series (OLMoE, Pythia, ...) keeps one branch per saved step, e.g. `step5000-tokens20B`.
`download_checkpoint` resolves a revision to its commit, fetches exactly that commit (from the HF cache when
it is there, so a prefetched cache works with HF_HUB_OFFLINE=1), verifies every file against the hub's
metadata and writes the folder with the same manifest as `checkpoints.materialize_folder`, manifest last.

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HOME when it is imported; this module only reads
them through `huggingface_hub.constants`, never caches them itself.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import HfApi, ResolvedRevision, constants, snapshot_download

# Private, but huggingface_hub is pinned exactly (pyproject): the on-disk tree listing that snapshot_download
# keeps per commit is the only record of the hub's sizes and sha256s that is available offline.
from huggingface_hub._tree_cache import read_tree_cache
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import filter_repo_objects

from grokpath import io
from grokpath.checkpoints import MANIFEST, Stamps, _link_or_copy, content_hash, sha256_file

log = logging.getLogger(__name__)

T = TypeVar("T")

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_STEP_BRANCH = re.compile(r"step(\d+)(?:-.*)?")
_RETRY_STATUS = (408, 429)  # besides every 5xx
_MAX_BACKOFF_S = 60.0


class HubError(RuntimeError):
    """A hub repository, revision or file could not be fetched (the message says what to do)."""


class OfflineMissingError(HubError):
    """HF_HUB_OFFLINE=1 and the revision is not (completely, verifiably) in the HF cache."""


# -- branches and steps ---------------------------------------------------------------------------------


def list_branches(repo: str, repo_type: str = "model", *, retries: int = 4, backoff_s: float = 2.0) -> list[str]:
    """The branch names of `repo`, in the hub's order."""
    _require_online(repo, repo_type, None)
    refs = _hub_call(
        f"listing the branches of {repo}",
        lambda: HfApi().list_repo_refs(repo, repo_type=repo_type),
        repo,
        None,
        retries,
        backoff_s,
    )
    return [b.name for b in refs.branches]


def branch_step(branch: str) -> int | None:
    """The training step a branch holds (`step5000` or `step5000-tokens20B` -> 5000), None for others."""
    m = _STEP_BRANCH.fullmatch(branch)
    return int(m.group(1)) if m else None


def sort_branches(branches: Sequence[str]) -> list[str]:
    """Other branches (main, ...) first in their order, then the step branches by step number."""
    steps = sorted((b for b in branches if branch_step(b) is not None), key=lambda b: (branch_step(b), b))
    return [b for b in branches if branch_step(b) is None] + steps


def resolve_steps(branches: Sequence[str], steps: Sequence[int]) -> dict[int, str]:
    """Map each training step S to the unique branch named `stepS` or `stepS-...`.

    Matching on the full number (not a string prefix) keeps step 5000 off `step50000-tokens200B`. A step with
    no branch, or with several (`step5000` and `step5000-tokens20B`), raises HubError naming close branches.
    """
    out: dict[int, str] = {}
    for step in steps:
        matches = [b for b in branches if branch_step(b) == step and b.startswith(f"step{step}")]
        if len(matches) == 1:
            out[step] = matches[0]
            continue
        if matches:
            raise HubError(f"step {step} matches several branches: {', '.join(matches)}; name the revision itself")
        raise HubError(f"no branch for step {step} (looked for step{step} or step{step}-...); {_close(branches, step)}")
    return out


def _close(branches: Sequence[str], step: int) -> str:
    stepped = [(s, b) for b in branches if (s := branch_step(b)) is not None]
    if not stepped:
        near = difflib.get_close_matches(f"step{step}", list(branches), n=5, cutoff=0.0)
        return f"the repo has no step branches (branches: {', '.join(near) or 'none'})"
    near = [b for _, b in sorted(stepped, key=lambda sb: (abs(sb[0] - step), sb[0]))[:5]]
    return f"closest branches: {', '.join(near)}"


# -- downloads ------------------------------------------------------------------------------------------


def download_checkpoint(
    repo: str,
    revision: str,
    dest: Path,
    *,
    keep_cache: bool = True,
    retries: int = 4,
    backoff_s: float = 2.0,
) -> dict[str, Any]:
    """Bring `repo` at `revision` (branch, tag or commit sha) into `dest` and write its manifest, last.

    The revision is resolved to its commit sha and exactly that commit is fetched. A snapshot already in the
    HF cache is used without any request (also offline; a branch is found through the cache's refs/). With
    `keep_cache` files are downloaded into the HF cache and hard-linked (else copied) into `dest`; without it
    (disk-bounded mode) they are downloaded into a temporary folder next to `dest`, never into the cache.
    Every file is checked against the hub's size, LFS sha256 or git blob id, in `dest` as it is linked (with its
    stamps: the first stage does not hash it again); a corrupt file is fetched once more. Transient failures
    (connection errors, timeouts, HTTP 5xx/429) are retried `retries` times with exponential backoff from
    `backoff_s`. Returns the manifest.
    """
    dest = Path(dest)
    # Whatever happens below, dest must not look complete until the new manifest is in place.
    (dest / MANIFEST).unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    download_dir = None if keep_cache else dest.with_name(f".{dest.name}.download-{os.getpid()}")
    staging = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        _remove(staging)
        staging.mkdir()
        snap = _ensure_snapshot(repo, revision, "model", download_dir, None, retries, backoff_s, into=staging)
        _replace(staging, dest)
    finally:
        _remove(staging)
        if download_dir is not None:
            _remove(download_dir)
    manifest = {
        "source": "hf",
        "repo": repo,
        "revision": revision,
        "commit_sha": snap.sha,
        "path": None,
        "content_hash": content_hash(snap.entries),
        "files": snap.entries,
    }
    io.write_json(dest / MANIFEST, manifest)
    log.info("checkpoint %s@%s (commit %s, %d files) is in %s", repo, revision, snap.sha, len(snap.entries), dest)
    return manifest


def prefetch(
    repo: str,
    revision: str,
    repo_type: str = "model",
    retries: int = 4,
    allow_patterns: str | list[str] | None = None,
    backoff_s: float = 2.0,
) -> str:
    """Download `repo` at `revision` into the HF cache only (verified, refs/ recorded); returns the commit sha.

    Run it with network access so that later `download_checkpoint` calls work with HF_HUB_OFFLINE=1.
    """
    return _ensure_snapshot(repo, revision, repo_type, None, allow_patterns, retries, backoff_s).sha


@dataclass(frozen=True)
class _Expected:
    """What the hub says a file is: its size, and its LFS sha256 or (regular files) its git blob id."""

    size: int | None
    sha256: str | None
    git_oid: str | None


@dataclass(frozen=True)
class _Snapshot:
    sha: str
    entries: list[dict[str, Any]]  # manifest entries (name, size, sha256) of the files that go into dest


def _ensure_snapshot(
    repo: str,
    revision: str,
    repo_type: str,
    local_dir: Path | None,
    allow_patterns: str | list[str] | None,
    retries: int,
    backoff_s: float,
    into: Path | None = None,
) -> _Snapshot:
    """A verified snapshot of `revision`: from the HF cache if it is there, else downloaded.

    Downloads go to the HF cache, or to `local_dir` when given (no cache copy). With `into`, the files of the
    manifest entries are linked there and verified there (`_verify`).
    """
    cached = _cached_snapshot(repo, revision, repo_type, allow_patterns)
    if cached is not None:
        sha, folder, expected = cached
        entries, bad = _verify(folder, expected, into)
        if not bad:
            log.info("%s@%s: using commit %s from the HF cache (%s)", repo, revision, sha, folder)
            return _Snapshot(sha, entries)
        if constants.is_offline_mode():
            raise OfflineMissingError(
                f"{repo}@{revision}: cached file(s) {', '.join(bad)} do not match the hub's size/sha256 and "
                f"HF_HUB_OFFLINE=1 forbids fetching them again; {_prefetch_hint(repo, revision)}"
            )
        log.warning(
            "%s@%s: cached file(s) %s are corrupt; deleting and downloading them again", repo, revision, ", ".join(bad)
        )
        _delete_files(folder, bad)
        local_dir = None  # repair the cache copy where it is
    else:
        _require_online(repo, repo_type, revision)
        info = _hub_call(
            f"resolving {repo}@{revision}",
            lambda: HfApi().repo_info(repo, revision=revision, repo_type=repo_type, files_metadata=True),
            repo,
            revision,
            retries,
            backoff_s,
        )
        sha = str(info.sha)
        expected = {
            s.rfilename: _Expected(
                size=s.size if s.size is not None else (s.lfs.size if s.lfs else None),
                sha256=s.lfs.sha256 if s.lfs else None,
                git_oid=None if s.lfs else s.blob_id,
            )
            for s in info.siblings or []
        }
        expected = _filter(expected, allow_patterns)
        log.info("%s@%s is commit %s (%d files)", repo, revision, sha, len(expected))

    def fetch() -> Path:
        # A ResolvedRevision pins the commit: snapshot_download does not ask the hub again what `revision` is.
        pinned = ResolvedRevision(sha, initial=revision, repo_id=repo, repo_type=repo_type)
        return Path(
            _hub_call(
                f"downloading {repo}@{revision} ({sha})",
                lambda: snapshot_download(
                    repo,
                    repo_type=repo_type,
                    revision=pinned,
                    local_dir=local_dir,
                    allow_patterns=allow_patterns,
                ),
                repo,
                revision,
                retries,
                backoff_s,
            )
        )

    folder = fetch()
    entries, bad = _verify(folder, expected, into)
    if bad:
        log.warning(
            "%s@%s: downloaded file(s) %s are corrupt; downloading them once more", repo, revision, ", ".join(bad)
        )
        _delete_files(folder, bad)
        folder = fetch()
        entries, bad = _verify(folder, expected, into)
        if bad:
            _delete_files(folder, bad)  # leave no corrupt file behind for a later (offline) run to trust
            raise HubError(
                f"{repo}@{revision} (commit {sha}): file(s) {', '.join(bad)} still do not match the hub's "
                "size/sha256 after a second download; check the disk and the network, then retry"
            )
    if local_dir is None and revision != sha:
        # Record branch -> commit in the cache's refs/ (as snapshot_download does for a plain revision), so
        # that the branch name works with HF_HUB_OFFLINE=1; written only once the snapshot is complete.
        io.write_text(_storage_folder(repo, repo_type) / "refs" / revision, sha)
    return _Snapshot(sha, entries)


def _cached_snapshot(
    repo: str, revision: str, repo_type: str, allow_patterns: str | list[str] | None
) -> tuple[str, Path, dict[str, _Expected]] | None:
    """(sha, folder, expected files) of a complete cached snapshot with its tree listing, without a request."""
    try:
        folder = Path(
            snapshot_download(
                repo, repo_type=repo_type, revision=revision, local_files_only=True, allow_patterns=allow_patterns
            )
        )
    except LocalEntryNotFoundError:  # not cached, or cached but incomplete (IncompleteSnapshotError)
        return None
    sha = folder.name
    tree = read_tree_cache(str(_storage_folder(repo, repo_type)), sha)
    if tree is None:
        # Files fetched one by one (e.g. by from_pretrained) leave no tree listing: nothing to verify against.
        log.info("%s@%s: cached snapshot %s has no file listing; fetching it from the hub", repo, revision, sha)
        return None
    expected = {
        path: _Expected(
            size=e.size,
            sha256=e.lfs_sha256,
            git_oid=None if e.lfs_sha256 else e.blob_id,
        )
        for path, e in tree.items()
    }
    return sha, folder, _filter(expected, allow_patterns)


def _filter(expected: dict[str, _Expected], allow_patterns: str | list[str] | None) -> dict[str, _Expected]:
    keep = set(filter_repo_objects(list(expected), allow_patterns=allow_patterns))
    return {k: v for k, v in expected.items() if k in keep}


def _verify(
    folder: Path, expected: dict[str, _Expected], into: Path | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Check every expected file under `folder`: (manifest entries of the non-hidden ones, names that fail).

    Entries follow `checkpoints.file_entries` (hidden files left out, same order), so that a folder holding
    exactly them gets the same manifest and content hash as `materialize_folder` would give it.

    With `into` (a checkpoint folder being built), the entries' files are first hard-linked (else copied)
    there, then hashed there with their stamps (`checkpoints.Stamps`): a link changes a file's ctime, so a
    file hashed before it was linked was hashed again by the first stage that verified the folder.
    """
    names = sorted(expected, key=PurePosixPath)
    in_manifest = {n for n in names if not PurePosixPath(n).name.startswith(".") and PurePosixPath(n).name != MANIFEST}
    linked: set[str] = set()
    stamps = None
    if into is not None:
        linked, stamps = in_manifest, Stamps(into)
        for name in sorted(linked):
            if (folder / name).is_file():
                # resolve(): hard-link the cache blob itself, not the snapshot's symlink to it.
                _link_or_copy((folder / name).resolve(), into / name)
            else:  # not (or no longer) there: no link left from an earlier try
                (into / name).unlink(missing_ok=True)
    entries: list[dict[str, Any]] = []
    bad: list[str] = []
    for name in names:
        exp = expected[name]
        path = into / name if into is not None and name in linked else folder / name
        if not path.is_file():
            bad.append(name)
            continue
        size = path.stat().st_size
        digest = stamps.sha256(path, name) if stamps is not None and name in linked else sha256_file(path)
        if (
            (exp.size is not None and size != exp.size)
            or (exp.sha256 is not None and digest != exp.sha256)
            or (exp.git_oid is not None and _git_blob_oid(path, size) != exp.git_oid)
        ):
            bad.append(name)
        elif name in in_manifest:
            entries.append({"name": name, "size": size, "sha256": digest})
    if stamps is not None:
        stamps.save()
    return entries, bad


def _git_blob_oid(path: Path, size: int) -> str:
    """The git object id of a file (what the hub reports for files not stored with LFS: small ones)."""
    h = hashlib.sha1(b"blob %d\0" % size)
    h.update(path.read_bytes())
    return h.hexdigest()


def _delete_files(folder: Path, names: Sequence[str]) -> None:
    """Delete files of a snapshot: in the HF cache both the snapshot's link and the blob it points to."""
    for name in names:
        link = folder / name
        blob = link.resolve()
        link.unlink(missing_ok=True)
        if blob != link:
            blob.unlink(missing_ok=True)


def _storage_folder(repo: str, repo_type: str) -> Path:
    return Path(constants.HF_HUB_CACHE).expanduser().resolve() / repo_folder_name(repo_id=repo, repo_type=repo_type)


# -- errors and retries ---------------------------------------------------------------------------------


# No cache holds a branch list, so prefetching cannot help a command that needs one.
_BRANCH_LIST_HINT = "list its branches where the hub is reachable"


def _prefetch_hint(repo: str, revision: str) -> str:
    return (
        f"run `snakemake prefetch` with the same --configfile (or `grokpath prefetch {repo} {revision}`) "
        "with network access first"
    )


def _require_online(repo: str, repo_type: str, revision: str | None) -> None:
    """Raise OfflineMissingError (which says how to fill the cache) if HF_HUB_OFFLINE=1."""
    if constants.is_offline_mode():
        if revision is None:
            what, hint = "its branch list needs the hub", _BRANCH_LIST_HINT
        else:
            what, hint = f"revision {revision!r} is not in the cache", _prefetch_hint(repo, revision)
        raise OfflineMissingError(
            f"{repo_type} repo {repo}: {what} ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 forbids "
            f"downloading; {hint}"
        )


def _hub_call(what: str, fn: Callable[[], T], repo: str, revision: str | None, retries: int, backoff_s: float) -> T:
    """`fn()`, retried on transient failures; hub errors become HubError with a message that says what to do."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as err:
            if attempt >= retries or not _is_transient(err):
                raise _translate(err, what, repo, revision) from err
            delay = min(backoff_s * 2**attempt, _MAX_BACKOFF_S)
            attempt += 1
            log.warning("%s failed (%s); retry %d/%d in %gs", what, _brief(err), attempt, retries, delay)
            time.sleep(delay)


def _translate(err: Exception, what: str, repo: str, revision: str | None) -> HubError:
    hint = f"run `grokpath revisions {repo}` to list its branches"
    if _unresolvable(err):
        host = urlsplit(constants.ENDPOINT).hostname or constants.ENDPOINT
        if revision is None:
            todo = _BRANCH_LIST_HINT
        else:
            todo = f"set HF_HUB_OFFLINE=1 to use the Hugging Face cache, or {_prefetch_hint(repo, revision)}"
        return HubError(
            f"{what} failed: the hub's host {host} has no address here (no network or DNS: {_brief(err)}); {todo}"
        )
    for e in error_chain(err):
        if isinstance(e, RevisionNotFoundError):
            return HubError(f"revision {revision!r} not found in {repo}; {hint}")
        if isinstance(e, RepositoryNotFoundError):
            at = "" if revision is None else f" (revision {revision!r})"
            return HubError(
                f"repository {repo}{at} not found on {constants.ENDPOINT} (or it is private/gated and no token is "
                f"set); check the repo id and type, then {hint}"
            )
        if isinstance(e, OfflineModeIsEnabled):
            return OfflineMissingError(
                f"{repo}@{revision}: not in the Hugging Face cache and HF_HUB_OFFLINE=1; "
                + _prefetch_hint(repo, revision or "REVISION")
            )
    if isinstance(err, HubError):
        return err
    return HubError(f"{what} failed: {_brief(err)}")


def _unresolvable(err: BaseException) -> bool:
    """Whether the resolver answered that the host has no address (EAI_NONAME: no such name, or no DNS at
    all, as on a machine without network). Retrying cannot change that answer: without this, a download
    with the hub out of reach spent ~30 s in retries before its error. A resolver that could not answer
    (EAI_AGAIN) is transient and retried."""
    return any(isinstance(e, socket.gaierror) and e.errno == socket.EAI_NONAME for e in error_chain(err))


def _is_transient(err: BaseException) -> bool:
    """Connection errors, timeouts and HTTP 5xx/408/429, also when wrapped (snapshot_download re-raises them
    as LocalEntryNotFoundError); never a missing repo, revision or file, nor a host name that does not resolve."""
    if _unresolvable(err):
        return False
    for e in error_chain(err):
        if isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)):
            return False
        if isinstance(e, OfflineModeIsEnabled):
            return False
        if isinstance(e, HfHubHTTPError) and e.response is not None:
            status = e.response.status_code
            return status >= 500 or status in _RETRY_STATUS
        if isinstance(e, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return True
        if isinstance(e, OSError) and str(e).startswith("Consistency check failed"):  # truncated download
            return True
    return False


def error_chain(err: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts, outermost first."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def _brief(err: BaseException) -> str:
    first = str(err).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''}"


# -- folders --------------------------------------------------------------------------------------------


def _replace(staging: Path, dest: Path) -> None:
    """Put `staging` at `dest` by renames (same filesystem): dest is absent or complete, never half-written."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(dest, old)
    os.replace(staging, dest)
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
