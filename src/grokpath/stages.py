"""One function per workflow stage: what each rule script calls, usable without Snakemake.

Heavy imports (torch, transformers) happen inside the stages that need them so the light stages
(pathways, distances, aggregation) start in well under a second.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grokpath import checkpoints, devices, distance, families, io, memorization, pathways, samples, tables
from grokpath.lazy import LazyModule

if TYPE_CHECKING:
    import polars as pl

    from grokpath.extraction import TokenRows  # torch: imported only by the stages that run a model
else:  # imported by the stages that use it: not the per-domain and per-checkpoint distance jobs
    pl = LazyModule("polars")

log = logging.getLogger(__name__)

GROUP_ALL = "all"


def group_label(checkpoint_id: str) -> str:
    return f"pretrain@{checkpoint_id}"


# ---------------------------------------------------------------- pretrain_tiny_moe
def pretrain_tiny_moe(
    model: str,
    settings: Mapping[str, Any],
    seed: int,
    checkpoints_dir: str,
    data_dir: str,
    trajectory: str,
    summary: str,
    live: str | None = None,
) -> None:
    """Train the embedded series."""
    from grokpath.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig.from_dict({**settings, "seed": seed})
    pretrain(
        cfg,
        model,
        Path(checkpoints_dir),
        Path(data_dir),
        Path(trajectory),
        Path(summary),
        Path(live) if live else None,
    )


# ---------------------------------------------------------------- download_checkpoint
def download_checkpoint(source: str, origin: str, revision: str, dest: str, keep_cache: bool = True) -> None:
    """Materialize one checkpoint folder at `dest`, its manifest.json written last.

    `origin` is a folder (sources pretrain, local) or a hub repository (hf); `keep_cache=False`
    (disk-bounded mode) downloads from the hub straight into `dest`, without an HF cache copy.
    """
    if source not in checkpoints.SOURCES:
        raise ValueError(f"checkpoint source must be one of {checkpoints.SOURCES}, got {source!r}")
    if source == "hf":
        from grokpath import hub

        hub.download_checkpoint(origin, revision, Path(dest), keep_cache=keep_cache)
    else:
        checkpoints.materialize_folder(Path(origin), Path(dest), source, revision)
    try:  # a family whose routing cannot be read fails here, not after every download and load
        families.check_folder(dest)
    except ValueError:
        (Path(dest) / checkpoints.MANIFEST).unlink(missing_ok=True)  # not a complete checkpoint
        raise


def release_checkpoint(checkpoint: str, out: str) -> None:
    """Disk-bounded mode: drop a checkpoint's weights once every stage that reads them is done."""
    freed = checkpoints.release_weights(checkpoint)
    log.info("%s: released %.1f MB of weights", checkpoint, freed / 1e6)
    io.write_json(out, {"checkpoint": checkpoint, "bytes_freed": freed})


# ---------------------------------------------------------------- prefetch
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@contextmanager
def hub_errors(what: str, network_only: bool = False) -> Iterator[None]:
    """With the hub switched off, a failed fetch says what to prefetch instead of a network error;
    `network_only`: only errors that are a ConnectionError or come from one (huggingface_hub's
    OfflineModeIsEnabled is one), for a block that does more than fetch."""
    try:
        yield
    except Exception as e:
        offline = [v for v in _OFFLINE_VARS if os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")]
        if not offline or (isinstance(e, ValueError) and "offline" not in str(e).lower()):
            raise
        if network_only:
            from grokpath.hub import error_chain  # huggingface_hub is imported by now

            if not any(isinstance(x, ConnectionError) for x in error_chain(e)):
                raise
        raise RuntimeError(
            f"{what} is not on this machine and {'/'.join(offline)} is set: run `snakemake prefetch` "
            f"(same --configfile) where the hub is reachable, then rerun ({type(e).__name__}: {e})"
        ) from e


def prefetch_checkpoint(repo: str, revision: str, out: str) -> None:
    """Bring one hub revision into the HF cache (no copy in resources/) and record its commit."""
    from grokpath import hub

    sha = hub.prefetch(repo, revision)
    io.write_json(out, {"repo": repo, "revision": revision, "commit_sha": sha})


def prefetch_benchmarks(tasks: Sequence[str], out: str) -> None:
    """Bring every lm-eval task's dataset into the datasets cache; records the document counts."""
    from grokpath import evaluation

    with hub_errors(f"benchmark data of {list(tasks)}"):
        counts = evaluation.prefetch_tasks(list(tasks))
    log.info("prefetched %d benchmark task(s): %s", len(counts), counts)
    io.write_json(out, {"tasks": counts, "versions": tables.versions()})


def prepare_instructions(family: str, source: Mapping[str, Any], out: str) -> None:
    """Freeze a hub instruction dataset as {"prompt", "response"} JSONL for instruction_tune."""
    import datasets

    from grokpath import instructions

    keys = ("name", "split", "revision", "data_files")
    with hub_errors(f"instruction dataset {source['path']} (family {family})"):
        rows = datasets.load_dataset(source["path"], streaming=True, **{k: source[k] for k in keys if k in source})
        examples = instructions.format_rows(
            rows, source["prompt_template"], source["response_template"], f"{source['path']} (family {family})"
        )
    log.info("%s: %d instruction examples from %s", family, len(examples), source["path"])
    io.write_jsonl(out, examples)


# ---------------------------------------------------------------- prepare_samples
def _check_test_set(test_path: str | Path | None, kinds: Sequence[str] = ()) -> None:
    """A domain's test set: not empty, every row with a prompt and well-typed fields
    (evaluation.check_test_set), and the fields of each of `kinds`, the local kinds that read it."""
    if test_path is None:
        return
    from grokpath import evaluation

    items = io.read_jsonl(test_path)
    if not items:
        raise ValueError(f"{test_path}: the test set is empty")
    evaluation.check_test_set(items, test_path, kinds)


def prepare_samples(
    model: str,
    domain: str,
    settings: Mapping[str, Any],
    seed: int,
    max_tokens: int,
    source_dir: str | None,
    checkpoint: str,
    out_samples: str,
    out_validation: str,
    out_test: str,
    too_long: str = "refuse",
) -> None:
    """Freeze the domain's samples and validation texts (with token hashes) and its test set;
    samples over `max_tokens` tokens are refused or cut (`too_long`)."""
    from transformers import AutoTokenizer

    ckpt = Path(checkpoint)
    tok_sha = checkpoints.checkpoint_sha(checkpoints.read_manifest(ckpt, skip_weights=True))  # only the tokenizer
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    field = settings.get("text_field", "text")
    test_path: Path | None = None
    texts: dict[str, list[str]] = {}
    origin: dict[str, Any] = {}
    if settings["source"] == "hf":
        test_path = Path(settings["test_path"]) if "test_path" in settings else None
        _check_test_set(test_path)  # before the datasets are streamed
        # Streamed: only as many rows as the selection needs are read (see hfdata).
        for split, key, n in (
            ("samples", "dataset", settings["n_samples"]),
            ("validation", "validation_dataset", settings["n_validation"]),
        ):
            # long texts are only skipped while streaming when they would be refused anyway
            limit = max_tokens if too_long == "refuse" else None
            texts[split], origin[split] = _stream_domain(settings[key], n, seed, limit, tokenizer)
    else:
        if settings["source"] == "pretrain":
            assert source_dir is not None
            base = Path(source_dir) / domain
            paths = {"samples": base / "train.jsonl", "validation": base / "validation.jsonl"}
            test_path = base / "test.jsonl"
        else:
            paths = {"samples": Path(settings["samples_path"]), "validation": Path(settings["validation_path"])}
            test_path = Path(settings["test_path"]) if "test_path" in settings else None
        _check_test_set(test_path)
        for split, path in paths.items():
            texts[split], origin[split] = samples.read_texts(path, field), str(path)
    for split, n, out in (
        ("samples", settings["n_samples"], out_samples),
        ("validation", settings["n_validation"], out_validation),
    ):
        df = samples.build_manifest(texts[split], tokenizer, model, domain, split, n, seed, max_tokens, too_long)
        tables.write(df, out, tables.SAMPLES_SCHEMA, seed=seed, source=origin[split], tokenizer_checkpoint_sha=tok_sha)
        log.info("%s/%s: %d %s, %d tokens", model, domain, df.height, split, int(df["n_tokens"].sum()))
    with io.atomic_path(out_test) as tmp:
        if test_path is None:
            # No local test set: this domain's benchmarks are lm-eval tasks with their own data.
            Path(tmp).write_text("")
        else:
            shutil.copyfile(test_path, tmp)


def _stream_domain(
    spec: Mapping[str, Any], n: int, seed: int, max_tokens: int | None, tokenizer: Any
) -> tuple[list[str], dict[str, Any]]:
    """`n` texts of a hub dataset (config block `dataset`/`validation_dataset`) and their provenance."""
    from grokpath import hfdata

    keys = (
        "name",
        "data_dir",
        "split",
        "revision",
        "data_files",
        "text_field",
        "keyword",
        "shuffle_buffer",
        "max_scan",
    )
    with hub_errors(f"dataset {spec['path']}"):
        got = hfdata.stream_texts(
            spec["path"],
            n=n,
            seed=seed,
            max_tokens=max_tokens,
            tokenizer=tokenizer,
            **{k: spec[k] for k in keys if k in spec},
        )
    log.info(
        "%s: %d texts from %d rows scanned (%d empty, %d without the keyword, %d over %s tokens)",
        spec["path"],
        len(got.texts),
        got.scanned,
        got.empty,
        got.no_keyword,
        got.too_long,
        max_tokens,
    )
    return got.texts, got.provenance


# ---------------------------------------------------------------- extract_routing
def extract_routing(
    model: str,
    step: str,
    checkpoint: str,
    sample_tables: Mapping[str, str],
    validation_tables: Mapping[str, str],
    routing_out: Mapping[str, str],
    loss_out: Mapping[str, str],
    validation_loss_out: Mapping[str, str],
    routers_out: str,
    settings: Mapping[str, Any],
    seed: int,
) -> None:
    """One checkpoint, every domain: routing weights and loss per sample, validation loss, routers."""
    import torch
    from safetensors.torch import save_file

    from grokpath import extraction

    devices.check(settings["device"], "extraction.device")
    torch.set_num_threads(settings["threads"])
    ckpt = Path(checkpoint)
    splits = [
        split
        for d in sample_tables
        for split in (
            (d, sample_tables[d], routing_out[d], loss_out[d]),
            (d, validation_tables[d], None, validation_loss_out[d]),
        )
    ]
    # A folder whose weights were released (disk-bounded runs) keeps its tokenizer: a tokenizer
    # that disagrees with the sample manifests fails on their first samples here, before the
    # weights are fetched back; every sample is checked below, as it is extracted.
    checkpoints.read_manifest(ckpt, skip_weights=True)
    tokenizer = extraction.load_tokenizer(ckpt)
    for _, split_table, _, _ in splits:
        _checked_ids(
            tokenizer, tables.read_head(split_table, tables.SAMPLES_SCHEMA, _HEAD_CHECK), model, step, settings
        )
    manifest = checkpoints.ensure_weights(ckpt)
    meta = {
        "seed": seed,
        "checkpoint_sha": checkpoints.checkpoint_sha(manifest),
        "revision": manifest["revision"],
        "routing": settings["routing"],
    }
    net = extraction.load_model(ckpt, settings["device"], settings["dtype"])
    meta["architecture"] = extraction.describe_moe(net)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for domain, split_table, routing_path, loss_path in splits:
        manifest_df = tables.read(split_table, tables.SAMPLES_SCHEMA)
        token_ids = _checked_ids(tokenizer, manifest_df, model, step, settings)
        sample_ids = manifest_df["sample_id"].to_list()
        del manifest_df  # its texts are not needed for the pass: memory stays the ids' 4 bytes per token
        batches = extraction.iter_batches(
            net,
            token_ids,
            sample_ids,
            pad_id,
            settings["batch_size"],
            routing=settings["routing"] if routing_path else None,
            desc=f"{model}/{step}/{domain}",
        )
        _write_extraction(batches, model, step, domain, routing_path, loss_path, meta)
    with io.atomic_path(routers_out) as tmp:
        save_file(
            extraction.router_weights(net),
            str(tmp),
            metadata={"checkpoint_sha": meta["checkpoint_sha"], "architecture": json.dumps(meta["architecture"])},
        )


# Samples of each split whose tokens extract_routing checks before fetching released weights back.
_HEAD_CHECK = 64


def _checked_ids(
    tokenizer: Any, manifest: pl.DataFrame, model: str, step: str, settings: Mapping[str, Any]
) -> TokenRows:
    """The token ids of a sample manifest's texts, each checked against its frozen token hash.
    The text and hash columns are read a slice at a time, not copied into lists of every text."""
    from grokpath import extraction  # torch: only the stages that run a model import it

    return extraction.tokenize_checked(
        tokenizer,
        manifest["text"],
        manifest["sample_id"].to_list(),
        manifest["token_sha256"],
        f"{model}/{step}",
        truncate_to=settings["max_tokens"] if settings.get("too_long") == "truncate" else None,
    )


def _routing_rows(b: Any, moe_layers: list[int]) -> dict[str, np.ndarray]:
    """One batch's ROUTING_SCHEMA rows (sample-major, then layer; model, step and domain are the
    writer's constants) as NumPy arrays: no Python object per row, no Arrow call per batch."""
    n, n_layers, k = b.probs.shape
    return {
        "sample_id": np.repeat(np.asarray(b.sample_ids, dtype=object), n_layers),
        # the model's own layer index (DeepSeek's dense first layers have no row)
        "layer": np.tile(np.asarray(moe_layers, dtype=np.int16), n),
        "n_tokens": np.repeat(np.asarray(b.n_tokens, dtype=np.int32), n_layers),
        "probs": b.probs.reshape(n * n_layers, k).astype(np.float32, copy=False),
    }


def _write_extraction(
    batches: Any,
    model: str,
    step: str,
    domain: str,
    routing_path: str | None,
    loss_path: str,
    meta: dict[str, Any],
) -> None:
    sample_ids: list[str] = []
    losses: list[np.ndarray] = [np.zeros(0, np.float64)]  # per batch: no Python float per sample
    n_tokens: list[np.ndarray] = [np.zeros(0, np.int32)]
    constants = {"model": model, "step": step, "domain": domain}
    sink = (
        tables.StreamWriter(routing_path, tables.ROUTING_SCHEMA, constants, **meta) if routing_path else nullcontext()
    )
    with sink as writer:
        for b in batches:
            sample_ids += b.sample_ids
            losses.append(b.loss)
            n_tokens.append(b.n_tokens)
            if writer is not None:
                writer.write(_routing_rows(b, meta["architecture"]["moe_layers"]))
    # sorted by sample id (code point order, which is UTF-8 byte order: polars' order too)
    ids = np.asarray(sample_ids, dtype=object)
    order = np.argsort(ids, kind="stable")
    # Built in its schema, so `tables.write` casts nothing: right after a model pass, a split of
    # 300 samples writes its loss table in 2.4 ms instead of 2.6 (a dict of arrays, then the cast)
    loss_table = tables.build(
        {
            **constants,
            "sample_id": ids[order],
            "loss": np.concatenate(losses)[order],
            "n_tokens": np.concatenate(n_tokens)[order],
        },
        tables.LOSS_SCHEMA,
    )
    tables.write(loss_table, loss_path, tables.LOSS_SCHEMA, **meta)


# ---------------------------------------------------------------- instruction_tune
def instruction_tune(
    model: str,
    step: str,
    family: str,
    checkpoint: str,
    dataset: str,
    settings: Mapping[str, Any],
    seed: int,
    dest: str,
) -> None:
    """LoRA-tune one checkpoint on one family's instruction data; save the merged model in `dest`."""
    import torch

    from grokpath import extraction, tuning

    devices.check(settings["device"], "instruction_tune.device")
    torch.set_num_threads(1)
    ckpt = Path(checkpoint)
    examples = tuning.read_examples(io.read_jsonl(dataset), dataset)  # before weights are fetched back
    base = checkpoints.ensure_weights(ckpt)
    if settings["max_examples"] and len(examples) > settings["max_examples"]:
        keep = samples.select(examples, settings["max_examples"], seed, f"instruction data {family}")
        examples = [examples[i] for i in keep]
    net, tokenizer = extraction.load_checkpoint(ckpt, settings["device"], settings["dtype"])
    merged, losses = tuning.lora_finetune(net, tokenizer, examples, settings, seed)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    files = checkpoints.file_entries(out)
    io.write_json(  # last: a folder without its manifest is incomplete
        out / checkpoints.MANIFEST,
        {
            "source": "instruction_tune",
            "family": family,
            "path": str(ckpt),
            "revision": base["revision"],
            "base_checkpoint_sha": checkpoints.checkpoint_sha(base),
            "commit_sha": None,
            "content_hash": checkpoints.content_hash(files),
            "files": files,
            "dataset": dataset,
            "dataset_sha256": checkpoints.sha256_file(Path(dataset)),
            "n_examples": len(examples),
            "epoch_losses": losses,
            "settings": dict(settings),
            "seed": seed,
        },
    )


# ---------------------------------------------------------------- run_lm_eval
def run_lm_eval(
    model: str,
    step: str,
    checkpoint: str,
    tasks: Sequence[Mapping[str, Any]],
    test_sets: Mapping[str, str],
    json_out: Mapping[str, str],
    items_out: Mapping[str, str],
    cache: str,
    settings: Mapping[str, Any],
    seed: int,
    tuned: Mapping[str, str] | None = None,
    family_of: Mapping[str, str] | None = None,
) -> None:
    """Every configured benchmark on one checkpoint: lm-eval's results and per-item correctness.

    With `tuned` ({family: folder of a merged LoRA model}), each task is evaluated on the tuned
    model of its domain's family (`family_of`), each with a response cache of its own.
    """
    import torch

    from grokpath import evaluation, extraction

    devices.check(settings["device"], "evaluation.device")
    specs = [evaluation.TaskSpec(**t) for t in tasks]
    evaluation.check_task_names([s.task for s in specs])
    local_kinds: dict[str, list[str]] = {}  # per domain: each test set is read once
    for spec in specs:
        if spec.task in evaluation.LOCAL_KINDS:
            local_kinds.setdefault(spec.domain, []).append(spec.task)
    for domain, kinds in local_kinds.items():
        _check_test_set(test_sets[domain], kinds)
    base = checkpoints.ensure_weights(checkpoint)
    by_model: dict[str, list[evaluation.TaskSpec]] = {}
    for spec in specs:
        family = (family_of or {}).get(spec.domain, spec.domain)
        by_model.setdefault(str(Path(tuned[family])) if tuned else str(Path(checkpoint)), []).append(spec)
    for folder, group in by_model.items():
        torch.manual_seed(seed)
        evaluated = base if folder == str(Path(checkpoint)) else checkpoints.read_manifest(folder)
        net, tokenizer = extraction.load_checkpoint(folder, settings["device"], settings["dtype"])
        sha = checkpoints.checkpoint_sha(evaluated)
        # lm-eval's response cache is keyed by the request alone: one per evaluated model and
        # dtype, so that a checkpoint retrained, re-resolved or re-tuned under the same id (or
        # run in another dtype) never gets another model's answers back.
        suffix = (f"_{evaluated['family']}" if tuned else "") + f"-{sha[:16]}-{settings['dtype']}"
        # offline, a benchmark's dataset that is not in the datasets cache: say what to prefetch
        with hub_errors(f"benchmark data of {[s.task for s in group]}", network_only=True):
            results = evaluation.evaluate(
                net,
                tokenizer,
                group,
                dict(test_sets),
                f"{cache}{suffix}",
                settings["batch_size"],
                settings["device"],
                seed,
                allow_code_execution=settings.get("allow_code_execution", False),
            )
        for spec in group:
            res = results[spec.name]
            rows = [
                {"model": model, "step": step, "domain": spec.domain, "task": spec.name, **row}
                for row in evaluation.item_rows(res.pop("samples"))
            ]
            tables.write(rows, items_out[spec.name], tables.EVAL_ITEMS_SCHEMA, seed=seed, checkpoint_sha=sha)
            io.write_json(
                json_out[spec.name],
                {
                    "model": model,
                    "step": step,
                    "domain": spec.domain,
                    "task": spec.name,
                    "lm_eval_task": spec.task,
                    "num_fewshot": spec.num_fewshot,
                    "limit": spec.limit,
                    "revision": base["revision"],
                    "checkpoint_sha": checkpoints.checkpoint_sha(base),
                    "evaluated_model_sha": sha,
                    "instruction_tuned": evaluated.get("family"),
                    "seed": seed,
                    "versions": tables.versions(),
                    **res,
                },
            )


def _stack_checkpoints(
    paths: Sequence[str], schema: Any, key: str, column: str, checkpoint_ids: Sequence[str], what: str
) -> tuple[pl.DataFrame, np.ndarray]:
    """The first checkpoint's table and `column` as [rows, checkpoints]; every table must cover the same keys."""
    frames = [tables.read(p, schema).sort(key) for p in paths]
    for ckpt, f in zip(checkpoint_ids, frames, strict=True):
        if not f[key].equals(frames[0][key]):
            raise ValueError(f"{what}: the table of checkpoint {ckpt} covers other {key}s than the first checkpoint's")
    return frames[0], np.stack([f[column].to_numpy() for f in frames], axis=1)


# ---------------------------------------------------------------- decontaminate
def decontaminate(
    model: str,
    task: str,
    checkpoint: str,
    items_table: str,
    settings: Mapping[str, Any],
    device: str,
    dtype: str,
    out: str,
) -> None:
    """Min-K%++ score of every item of one benchmark (prompt + gold target) under one checkpoint."""
    import torch

    from grokpath import decontamination, extraction

    devices.check(device, "extraction.device")  # decontamination scores with the extraction's model settings
    torch.set_num_threads(1)
    items = tables.read(items_table, tables.EVAL_ITEMS_SCHEMA).sort("doc_id")
    manifest = checkpoints.ensure_weights(checkpoint)
    net, tokenizer = extraction.load_checkpoint(checkpoint, device, dtype)
    # The text scored is the prompt, a space, then the gold target (decontamination.item_text).
    _, record = decontamination.decontaminate(
        items.to_dicts(),
        net,
        tokenizer,
        drop_fraction=settings["drop_fraction"],
        k=settings["k"],
        batch_size=settings["batch_size"],
        answer_field="target",
    )
    df = pl.concat(
        [items.select("model", "step", "domain", "task", "doc_id", "item_id"), record.drop("item_id")], how="horizontal"
    )
    tables.write(
        df.drop("item_index"),
        out,
        tables.DECONTAMINATION_SCHEMA,
        checkpoint_sha=checkpoints.checkpoint_sha(manifest),
        seed=tables.read_metadata(items_table).get("seed"),
        **settings,
    )
    log.info("%s/%s: %d of %d items dropped", model, task, int(df["dropped"].sum()), df.height)


def drop_contaminated(items_table: str, scores_table: str, out: str) -> None:
    """One checkpoint's per-item table without the items decontamination dropped."""
    items = tables.read(items_table, tables.EVAL_ITEMS_SCHEMA)
    scores = tables.read(scores_table, tables.DECONTAMINATION_SCHEMA)
    unknown = set(items["item_id"]) - set(scores["item_id"])
    if unknown:
        raise ValueError(
            f"{items_table}: {len(unknown)} item(s) have no decontamination score in {scores_table} "
            f"(e.g. {sorted(unknown)[:3]}); every checkpoint must evaluate the same items"
        )
    dropped = scores.filter(pl.col("dropped"))["item_id"]
    meta = tables.read_metadata(items_table)
    kept = items.filter(~pl.col("item_id").is_in(dropped.implode()))
    tables.write(
        kept,
        out,
        tables.EVAL_ITEMS_SCHEMA,
        **{k: v for k, v in meta.items() if k != "versions"},
        decontamination=scores_table,
    )


# ---------------------------------------------------------------- assign_memorization
def assign_memorization(
    model: str,
    domain: str,
    checkpoint_ids: Sequence[str],
    checkpoint_steps: Sequence[int],
    loss_tables: Sequence[str],
    settings: Mapping[str, Any],
    seed: int,
    out: str,
) -> None:
    """t*_i per sample from the loss trajectories over every checkpoint (in training order)."""
    first, loss = _stack_checkpoints(
        loss_tables, tables.LOSS_SCHEMA, "sample_id", "loss", checkpoint_ids, f"{model}/{domain}"
    )
    sample_ids = first["sample_id"]
    eps_given = settings["eps"].get(domain)
    if eps_given is None:
        choice = memorization.search_eps(
            loss, settings["delta"], tuple(settings["target_fraction"]), settings["eps_grid"]
        )
        eps = choice.eps
    else:
        eps = float(eps_given)
    index = memorization.memorized_index(loss, eps, settings["delta"])
    log.info(
        "%s/%s: eps=%.2f, %.1f%% memorized before the last checkpoint",
        model,
        domain,
        eps,
        100 * memorization.fraction_before_last(index, loss.shape[1]),
    )
    df = pl.DataFrame(
        {
            "model": model,
            "domain": domain,
            "sample_id": sample_ids,
            "memorized_at": [checkpoint_ids[i] if i >= 0 else None for i in index],
            "memorized_step": [int(checkpoint_steps[i]) if i >= 0 else None for i in index],
            "eps": eps,
            "delta": float(settings["delta"]),
            "eps_searched": eps_given is None,
        },
        schema_overrides={"memorized_at": pl.String, "memorized_step": pl.Int64},
    )
    meta = tables.provenance(loss_tables) | {"seed": seed, "checkpoints": list(checkpoint_ids)}
    tables.write(df, out, tables.GROUPS_SCHEMA, **meta)


# ---------------------------------------------------------------- compute_pathways
def load_routing(path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sample ids, layer indices, weights [N, L, K]) from a routing table."""
    table = tables.read_arrow(path).sort_by([("sample_id", "ascending"), ("layer", "ascending")])
    layers = np.unique(table.column("layer").to_numpy())
    n_layers = len(layers)
    flat = table.column("probs").combine_chunks()
    k = len(flat[0]) if len(flat) else 0
    weights = flat.flatten().to_numpy().reshape(-1, n_layers, k)
    ids = table.column("sample_id").to_pylist()[::n_layers]
    return ids, layers, weights


def load_routers(path: str, layers: np.ndarray) -> np.ndarray:
    from safetensors.numpy import load_file

    mats = load_file(path)
    missing = [int(i) for i in layers if f"layer{i}" not in mats]
    if missing:
        raise ValueError(f"{path}: no router weights for MoE layers {missing}")
    return np.stack([mats[f"layer{i}"] for i in layers])


def compute_pathways(model: str, step: str, domain: str, routing: str, routers: str, tau: float, out: str) -> None:
    ids, layers, weights = load_routing(routing)
    serialized = [pathways.pathway(w, tau) for w in weights]
    cons, mean_cos = pathways.consistency(weights, load_routers(routers, layers))
    table = tables.build(
        {
            "model": model,
            "step": step,
            "domain": domain,
            "sample_id": ids,
            "pathway": [s for s, _ in serialized],
            "experts_per_layer": [n for _, n in serialized],
            "consistency": cons,
            "mean_cosine": mean_cos,
            "routing_entropy": pathways.routing_entropy(weights),
            "tau": float(tau),
        },
        tables.PATHWAYS_SCHEMA,
    )
    tables.write(table, out, tables.PATHWAYS_SCHEMA, **tables.read_metadata(routing) | {"tau": tau})


# ---------------------------------------------------------------- pathway_distance
def memorized_at(groups_table: str) -> dict[str, str | None]:
    """{sample id: the checkpoint it was memorized at, or None} of a groups table, in its order."""
    groups = tables.read_arrow(groups_table, tables.GROUPS_SCHEMA)
    return dict(zip(groups.column("sample_id").to_pylist(), groups.column("memorized_at").to_pylist(), strict=True))


def _groups(memorized: Mapping[str, str | None], ordered_ids: Sequence[str]) -> dict[str, list[str]]:
    """Memorization groups in training order, then "all"; members in the groups table's order."""
    members: dict[str, list[str]] = {}
    for sample, ckpt in memorized.items():
        if ckpt is not None:
            members.setdefault(ckpt, []).append(sample)
    out = {group_label(ckpt): members[ckpt] for ckpt in ordered_ids if ckpt in members}
    out[GROUP_ALL] = list(memorized)
    return out


def pathway_distance(
    model: str,
    step: str,
    domain: str,
    pathways_table: str,
    groups_table: str,
    checkpoint_ids: Sequence[str],
    settings: Mapping[str, Any],
    seed: int,
    out: str,
) -> None:
    paths = tables.read_arrow(pathways_table, tables.PATHWAYS_SCHEMA)
    by_id = dict(zip(paths.column("sample_id").to_pylist(), paths.column("pathway").to_pylist(), strict=True))
    memorized = memorized_at(groups_table)
    rows = group_distances(model, step, domain, by_id, memorized, checkpoint_ids, settings, seed)
    sha = tables.read_metadata(pathways_table)["checkpoint_sha"]
    tables.write(rows, out, tables.DISTANCE_SCHEMA, seed=seed, checkpoint_sha=sha, max_pairs=settings["max_pairs"])


def group_distances(
    model: str,
    step: str,
    domain: str,
    by_id: Mapping[str, str],
    memorized: Mapping[str, str | None],
    checkpoint_ids: Sequence[str],
    settings: Mapping[str, Any],
    seed: int,
    layerwise: bool | None = None,
) -> list[dict[str, Any]]:
    """DISTANCE_SCHEMA rows: mean pairwise distance per memorization group and "all" (and per
    layer); `memorized` is `memorized_at` of the domain's groups table."""
    if set(memorized) != set(by_id):
        raise ValueError(f"{model}/{step}/{domain}: pathways and memorization groups cover different samples")
    level = settings["level"]
    n_layers = len(next(iter(by_id.values())).split(pathways.LAYER_SEP))
    per_layer = settings["layerwise"] if layerwise is None else layerwise
    rows = []
    for name, members in _groups(memorized, checkpoint_ids).items():
        strings = [by_id[s] for s in members]
        for layer in [None, *(range(n_layers) if per_layer else [])]:
            encoded = [
                distance.encode(p, level) if layer is None else distance.layer_strings(p, layer, level) for p in strings
            ]
            # The seed leaves out the step: a group keeps its members at every checkpoint, so the
            # same pairs are compared at every checkpoint and the trend carries no resampling noise.
            used, mean = distance.mean_pairwise(
                encoded, settings["max_pairs"], seed=zlib.crc32(f"{seed}/{domain}/{name}".encode())
            )
            rows.append(
                {
                    "model": model,
                    "step": step,
                    "domain": domain,
                    "group": name,
                    "layer": layer,
                    "n_samples": len(members),
                    "n_pairs": used,
                    "mean_distance": mean,
                    "level": level,
                }
            )
    return rows


# ---------------------------------------------------------------- cross_domain_distance
def cross_domain_distance(
    model: str,
    step: str,
    pathway_tables: Mapping[str, str],
    pairs: Sequence[Sequence[str]],
    settings: Mapping[str, Any],
    seed: int,
    out: str,
) -> None:
    """The cross-domain control (paper Fig. 12): per domain pair, the mean distance between the
    two domains' samples at one checkpoint; each pair's subsample (above `max_pairs`) is the same
    at every checkpoint."""
    level = settings["level"]
    encoded = {
        d: [distance.encode(p, level) for p in tables.read_arrow(path, tables.PATHWAYS_SCHEMA)["pathway"].to_pylist()]
        for d, path in pathway_tables.items()
    }
    rows = []
    for a, b in pairs:
        used, mean = distance.mean_cross(
            encoded[a], encoded[b], settings["max_pairs"], seed=zlib.crc32(f"{seed}/{a}x{b}".encode())
        )
        rows.append(
            {
                "model": model,
                "step": step,
                "domain_a": a,
                "domain_b": b,
                "n_pairs": used,
                "mean_distance": mean,
                "level": level,
            }
        )
    meta = tables.provenance(list(pathway_tables.values())) | {"seed": seed, "max_pairs": settings["max_pairs"]}
    tables.write(rows, out, tables.CROSS_DISTANCE_SCHEMA, **meta)


# ---------------------------------------------------------------- entropy_distance
def entropy_distance(
    model: str,
    step: str,
    pathway_tables: Sequence[str],
    level: str,
    partners: int | None,
    seed: int,
    out: str,
) -> None:
    """Per sample of one checkpoint: its routing entropy next to its mean pathway distance to the
    other samples of its domain (paper Fig. 13), to a seeded set of `partners` of them or all."""
    frames = []
    for path in pathway_tables:
        paths = tables.read(path, tables.PATHWAYS_SCHEMA)
        domain = paths["domain"][0]
        means, used = distance.per_sample_mean(
            [distance.encode(p, level) for p in paths["pathway"]],
            partners,
            seed=zlib.crc32(f"{seed}/{domain}/entropy".encode()),
        )
        frames.append(
            paths.select("model", "step", "domain", "sample_id", "routing_entropy").with_columns(
                mean_distance=pl.Series(means), n_partners=pl.Series(used), level=pl.lit(level)
            )
        )
    meta = tables.provenance(pathway_tables) | {"seed": seed, "partners": partners}
    tables.write(pl.concat(frames), out, tables.ENTROPY_DISTANCE_SCHEMA, **meta)


# ---------------------------------------------------------------- ablate_tau
def ablate_tau(
    model: str,
    step: str,
    domain: str,
    routing: str,
    groups_table: str,
    checkpoint_ids: Sequence[str],
    taus: Sequence[float],
    settings: Mapping[str, Any],
    seed: int,
    out: str,
) -> None:
    """Whole-pathway distances per group at every tau of the ablation (paper Fig. 9)."""
    ids, _, weights = load_routing(routing)
    memorized = memorized_at(groups_table)
    rows = []
    for tau in taus:
        by_id = {sid: pathways.pathway(w, tau)[0] for sid, w in zip(ids, weights, strict=True)}
        for row in group_distances(
            model, step, domain, by_id, memorized, checkpoint_ids, settings, seed, layerwise=False
        ):
            rows.append({**row, "tau": float(tau)})
    sha = tables.read_metadata(routing)["checkpoint_sha"]
    tables.write(rows, out, tables.TAU_ABLATION_SCHEMA, seed=seed, checkpoint_sha=sha)


# ---------------------------------------------------------------- ablate_memorization
def ablate_memorization(
    model: str,
    domain: str,
    checkpoint_ids: Sequence[str],
    loss_tables: Sequence[str],
    pathway_tables: Sequence[str],
    groups_table: str,
    eps_factors: Sequence[float],
    deltas: Sequence[float],
    settings: Mapping[str, Any],
    seed: int,
    out: str,
) -> None:
    """The memorization thresholds' ablations (paper Figs. 10 and 11): the samples memorized
    before the last checkpoint under each eps (a factor times the domain's eps, delta as chosen)
    and each delta (eps as chosen), and their mean pathway distance at every checkpoint. A
    value's pairs are the same at every checkpoint (seeded by value, not by step)."""
    first, loss = _stack_checkpoints(
        loss_tables, tables.LOSS_SCHEMA, "sample_id", "loss", checkpoint_ids, f"{model}/{domain}"
    )
    ids = first["sample_id"].to_list()
    chosen = tables.read(groups_table, tables.GROUPS_SCHEMA)
    eps0, delta0 = float(chosen["eps"][0]), float(chosen["delta"][0])
    by_step = []
    for path in pathway_tables:
        paths = tables.read(path, tables.PATHWAYS_SCHEMA)
        by_step.append(dict(zip(paths["sample_id"].to_list(), paths["pathway"].to_list(), strict=True)))
    variants = [("eps", f, eps0 * f, delta0) for f in eps_factors] + [("delta", d, eps0, d) for d in deltas]
    rows = []
    for parameter, value, eps, delta in variants:
        early = memorization.before_last(memorization.memorized_index(loss, eps, delta), len(checkpoint_ids))
        members = [sid for sid, keep in zip(ids, early, strict=True) if keep]
        for step, by_id in zip(checkpoint_ids, by_step, strict=True):
            strings = [distance.encode(by_id[sid], settings["level"]) for sid in members]
            used, mean = distance.mean_pairwise(
                strings, settings["max_pairs"], seed=zlib.crc32(f"{seed}/{domain}/{parameter}={value}".encode())
            )
            rows.append(
                {
                    "model": model,
                    "step": step,
                    "domain": domain,
                    "parameter": parameter,
                    "value": float(value),
                    "eps": float(eps),
                    "delta": float(delta),
                    "n_memorized": len(members),
                    "n_pairs": used,
                    "mean_distance": mean,
                    "level": settings["level"],
                }
            )
    meta = tables.provenance([*loss_tables, *pathway_tables]) | {"seed": seed, "checkpoints": list(checkpoint_ids)}
    tables.write(rows, out, tables.MEMORIZATION_ABLATION_SCHEMA, **meta)


# ---------------------------------------------------------------- aggregate_monitors
def aggregate_monitors(
    model_steps: Mapping[str, Mapping[str, int]],
    distance_tables: Sequence[str],
    pathway_tables: Sequence[str],
    loss_tables: Sequence[str],
    validation_tables: Sequence[str],
    group_tables: Sequence[str],
    out: str,
) -> None:
    """Per (model, step, domain, group): mean distance, consistency, training loss; validation loss."""
    dist = pl.concat([tables.read(p, tables.DISTANCE_SCHEMA) for p in distance_tables])
    dist = dist.filter(pl.col("layer").is_null()).select(
        "model", "step", "domain", "group", "n_samples", "mean_distance"
    )
    groups = pl.concat([tables.read(p, tables.GROUPS_SCHEMA) for p in group_tables]).select(
        "model",
        "domain",
        "sample_id",
        group=pl.when(pl.col("memorized_at").is_not_null()).then(pl.lit("pretrain@") + pl.col("memorized_at")),
    )
    # Each sample counts in its memorization group (if any) and in "all".
    membership = pl.concat([groups.filter(pl.col("group").is_not_null()), groups.with_columns(group=pl.lit(GROUP_ALL))])
    per_sample = (
        pl.concat([tables.read(p, tables.PATHWAYS_SCHEMA) for p in pathway_tables])
        .select("model", "step", "domain", "sample_id", "consistency")
        .join(
            pl.concat([tables.read(p, tables.LOSS_SCHEMA) for p in loss_tables]).select(
                "model", "step", "domain", "sample_id", "loss"
            ),
            on=["model", "step", "domain", "sample_id"],
            how="full",
            coalesce=True,
            validate="1:1",
        )
        .join(membership, on=["model", "domain", "sample_id"])
    )
    means = per_sample.group_by("model", "step", "domain", "group").agg(
        mean_consistency=pl.col("consistency").mean(), mean_training_loss=pl.col("loss").mean()
    )
    val = (
        pl.concat([tables.read(p, tables.LOSS_SCHEMA) for p in validation_tables])
        .group_by("model", "step", "domain")
        .agg(validation_loss=pl.col("loss").mean())
    )
    step_numbers = _step_table(model_steps)
    monitors = (
        dist.join(means, on=["model", "step", "domain", "group"], how="left", validate="1:1")
        .join(val, on=["model", "step", "domain"], how="left")
        .join(step_numbers, on=["model", "step"], how="left")
        .sort("model", "domain", "step_number", "group")
    )
    tables.write(monitors, out, tables.MONITORS_SCHEMA, **tables.provenance([*pathway_tables, *loss_tables]))


# ---------------------------------------------------------------- assign_test_groups
def test_group_label(checkpoint_id: str) -> str:
    return f"test@{checkpoint_id}"


def assign_test_groups(
    model: str,
    task: str,
    checkpoint_ids: Sequence[str],
    checkpoint_steps: Sequence[int],
    item_tables: Sequence[str],
    settings: Mapping[str, Any],
    out: str,
) -> None:
    """t# per test item from its 0/1 correctness over every checkpoint (in training order)."""
    from grokpath import testgroups

    first, correct = _stack_checkpoints(
        item_tables, tables.EVAL_ITEMS_SCHEMA, "item_id", "correct", checkpoint_ids, f"{model}/{task}"
    )
    items = first["item_id"]
    index = testgroups.learned_index(correct, settings["min_accuracy"], settings["max_errors"])
    df = pl.DataFrame(
        {
            "model": model,
            "domain": first["domain"][0],
            "task": task,
            "item_id": items,
            "learned_at": [checkpoint_ids[i] if i >= 0 else None for i in index],
            "learned_step": [int(checkpoint_steps[i]) if i >= 0 else None for i in index],
        },
        schema_overrides={"learned_at": pl.String, "learned_step": pl.Int64},
    )
    tables.write(
        df,
        out,
        tables.TEST_GROUPS_SCHEMA,
        **tables.provenance(item_tables),
        checkpoints=list(checkpoint_ids),
        **settings,
    )


# ---------------------------------------------------------------- match_groups
def match_groups(
    model: str,
    task: str,
    train_groups_table: str,
    samples_table: str,
    test_groups_table: str,
    items_table: str,
    checkpoint_ids: Sequence[str],
    checkpoint_steps: Sequence[int],
    out: str,
) -> None:
    """Pair memorization groups with test groups by embedding similarity (Hungarian); delay = t# - t*."""
    from grokpath import embeddings, testgroups

    step_of = dict(zip(checkpoint_ids, checkpoint_steps, strict=True))
    train = tables.read(train_groups_table, tables.GROUPS_SCHEMA).drop_nulls("memorized_at")
    texts = dict(tables.read(samples_table, tables.SAMPLES_SCHEMA).select("sample_id", "text").iter_rows())
    test = tables.read(test_groups_table, tables.TEST_GROUPS_SCHEMA).drop_nulls("learned_at")
    prompts = dict(tables.read(items_table, tables.EVAL_ITEMS_SCHEMA).select("item_id", "prompt").iter_rows())
    domain = test["domain"][0] if test.height else train["domain"][0] if train.height else ""
    train_ids = [c for c in checkpoint_ids if (train["memorized_at"] == c).any()]
    test_ids = [c for c in checkpoint_ids if (test["learned_at"] == c).any()]
    train_members = [train.filter(pl.col("memorized_at") == c)["sample_id"].to_list() for c in train_ids]
    test_members = [test.filter(pl.col("learned_at") == c)["item_id"].to_list() for c in test_ids]
    rows = []
    if train_ids and test_ids:
        sim = testgroups.group_similarity(
            [embeddings.embed([texts[s] for s in m]) for m in train_members],
            [embeddings.embed([prompts[i] for i in m]) for m in test_members],
        )
        labels_train = [group_label(c) for c in train_ids]
        labels_test = [test_group_label(c) for c in test_ids]
        for m in testgroups.match_groups(labels_train, labels_test, sim):
            a, b = labels_train.index(m.train_group), labels_test.index(m.test_group)
            rows.append(
                {
                    "model": model,
                    "domain": domain,
                    "task": task,
                    "train_group": m.train_group,
                    "test_group": m.test_group,
                    "train_step": step_of[train_ids[a]],
                    "test_step": step_of[test_ids[b]],
                    "delay": step_of[test_ids[b]] - step_of[train_ids[a]],
                    "similarity": m.similarity,
                    "n_train": len(train_members[a]),
                    "n_test": len(test_members[b]),
                }
            )
    log.info("%s/%s: %d train groups, %d test groups, %d pairs", model, task, len(train_ids), len(test_ids), len(rows))
    tables.write(
        rows,
        out,
        tables.MATCHES_SCHEMA,
        **tables.provenance([train_groups_table, test_groups_table]),
        embedding_model="all-MiniLM-L6-v2",
    )


# ---------------------------------------------------------------- correlate
def _step_table(model_steps: Mapping[str, Mapping[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"model": m, "step": s, "step_number": n} for m, steps in model_steps.items() for s, n in steps.items()],
        schema={"model": pl.String, "step": pl.String, "step_number": pl.Int64},
    )


def task_accuracy(item_tables: Sequence[str]) -> pl.DataFrame:
    """Benchmark accuracy per (model, step, domain, task) from the per-item tables."""
    return (
        pl.concat([tables.read(p, tables.EVAL_ITEMS_SCHEMA) for p in item_tables])
        .group_by("model", "step", "domain", "task")
        .agg(accuracy=pl.col("correct").cast(pl.Float64).mean())
    )


def monitors_for_correlation(monitors: pl.DataFrame, moving_average: int) -> pl.DataFrame:
    """The "all" group's monitors with the training-loss moving average over checkpoints."""
    return (
        monitors.filter(pl.col("group") == GROUP_ALL)
        .sort("model", "domain", "step_number")
        .with_columns(
            training_loss_ma=pl.col("mean_training_loss")
            .rolling_mean(moving_average, min_samples=1)
            .over("model", "domain")
        )
    )


MONITOR_COLUMNS = {
    "pathway_distance": "mean_distance",
    "pathway_consistency": "mean_consistency",
    "training_loss": "mean_training_loss",
    "training_loss_ma": "training_loss_ma",
    "validation_loss": "validation_loss",
}


def correlate(
    monitors_table: str,
    item_tables: Sequence[str],
    settings: Mapping[str, Any],
    seed: int,
    out_parquet: str,
    out_csv: str,
) -> None:
    """Per (model, domain, task) x monitor: Pearson/Spearman with p-values and bootstrap intervals."""
    from grokpath import correlation

    monitors = monitors_for_correlation(tables.read(monitors_table, tables.MONITORS_SCHEMA), settings["moving_average"])
    acc = task_accuracy(item_tables)
    joined = acc.join(monitors, on=["model", "step", "domain"], how="inner").sort("model", "task", "step_number")
    rows = []
    for (model, domain, task), df in joined.group_by("model", "domain", "task", maintain_order=True):
        steps = df["step"].to_list()
        if settings["window"] == "rise":
            keep = correlation.rise_window(df["accuracy"].to_list(), settings["min_points"])
        elif settings["window"] == "all":
            keep = list(range(df.height))
        else:
            wanted = set(settings["checkpoints"])
            keep = [i for i, s in enumerate(steps) if s in wanted]
        window = df[keep]
        for monitor, column in MONITOR_COLUMNS.items():
            c = correlation.correlate(
                window["accuracy"].to_list(), window[column].to_list(), settings["bootstrap"], seed
            )
            rows.append(
                {
                    "model": model,
                    "domain": domain,
                    "task": task,
                    "monitor": monitor,
                    "pearson_r": c.pearson_r,
                    "pearson_p": c.pearson_p,
                    "pearson_ci_low": c.pearson_ci[0],
                    "pearson_ci_high": c.pearson_ci[1],
                    "spearman_rho": c.spearman_rho,
                    "spearman_p": c.spearman_p,
                    "spearman_ci_low": c.spearman_ci[0],
                    "spearman_ci_high": c.spearman_ci[1],
                    "n_checkpoints": c.n,
                    "checkpoints": ",".join(window["step"].to_list()),
                    "window": settings["window"],
                }
            )
    table = tables.frame(rows, tables.CORRELATIONS_SCHEMA)
    tables.write(
        table,
        out_parquet,
        tables.CORRELATIONS_SCHEMA,
        **(tables.provenance([monitors_table, *item_tables]) | {"seed": seed, "window": settings["window"]}),
    )
    with io.atomic_path(out_csv) as tmp:
        table.write_csv(tmp)


# ---------------------------------------------------------------- figures
# Each figure covers one model; `steps` maps its checkpoint ids to training steps.
def _step_numbers(model: str, steps: Mapping[str, int]) -> pl.DataFrame:
    return _step_table({model: steps})


def _accuracy(model: str, item_tables: Sequence[str], steps: Mapping[str, int]) -> pl.DataFrame:
    return task_accuracy(item_tables).join(_step_numbers(model, steps), on=["model", "step"])


def _monitors(model: str, monitors_table: str) -> pl.DataFrame:
    return tables.read(monitors_table, tables.MONITORS_SCHEMA).filter(pl.col("model") == model)


def plot_trajectory(trajectory: str, summary: str, png: str, pdf: str) -> None:
    from grokpath import figures

    figures.trajectory(
        tables.read(trajectory, tables.TRAJECTORY_SCHEMA), json.loads(Path(summary).read_text()), png, pdf
    )


def plot_live_monitors(live: str, trajectory: str, png: str, pdf: str) -> None:
    from grokpath import figures

    figures.live_monitors(
        tables.read(live, tables.LIVE_MONITORS_SCHEMA), tables.read(trajectory, tables.TRAJECTORY_SCHEMA), png, pdf
    )


def plot_memorized_counts(
    model: str, steps: Mapping[str, int], group_tables: Sequence[str], item_tables: Sequence[str], png: str, pdf: str
) -> None:
    from grokpath import figures

    groups = pl.concat([tables.read(p, tables.GROUPS_SCHEMA) for p in group_tables])
    figures.memorized_counts(groups, _accuracy(model, item_tables, steps), dict(steps), png, pdf)


def plot_monitor_by_group(
    model: str, steps: Mapping[str, int], monitors_table: str, monitor: str, png: str, pdf: str, level: str = "char"
) -> None:
    """Fig 4 (monitor "pathway_distance") or Fig 6 ("pathway_consistency") per memorization group;
    `level`: the distance level (the distance's unit)."""
    from grokpath import figures

    monitors = _monitors(model, monitors_table)
    if monitor == "pathway_distance":
        figures.monitor_by_group(
            monitors,
            dict(steps),
            "mean_distance",
            f"mean pathway edit distance ({figures.distance_unit(level)})",
            "Pathway distance within memorization groups, with group training loss (paper Fig. 4)",
            png,
            pdf,
            with_loss=True,
            fit_after_t=True,
        )
    elif monitor == "pathway_consistency":
        figures.monitor_by_group(
            monitors,
            dict(steps),
            "mean_consistency",
            "mean pathway consistency C (unitless)",
            "Pathway consistency of memorization groups (paper Fig. 6)",
            png,
            pdf,
            fit_after_t=True,
        )
    else:
        raise ValueError(f"monitor must be pathway_distance or pathway_consistency, got {monitor!r}")


def plot_layerwise_distance(
    model: str, steps: Mapping[str, int], distance_tables: Sequence[str], png: str, pdf: str
) -> None:
    from grokpath import figures

    dist = pl.concat([tables.read(p, tables.DISTANCE_SCHEMA) for p in distance_tables])
    figures.layerwise_distance(dist.join(_step_numbers(model, steps), on=["model", "step"]), png, pdf)


def plot_accuracy_vs_monitors(
    model: str,
    steps: Mapping[str, int],
    monitors_table: str,
    item_tables: Sequence[str],
    moving_average: int,
    png: str,
    pdf: str,
    level: str = "char",
) -> None:
    from grokpath import figures

    monitors = monitors_for_correlation(_monitors(model, monitors_table), moving_average)
    joined = _accuracy(model, item_tables, steps).join(monitors.drop("step_number"), on=["model", "step", "domain"])
    figures.accuracy_vs_monitors(joined, dict(MONITOR_COLUMNS), png, pdf, level)


def plot_correlation_table(model: str, correlations: str, png: str, pdf: str) -> None:
    from grokpath import figures

    corr = tables.read(correlations, tables.CORRELATIONS_SCHEMA).filter(pl.col("model") == model)
    figures.correlation_table(corr, png, pdf)


def plot_local_grokking(
    model: str,
    steps: Mapping[str, int],
    match_tables: Sequence[str],
    test_group_tables: Sequence[str],
    item_tables: Sequence[str],
    monitors_table: str,
    png: str,
    pdf: str,
) -> None:
    from grokpath import figures

    matches = pl.concat([tables.read(p, tables.MATCHES_SCHEMA) for p in match_tables])
    groups = pl.concat([tables.read(p, tables.TEST_GROUPS_SCHEMA) for p in test_group_tables]).drop_nulls("learned_at")
    items = pl.concat([tables.read(p, tables.EVAL_ITEMS_SCHEMA) for p in item_tables])
    test_acc = (
        items.join(groups.select("model", "task", "item_id", "learned_at"), on=["model", "task", "item_id"])
        .with_columns(test_group=pl.lit("test@") + pl.col("learned_at"))
        .group_by("model", "step", "task", "test_group")
        .agg(accuracy=pl.col("correct").cast(pl.Float64).mean())
        .join(_step_numbers(model, steps), on=["model", "step"])
    )
    figures.local_grokking(matches, _monitors(model, monitors_table), test_acc, png, pdf)


def plot_tau_ablation(model: str, steps: Mapping[str, int], ablation_tables: Sequence[str], png: str, pdf: str) -> None:
    from grokpath import figures

    ablation = pl.concat([tables.read(p, tables.TAU_ABLATION_SCHEMA) for p in ablation_tables])
    figures.tau_ablation(ablation.join(_step_numbers(model, steps), on=["model", "step"]), png, pdf)


def plot_cross_domain(
    model: str, steps: Mapping[str, int], cross_tables: Sequence[str], monitors_table: str, png: str, pdf: str
) -> None:
    from grokpath import figures

    cross = pl.concat([tables.read(p, tables.CROSS_DISTANCE_SCHEMA) for p in cross_tables])
    within = _monitors(model, monitors_table).filter(pl.col("group") == GROUP_ALL)
    figures.cross_domain(cross.join(_step_numbers(model, steps), on=["model", "step"]), within, png, pdf)


def plot_distance_vs_entropy(table: str, png: str, pdf: str) -> None:
    from grokpath import figures

    figures.distance_vs_entropy(tables.read(table, tables.ENTROPY_DISTANCE_SCHEMA), png, pdf)


def plot_memorization_ablation(
    model: str, steps: Mapping[str, int], ablation_tables: Sequence[str], parameter: str, png: str, pdf: str
) -> None:
    from grokpath import figures

    ablation = pl.concat([tables.read(p, tables.MEMORIZATION_ABLATION_SCHEMA) for p in ablation_tables])
    ablation = ablation.filter(pl.col("parameter") == parameter).join(_step_numbers(model, steps), on=["model", "step"])
    figures.memorization_ablation(ablation, parameter, png, pdf)
