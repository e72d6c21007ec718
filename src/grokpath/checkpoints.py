"""Checkpoints: bring each one into resources/checkpoints/{model}/{step}/ with a manifest.

The manifest (source, repo or path, revision, resolved commit sha or content hash, and every
file's size and sha256) is written last, so its presence means the folder is complete; readers
verify the files against it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
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


def file_entries(folder: Path) -> list[dict[str, Any]]:
    return [
        {"name": p.relative_to(folder).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    ]


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


def materialize_folder(src: Path, dest: Path, source: str, revision: str) -> dict[str, Any]:
    """Bring a checkpoint folder (pretrain output or a local path) into `dest` and write its manifest."""
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint folder {src} has no config.json (source {source}, revision {revision})")
    manifest_path = dest / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()
    for f in sorted(src.rglob("*")):
        if f.is_file():
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


def read_manifest(folder: str | Path, verify: bool = True) -> dict[str, Any]:
    """The manifest of a materialized checkpoint; with `verify`, every file's size and sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a complete checkpoint: {MANIFEST} is missing")
    manifest = json.loads(path.read_text())
    if verify:
        for f in manifest["files"]:
            p = folder / f["name"]
            if not p.is_file() or p.stat().st_size != f["size"] or sha256_file(p) != f["sha256"]:
                raise ValueError(
                    f"checkpoint {folder}: file {f['name']} does not match its manifest "
                    f"(size/sha256 differ or file missing); delete the folder and rerun to fetch it again"
                )
    return manifest


def checkpoint_sha(manifest: dict[str, Any]) -> str:
    return manifest.get("commit_sha") or manifest["content_hash"]
