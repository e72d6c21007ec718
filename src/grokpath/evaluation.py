"""Benchmarks per checkpoint through lm-evaluation-harness, called as a library.

`lm_eval.simple_evaluate` runs in-process on the already loaded model (HFLM accepts a model
object); the CLI is avoided because it writes timestamped file names a workflow cannot track.
Local tasks are declarative YAMLs in workflow/lm_eval_tasks/ over test sets the workflow writes;
any other task name is looked up among lm-eval's own tasks. Each checkpoint gets its own response
cache (`response_cache.CachedHFLM`, lm-eval's cache file written in batches): lm-eval's cache is
keyed by request, not by model, so a shared one would silently return the first checkpoint's
answers for every later one.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grokpath.io import write_json

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parents[2] / "workflow" / "lm_eval_tasks"
LOCAL_KINDS = {"generate": "grokpath_generate.yaml", "choice": "grokpath_choice.yaml"}
# The per-item score each kind reports in lm-eval's logged samples.
_ITEM_METRICS = ("exact_match", "acc", "pass@1")
# Where lm-eval's documents keep the question, by benchmark family (MATH: problem).
_PROMPT_FIELDS = ("prompt", "question", "problem", "query", "input")


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark of a domain: `name` is the {task} wildcard; `task` a local kind or an lm-eval task."""

    name: str
    domain: str
    task: str
    num_fewshot: int = 0
    limit: int | None = None
    max_gen_toks: int | None = None  # None: the task's own generation length


def local_task_config(kind: str, name: str, test_path: str | Path) -> dict[str, Any]:
    """The local YAML of `kind`, renamed to `name` and pointed at `test_path`."""
    if kind not in LOCAL_KINDS:
        raise ValueError(f"local task kind must be one of {sorted(LOCAL_KINDS)}, got {kind!r}")
    config = yaml.safe_load((TASKS_DIR / LOCAL_KINDS[kind]).read_text())
    config = copy.deepcopy(config)
    config["task"] = f"grokpath_{name}"
    config["dataset_kwargs"] = {"data_files": {"test": str(Path(test_path).resolve())}}
    return config


def check_test_set(rows: list[Any], path: str | Path, kinds: Sequence[str] = ()) -> None:
    """A local test set's items, checked before lm-eval renders them (where a missing field is a
    template error naming neither file nor task): a string "prompt"; "answer" a string; "choices"
    at least two strings with "label" an index into them; and the fields each of `kinds` reads
    (generate: answer; choice: choices and label)."""
    needs = {"generate": ("answer",), "choice": ("choices", "label")}
    for lineno, row in enumerate(rows, 1):
        where = f"{path}: row {lineno}"
        if not isinstance(row, dict):
            raise ValueError(f"{where} is a {type(row).__name__}, not an object with a prompt")
        if not isinstance(row.get("prompt"), str) or not row["prompt"]:
            raise ValueError(f"{where} has no non-empty string field 'prompt'")
        for kind in kinds:
            missing = [f for f in needs[kind] if f not in row]
            if missing:
                raise ValueError(f"{where} lacks {missing}, which the {kind!r} task kind needs")
        if "answer" in row and not isinstance(row["answer"], str):
            raise ValueError(f"{where}: 'answer' must be a string, got {row['answer']!r}")
        if "choices" in row or "label" in row:
            choices, label = row.get("choices"), row.get("label")
            if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) for c in choices)):
                raise ValueError(f"{where}: 'choices' must be a list of at least 2 strings, got {choices!r}")
            if not (isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(choices)):
                raise ValueError(f"{where}: 'label' must be an index into its {len(choices)} choices, got {label!r}")


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grokpath"


def task_index() -> dict[str, dict[str, Any]]:
    """{lm-eval task, group or tag name: {"kind": "task", "py_task", "group" or "tag",
    "unsafe_code": whether it runs the model's generated code, "members": a group's or tag's
    tasks}}, lm-eval's own and the local YAMLs. Indexing them takes ~5 s, and the config check asks
    on every Snakemake start, so the index is cached on disk per lm-eval version and local YAML
    content."""
    local = b"".join(p.name.encode() + p.read_bytes() for p in sorted(TASKS_DIR.iterdir()) if p.is_file())
    digest = hashlib.sha256(local).hexdigest()[:16]
    cache = _cache_dir() / f"lm_eval_tasks-v2-{_lm_eval_version()}-{digest}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    from lm_eval.tasks import TaskManager

    index = {}
    for name, entry in TaskManager(include_path=str(TASKS_DIR)).task_index.items():
        cfg = getattr(entry, "cfg", None) or {}
        kind = getattr(getattr(entry, "kind", None), "name", "TASK").lower()
        members = cfg.get("task", []) if kind == "group" else getattr(entry, "tags", []) if kind == "tag" else []
        index[name] = {
            "kind": kind,
            "unsafe_code": bool(cfg.get("unsafe_code", False)),
            "members": sorted(m for m in (members if isinstance(members, list | set) else []) if isinstance(m, str)),
        }
    with contextlib.suppress(OSError):  # a read-only home: index again next time
        write_json(cache, index)
    return index


def _leaf_tasks(index: dict[str, dict[str, Any]], name: str) -> list[str]:
    """The tasks a group or tag runs, its subgroups and tags resolved (mmlu_stem is a group of
    one tag, mmlu_stem_tasks, whose members are the tasks), in order, each once."""
    leaves: dict[str, None] = {}
    pending, seen = list(reversed(index[name]["members"])), {name}
    while pending:
        member = pending.pop()
        entry = index.get(member)
        if entry is not None and entry["kind"] in ("group", "tag"):
            if member not in seen:  # a group can name itself through a tag
                seen.add(member)
                pending.extend(reversed(entry["members"]))
        else:
            leaves[member] = None
    return list(leaves)


def check_task_names(names: Sequence[str], allow_code_execution: bool | None = None) -> None:
    """Fail before any model is loaded when a non-local task name is unknown to lm-eval, or (when
    `allow_code_execution` is given and False) names a task that runs the model's code."""
    remote = [n for n in names if n not in LOCAL_KINDS]
    if not remote:
        return
    index = task_index()
    for name in remote:
        if name not in index:
            close = difflib.get_close_matches(name, [*sorted(LOCAL_KINDS), *sorted(index)], n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"unknown benchmark task {name!r}: neither a local kind {sorted(LOCAL_KINDS)} nor an lm-eval task{hint}"
            )
        if index[name]["kind"] in ("group", "tag"):
            members = _leaf_tasks(index, name)
            raise ValueError(
                f"benchmark task {name!r} is an lm-eval {index[name]['kind']} of several tasks, and each "
                f"benchmark here needs one accuracy per item; name its tasks one by one"
                + (f" (its {len(members)} tasks: {members[:6]}{' ...' if len(members) > 6 else ''})" if members else "")
            )
        if allow_code_execution is False and index[name]["unsafe_code"]:
            raise ValueError(
                f"benchmark task {name!r} runs the model's generated programs on this machine; "
                f"set evaluation.allow_code_execution: true to allow it"
            )


def evaluate(
    model: Any,
    tokenizer: Any,
    specs: list[TaskSpec],
    test_paths: dict[str, str],
    cache_path: str | Path,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
    allow_code_execution: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run every spec on one checkpoint; returns {spec.name: {"results": ..., "samples": [...]}}.

    Tasks that execute generated code (HumanEval+) run only with `allow_code_execution`, which
    the config must say explicitly: lm-eval runs the model's programs on this machine.
    """
    from lm_eval.tasks import TaskManager

    from grokpath.response_cache import CachedHFLM

    if allow_code_execution:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"  # the code_eval metric refuses to run without it
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=any(s.task not in LOCAL_KINDS for s in specs))
    lm = CachedHFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        device=device,
        add_bos_token=True,
        cache_path=cache_path,
    )
    try:
        with _one_environment_report():
            return _evaluate_specs(lm, manager, specs, test_paths, seed, allow_code_execution)
    finally:
        lm.close()


_ENVIRONMENT: dict[str, Any] = {}


@contextlib.contextmanager
def _one_environment_report() -> Iterator[None]:
    """`simple_evaluate` adds a report of the environment to its results on every call (torch's
    collect_env: a dozen subprocesses, ~0.22 s), and this stage calls it once per task: on the
    default's four tasks the three repeats were 26% of the stage's time (benchmarks/evaluation.py).
    The report cannot change within a process, so it is made once and copied into every call."""
    import lm_eval.evaluator

    report = lm_eval.evaluator.add_env_info  # an AttributeError if lm-eval renames it

    def once(storage: dict[str, Any]) -> None:
        if not _ENVIRONMENT:
            report(_ENVIRONMENT)
        storage.update(copy.deepcopy(_ENVIRONMENT))

    lm_eval.evaluator.add_env_info = once
    try:
        yield
    finally:
        lm_eval.evaluator.add_env_info = report


def _evaluate_specs(
    lm: Any,
    manager: Any,
    specs: list[TaskSpec],
    test_paths: dict[str, str],
    seed: int,
    allow_code_execution: bool,
) -> dict[str, dict[str, Any]]:
    from lm_eval import simple_evaluate

    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.task in LOCAL_KINDS:
            task: str | dict[str, Any] = local_task_config(spec.task, spec.name, test_paths[spec.domain])
            key = task["task"]  # type: ignore[index]
        else:
            task = key = spec.task
        res = simple_evaluate(
            model=lm,  # answers from its own response cache: no use_cache
            tasks=[task],
            num_fewshot=spec.num_fewshot,
            limit=spec.limit,
            task_manager=manager,
            log_samples=True,
            bootstrap_iters=0,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            confirm_run_unsafe_code=allow_code_execution,
            gen_kwargs={"max_gen_toks": spec.max_gen_toks} if spec.max_gen_toks else None,
        )
        if res is None:
            raise RuntimeError(f"lm-eval returned no results for {spec.name}")
        out[spec.name] = {
            "results": res["results"][key],
            "n_shot": res.get("n-shot", {}).get(key),
            "versions": res.get("versions", {}).get(key),
            "config": res.get("configs", {}).get(key),
            "lm_eval_version": res.get("lm_eval_version") or _lm_eval_version(),
            "samples": res["samples"][key],
        }
    return out


def item_rows(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per test item: doc_id, 0/1 correctness, and what identifies the item."""
    rows = []
    for s in samples:
        metric = next((m for m in _ITEM_METRICS if m in s), None)
        if metric is None:
            raise ValueError(f"logged sample has none of the per-item metrics {_ITEM_METRICS}: {sorted(s)}")
        doc = s.get("doc", {})
        resp = s.get("filtered_resps") or s.get("resps")
        field = next((f for f in _PROMPT_FIELDS if f in doc), None)
        args = s.get("arguments") or [[""]]
        prompt = doc[field] if field else args[0][0]  # else the context lm-eval built
        rows.append(
            {
                "doc_id": int(s["doc_id"]),
                "item_id": str(doc.get("item_id", s["doc_id"])),
                "prompt": str(prompt),
                "target": str(s.get("target", "")),
                "prediction": str(resp[0] if isinstance(resp, list) and resp else resp),
                "correct": int(float(s[metric]) > 0.5),
            }
        )
    return rows


def _lm_eval_version() -> str:
    from importlib import metadata

    return metadata.version("lm-eval")


def prefetch_tasks(names: list[str]) -> dict[str, int]:
    """Download every lm-eval task's dataset (and metric code) into the local caches.

    Instantiating a task loads its dataset, which is exactly what a later offline run needs from
    the datasets cache. Returns the number of evaluation documents of each task (subtasks of a
    group are counted one by one).
    """
    from lm_eval.tasks import TaskManager, get_task_dict

    check_task_names(names)
    remote = [n for n in names if n not in LOCAL_KINDS]
    if not remote:
        return {}
    manager = TaskManager(include_path=str(TASKS_DIR))
    counts: dict[str, int] = {}

    def walk(tree: Any) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value)
            else:
                counts[str(key)] = len(list(value.eval_docs))

    walk(get_task_dict(remote, manager))
    return counts
