"""lm-eval's response cache for one checkpoint, written in batches.

`simple_evaluate(use_cache=...)` wraps the model in lm-eval's CachingLM, which opens its SQLite
file (sqlitedict) with autocommit: each write of a response (as the model computes it, through the
cache hook, and again after the call) is a transaction of its own, and every query, lookups
included, captures a Python stack trace. On the embedded default's benchmarks that was 38% of the
evaluation stage's time (benchmarks/evaluation.py). `CachedHFLM` keeps lm-eval's file, keys
(`hash_args`), pickled values and both writes (the one after the call keeps a response whose
model never reports it to the hook), so caches written by either one serve the other, but commits
every `COMMIT_SECONDS`, at the end of every call and on any error: a job killed outright (SLURM's
SIGTERM) loses at most the last seconds of responses, not the whole cache.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lm_eval.api.model import CacheHook, hash_args
from lm_eval.models.huggingface import HFLM
from sqlitedict import SqliteDict

log = logging.getLogger(__name__)

# Seconds between commits while the model answers: a commit is a few ms (no fsync: sqlitedict
# turns SQLite's synchronous writes off), so this only bounds what a killed job loses.
COMMIT_SECONDS = 10.0


def cache_file(cache_path: str | Path) -> Path:
    """The SQLite file of a cache path: lm-eval's own name for it (rank 0), so caches carry over."""
    return Path(f"{cache_path}_rank0.db")


class _Store:
    """The SQLite file, committed every COMMIT_SECONDS and when asked."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # outer_stack=False: sqlitedict would otherwise format a stack trace for every query
        self._db = SqliteDict(str(path), autocommit=False, outer_stack=False)
        self._last_commit = time.monotonic()

    def __contains__(self, key: str) -> bool:
        return key in self._db

    def __getitem__(self, key: str) -> Any:
        return self._db[key]

    def put(self, key: str, value: Any) -> None:
        self._db[key] = value
        if time.monotonic() - self._last_commit >= COMMIT_SECONDS:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.commit()  # sqlitedict's close does not commit without autocommit
        self._db.close()


class _Hook(CacheHook):
    """Where HFLM reports each response as soon as it is computed (lm-eval's `add_partial`)."""

    def __init__(self, store: _Store) -> None:
        super().__init__(None)
        self._store = store

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self._store.put(hash_args(attr, req), res)


class CachedHFLM(HFLM):
    """HFLM that answers requests from `cache_file(cache_path)` where it can, as lm-eval's
    CachingLM does: same keys, and sampled generations (`do_sample`) are never answered from it.
    Pass it to `simple_evaluate` without `use_cache`; `close()` when done."""

    def __init__(self, *args: Any, cache_path: str | Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache_path = cache_file(cache_path)
        self._store = _Store(self.cache_path)
        self.set_cache_hook(_Hook(self._store))

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._answer("loglikelihood", requests, disable_tqdm)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._answer("loglikelihood_rolling", requests, disable_tqdm)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._answer("generate_until", requests, disable_tqdm)

    def close(self) -> None:
        self._store.close()

    def _answer(self, attr: str, requests: list[Any], disable_tqdm: bool) -> list[Any]:
        keys = [hash_args(attr, req.args) for req in requests]
        results: list[Any] = [None] * len(requests)
        todo: list[int] = []
        for i, (req, key) in enumerate(zip(requests, keys, strict=True)):
            if not _sampled(attr, req) and key in self._store:
                results[i] = self._store[key]
            else:
                todo.append(i)
        log.info(
            "%s: %d of %d requests answered from %s", attr, len(requests) - len(todo), len(requests), self.cache_path
        )
        if not todo:
            return results
        try:
            fresh = getattr(super(), attr)([requests[i] for i in todo], disable_tqdm=disable_tqdm)
            for i, res in zip(todo, fresh, strict=True):
                results[i] = res
                self._store.put(keys[i], res)
        finally:  # what the model answered before an error is kept for the rerun
            self._store.commit()
        return results


def _sampled(attr: str, req: Any) -> bool:
    """A sampled generation: each repeat must draw anew, so the cache never answers it."""
    return attr == "generate_until" and bool(req.args[1].get("do_sample", False))
