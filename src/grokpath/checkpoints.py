"""Checkpoints: bring each one into resources/checkpoints/{model}/{step}/ with a manifest.

The manifest (source, repo or path, revision, resolved commit sha or content hash, and every
file's size and sha256) is written last, so its presence means the folder is complete; readers
verify the files against it. A file is read and hashed again only when it may have changed since
it was last hashed (`Stamps`): re-hashing every checkpoint in every stage read 28 GB per stage
and checkpoint of the paper's run (benchmarks/verification.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grokpath import io

log = logging.getLogger(__name__)

SOURCES = ("pretrain", "local", "hf")
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- verification stamps
VERIFIED = ".verified.json"  # hidden: never part of a manifest
# A file whose status changed less than this before it was hashed is hashed again next time:
# timestamps are coarse (a kernel tick, a network file server's clock), so a write in the same
# tick after the hash could leave the status as it was.
_RACY_NS = 2 * 10**9


def _status(st: os.stat_result) -> list[int]:
    """What changes whenever a file's content can have: any write sets mtime and ctime to now, and
    ctime cannot be set back (utime sets it to now too); a replaced file has another inode."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class Stamps:
    """The sha256 of each file of a checkpoint folder with the status it had when it was hashed
    (`VERIFIED`, written next to the manifest), like git's index: while a file's status is the
    same, its content is, and it is not read again. Delete the file to have every file re-hashed.

    A folder that cannot be written (a shared, read-only store) is hashed in full each time."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / VERIFIED
        try:
            old = json.loads(self._path.read_text())
        except (OSError, ValueError):  # none yet, or damaged: everything is hashed
            old = {}
        self._old: dict[str, list[Any]] = old if isinstance(old, dict) else {}
        self._new: dict[str, list[Any]] = {}

    def sha256(self, path: Path, name: str, expected: str | None = None) -> str | None:
        """The file's sha256 (None if it is not a regular file); `expected` is returned without
        reading the file when it was hashed to that value and has not changed since."""
        try:
            before = path.stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(before.st_mode):
            return None
        status = _status(before)
        if expected is not None and self._old.get(name) == [expected, *status]:
            return expected
        started = time.time_ns()
        digest = sha256_file(path)
        if _status(path.stat()) == status and before.st_ctime_ns < started - _RACY_NS:
            self._new[name] = [digest, *status]
        return digest

    def save(self) -> None:
        """Record the files hashed since this was made (best effort: a lost stamp costs a hash)."""
        if not self._new:
            return
        try:
            io.write_json(self._path, {**self._old, **self._new})
        except OSError as error:
            log.debug("cannot record verified files in %s: %s", self._path, error)


def content_files(folder: Path) -> list[Path]:
    """A checkpoint folder's files that make the checkpoint, sorted: what its manifest lists.
    Nothing hidden (stamps, markers, Snakemake's .snakemake_timestamp) and not the manifest."""
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")]


def file_entries(folder: Path) -> list[dict[str, Any]]:
    stamps = Stamps(folder)
    entries = []
    for p in content_files(folder):
        name = p.relative_to(folder).as_posix()
        entries.append({"name": name, "size": p.stat().st_size, "sha256": stamps.sha256(p, name)})
    stamps.save()
    return entries


def content_hash(files: list[dict[str, Any]]) -> str:
    """One hash over names and file hashes: a revision id for sources without commits."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f['name']}\0{f['sha256']}\n".encode())
    return h.hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)  # no second copy of the weights where the filesystem allows it
    except OSError:
        shutil.copy2(src, dst)


def folder_problem(folder: Path) -> str | None:
    """Why `folder` is not a checkpoint folder in Hugging Face format ("does not exist", "has no
    config.json"), or None when it is one; for checks made before any weight is read."""
    if (folder / "config.json").is_file():
        return None
    return "has no config.json" if folder.is_dir() else "does not exist"


def materialize_folder(src: Path, dest: Path, source: str, revision: str) -> dict[str, Any]:
    """Bring a checkpoint folder (pretrain output or a local path) into `dest` and write its manifest."""
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint folder {src} has no config.json (source {source}, revision {revision})")
    manifest_path = dest / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()
    # What a manifest lists, nothing hidden: a source's stamps describe its files, not dest's, and
    # a hard link to the .snakemake_timestamp of a source that is a Snakemake output would make
    # Snakemake's touch of dest change the source's time too
    for f in content_files(src):
        _link_or_copy(f, dest / f.relative_to(src))
    files = file_entries(dest)
    manifest = {
        "source": source,
        "path": str(src.resolve()),
        "revision": revision,
        "commit_sha": None,
        "content_hash": content_hash(files),
        "files": files,
    }
    io.write_json(manifest_path, manifest)
    return manifest


def read_manifest(folder: str | Path, verify: bool = True, skip_weights: bool = False) -> dict[str, Any]:
    """The manifest of a materialized checkpoint; with `verify`, every file's size and sha256
    (but the weight files' with `skip_weights`: for stages that only need the tokenizer)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a complete checkpoint: {MANIFEST} is missing")
    manifest = json.loads(path.read_text())
    if verify:
        stamps = Stamps(folder)
        try:
            for f in manifest["files"]:
                if skip_weights and is_weight_file(f["name"]):
                    continue
                p = folder / f["name"]
                if (
                    not p.is_file()
                    or p.stat().st_size != f["size"]
                    or stamps.sha256(p, f["name"], f["sha256"]) != f["sha256"]
                ):
                    raise ValueError(
                        f"checkpoint {folder}: file {f['name']} does not match its manifest "
                        f"(size/sha256 differ or file missing); delete the folder and rerun to fetch it again"
                    )
        finally:  # the files hashed before a mismatch were verified all the same
            stamps.save()
    return manifest


def checkpoint_sha(manifest: dict[str, Any]) -> str:
    return manifest.get("commit_sha") or manifest["content_hash"]


# ---------------------------------------------------------------- disk-bounded mode
# Weight files are what makes a checkpoint large; config, tokenizer and manifest stay on disk so
# the folder (a Snakemake output) keeps existing and finished stages are not rerun.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
RELEASED = ".released"


def is_weight_file(name: str) -> bool:
    return name.endswith(WEIGHT_SUFFIXES)


def release_weights(folder: str | Path) -> int:
    """Delete a complete checkpoint's weight files (disk-bounded mode); returns the bytes freed.

    A `.released` marker records it, so `ensure_weights` brings them back for a later stage.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, verify=False)
    freed = 0
    weights = [f for f in manifest["files"] if is_weight_file(f["name"])]
    io.write_json(folder / RELEASED, {"files": [f["name"] for f in weights]})  # first: a crash leaves it marked
    for f in weights:
        path = folder / f["name"]
        if path.exists():
            freed += path.stat().st_size
            path.unlink()
    return freed


def ensure_weights(folder: str | Path, keep_cache: bool = False) -> dict[str, Any]:
    """The verified manifest of a checkpoint folder, fetching released weights back first.

    Weights come back from where the manifest says the checkpoint came from: the same hub commit
    (not the branch, which may have moved) or the same folder; they must match the manifest's
    sha256, or nothing is changed.
    """
    folder = Path(folder)
    marker = folder / RELEASED
    if marker.exists():
        manifest = read_manifest(folder, verify=False)
        with _lock(folder):
            if marker.exists():  # another job may have restored it while this one waited
                _restore(folder, manifest, keep_cache)
                marker.unlink()
    return read_manifest(folder)


@contextmanager
def _lock(folder: Path) -> Iterator[None]:
    with open(folder.with_name(f".{folder.name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _restore(folder: Path, manifest: dict[str, Any], keep_cache: bool) -> None:
    wanted = {f["name"]: f for f in manifest["files"]}
    staging = folder.with_name(f".{folder.name}.restore-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if manifest["source"] == "hf":
            from grokpath import hub

            sha = manifest["commit_sha"]
            hub.download_checkpoint(manifest["repo"], sha, staging, keep_cache=keep_cache)
            src = staging
        else:
            src = Path(manifest["path"])
        log.info("restoring the released weights of %s from %s", folder, manifest.get("repo") or src)
        names = [n for n in wanted if is_weight_file(n) and not (folder / n).exists()]
        changed = [n for n in names if not (src / n).is_file() or (src / n).stat().st_size != wanted[n]["size"]]
        if not changed:
            # Linked first and hashed where they are, with their stamps (`Stamps`): the stage that
            # restores them hashes each once, not once at the source and again in the folder.
            for name in names:
                _link_or_copy(src / name, folder / name)
            stamps = Stamps(folder)
            changed = [n for n in names if stamps.sha256(folder / n, n) != wanted[n]["sha256"]]
            stamps.save()
        if changed:
            for name in names:  # nothing half-restored: the marker stays, the weights stay away
                (folder / name).unlink(missing_ok=True)
            raise ValueError(
                f"cannot restore {folder}: {changed[0]} at {src} no longer matches the manifest "
                f"(the source changed since the checkpoint was first fetched); delete the folder and rerun"
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
