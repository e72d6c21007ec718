"""Pretraining samples streamed from a Hugging Face dataset, without downloading it whole.

The paper's domains are 10k samples each from hub datasets far too large to fetch
(open-web-math/open-web-math, bigcode/starcoderdata, emozilla/dolma-v1_7-books, and
blester125/mediawiki-dolma filtered on "Organic Chemistry"). `stream_texts` reads one split as a
stream, shuffles it with a seeded buffer, filters, and stops as soon as it has `n` texts.

`path` is whatever `datasets.load_dataset` accepts: a hub repo id ("open-web-math/open-web-math"),
a packaged builder name with `data_files` ("json", "parquet", "text", ...), or a local folder of
data files. The dataset is opened with `datasets.load_dataset_builder(...)` followed by
`builder.as_streaming_dataset(split)`, which is exactly what `load_dataset(..., streaming=True)`
does (datasets 5.x), keeping the builder at hand for provenance.

Selection, in order:

1. `IterableDataset.shuffle(seed=seed, buffer_size=shuffle_buffer)`: the order of the data files
   (shards) is permuted with the seed, and rows pass through a shuffle buffer of `shuffle_buffer`
   rows. The result is a function of (data files, seed, buffer size, datasets version): the same
   seed gives the same texts. It is a local shuffle, not a uniform sample: the texts come from the
   first shards in the permuted order. A hub dataset pinned by `revision` keeps its file list.
2. Each row, in the shuffled order, is dropped (and counted once, under the first rule it fails)
   when its text is null or only whitespace ("empty"), when it lacks `keyword` ("no_keyword"; a
   case-sensitive, literal substring match anywhere in the text, since the paper names the
   keyword with its capitals, "Organic Chemistry"), or when the tokenizer gives it more than
   `max_tokens` token ids, special tokens included, as the sample manifest counts them
   ("too_long").
3. The first `n` rows that survive are kept, in stream order; scanning stops there (or after
   `max_scan` rows). Rows read from the files are about `scanned` plus one shuffle buffer plus one
   batch of 1,000 rows, rounded up to the files' row groups (Parquet) or 10 MB blocks (JSON).

Datasets 5.x sleeps 5 s whenever a Parquet stream is closed (`datasets.config.
SLEEP_TIME_ON_THREADS_SHUTDOWN`, a guard against apache/arrow#45214), so each call on a Parquet
dataset takes at least 5 s; it is left as it is.

Provenance (`StreamedTexts.provenance`, JSON-serialisable): the request (path, config name,
data_dir, split, requested revision, text field, n, seed, keyword, max_tokens, shuffle buffer,
max_scan), the datasets version, the builder's name and hash (for a hub dataset the builder hash
is the commit it resolved), `resolved_revision` (the commit sha pinned in the resolved hub file
URLs, `hf://datasets/<repo>@<sha>/...`; None for local files), and the split's data files: their
number, the first few, and a sha256 over the sorted list (local files as "path<TAB>size in bytes",
remote files as their commit-pinned URLs). A streaming dataset has no content fingerprint that
does not require reading it whole; these are the identifiers datasets itself resolves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

_COMMIT_IN_URL = re.compile(r"@([0-9a-f]{40})(?:/|$)")
_BATCH_ROWS = 1000  # rows per Arrow batch pulled from the shuffled stream


@dataclass(frozen=True)
class StreamedTexts:
    """The kept texts (stream order) and what it took to find them."""

    texts: list[str]
    scanned: int  # rows taken from the shuffled stream
    empty: int  # null or whitespace-only text
    no_keyword: int  # non-empty, but without the keyword
    too_long: int  # has the keyword, but over max_tokens tokens
    provenance: dict[str, Any] = field(default_factory=dict)


def _split_files(builder: Any, split: str) -> list[str]:
    data_files = getattr(builder.config, "data_files", None) or {}
    for key, files in data_files.items():
        if str(key) == split:
            return sorted(str(f) for f in files)
    return []


def _provenance(builder: Any, files: list[str], request: dict[str, Any]) -> dict[str, Any]:
    import datasets

    commits = sorted({m.group(1) for f in files for m in [_COMMIT_IN_URL.search(f)] if m})
    lines = [f"{f}\t{os.path.getsize(f)}" if os.path.isfile(f) else f for f in files]
    return {
        **request,
        "datasets_version": datasets.__version__,
        "builder_name": builder.name,
        "config_name": builder.config.name,
        "builder_hash": builder.hash,
        "resolved_revision": commits[0] if len(commits) == 1 else (commits or None),
        "n_data_files": len(files),
        "data_files_head": files[:5],
        "data_files_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
    }


def _check_text_column(fields: Mapping[str, Any], text_field: str, where: str) -> None:
    if text_field not in fields:
        raise ValueError(f"{where}: no field {text_field!r}; fields present: {sorted(fields)}")
    kind = fields[text_field]
    if isinstance(kind, pa.DataType):
        ok = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    else:  # a datasets feature
        ok = getattr(kind, "dtype", None) in ("string", "large_string", "null")
    if not ok:
        raise ValueError(f"{where}: field {text_field!r} holds {kind}, not text")


def stream_texts(
    path: str,
    *,
    n: int,
    seed: int,
    name: str | None = None,
    data_dir: str | None = None,
    split: str = "train",
    revision: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    text_field: str = "text",
    keyword: str | None = None,
    max_tokens: int | None = None,
    tokenizer: Any = None,
    shuffle_buffer: int = 10_000,
    max_scan: int | None = None,
) -> StreamedTexts:
    """The first `n` texts of the seeded, shuffled stream of `path`'s `split` that pass the filters
    (see the module docstring for the selection rules and what the provenance records).

    Raises ValueError when the split does not exist, when `text_field` is missing or not text
    (naming the fields present), and when fewer than `n` rows pass the filters in the whole split
    or in the first `max_scan` rows (saying how many were found and scanned).
    """
    import datasets

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be positive, got {shuffle_buffer}")
    if max_scan is not None and max_scan < n:
        raise ValueError(f"max_scan ({max_scan}) must be at least n ({n})")
    if keyword is not None and not keyword:
        raise ValueError("keyword must be a non-empty string or None")
    if max_tokens is not None and tokenizer is None:
        raise ValueError("max_tokens needs a tokenizer to count tokens")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")

    where = f"{path}" + (f" ({name})" if name else "") + f" split {split!r}"
    builder = datasets.load_dataset_builder(
        path, name=name, data_dir=data_dir, data_files=data_files, revision=revision
    )
    try:
        stream = builder.as_streaming_dataset(split=split)
    except ValueError as err:  # datasets: "Bad split: x. Available splits: [...]"
        raise ValueError(f"{path}" + (f" ({name})" if name else "") + f": no split {split!r}: {err}") from err
    if stream.features is not None:
        _check_text_column(stream.features, text_field, where)
        stream = stream.select_columns([text_field])
    shuffled = stream.shuffle(seed=seed, buffer_size=shuffle_buffer).with_format("arrow")

    request = {
        "path": path,
        "name": name,
        "data_dir": data_dir,
        "split": split,
        "revision": revision,
        "text_field": text_field,
        "n": n,
        "seed": seed,
        "keyword": keyword,
        "max_tokens": max_tokens,
        "shuffle_buffer": shuffle_buffer,
        "max_scan": max_scan,
    }
    texts: list[str] = []
    scanned = empty = no_keyword = too_long = 0
    for table in shuffled.iter(batch_size=_BATCH_ROWS):
        _check_text_column(dict(zip(table.column_names, table.schema.types, strict=True)), text_field, where)
        column = table.column(text_field)
        if pa.types.is_null(column.type):
            column = column.cast(pa.string())
        if max_scan is not None:
            column = column.slice(0, max_scan - scanned)
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True).to_pylist()
        has_kw = (
            [True] * len(column)
            if keyword is None
            else pc.fill_null(pc.match_substring(column, pattern=keyword), False).to_pylist()
        )
        candidates = [i for i in range(len(column)) if not blank[i] and has_kw[i]]
        lengths: dict[int, int] = {}
        if max_tokens is not None and candidates:
            cand_texts = column.take(candidates).to_pylist()
            ids = tokenizer(cand_texts)["input_ids"]
            lengths = {i: len(r) for i, r in zip(candidates, ids, strict=True)}
        for i in range(len(column)):
            scanned += 1
            if blank[i]:
                empty += 1
            elif not has_kw[i]:
                no_keyword += 1
            elif max_tokens is not None and lengths[i] > max_tokens:
                too_long += 1
            else:
                texts.append(column[i].as_py())
                if len(texts) == n:
                    break
        if len(texts) == n or (max_scan is not None and scanned >= max_scan):
            break

    result = StreamedTexts(
        texts=texts,
        scanned=scanned,
        empty=empty,
        no_keyword=no_keyword,
        too_long=too_long,
        provenance=_provenance(builder, _split_files(builder, split), request),
    )
    if len(texts) < n:
        scope = f"in the first {max_scan} rows (max_scan)" if max_scan is not None and scanned >= max_scan else ""
        scope = scope or f"in the whole split ({scanned} rows)"
        raise ValueError(
            f"{where}: only {len(texts)} of the {n} texts asked for pass the filters {scope}; scanned {scanned}: "
            f"{empty} empty, {no_keyword} without keyword {keyword!r}, {too_long} over max_tokens={max_tokens}"
        )
    log.info(
        "%s: kept %d texts of %d scanned (%d empty, %d without the keyword, %d too long)",
        where,
        len(texts),
        scanned,
        empty,
        no_keyword,
        too_long,
    )
    return result
