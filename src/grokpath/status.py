"""Where a long sweep stands: a checkpoint x stage matrix of done, missing, failed and interrupted.

The state comes from Snakemake itself (`snakemake --summary`: every output of the DAG with its
rule and status, `incomplete` for outputs of jobs that were killed) and from the rule logs (a
missing output whose job's log holds a traceback failed). Outputs are assigned to a checkpoint by
the checkpoint id among their path parts; the rest (samples, groups, tables, figures) form the
series-level row "(series)".
"""

from __future__ import annotations

import base64
import csv
import io
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

DONE, MISSING, FAILED, INCOMPLETE, OUTDATED = "done", "missing", "failed", "incomplete", "outdated"
SYMBOLS = {DONE: "✓", MISSING: "·", FAILED: "✗", INCOMPLETE: "!", OUTDATED: "~"}
SERIES = "(series)"
ALL_MODELS = "(all models)"  # tables and figures that combine every series
# Display order of the workflow's stages (others follow in the order Snakemake lists them).
STAGE_ORDER = (
    "pretrain_tiny_moe",
    "prefetch_checkpoint",
    "download_checkpoint",
    "prepare_samples",
    "extract_routing",
    "assign_memorization",
    "compute_pathways",
    "pathway_distance",
    "ablate_tau",
    "cross_domain_distance",
    "entropy_distance",
    "ablate_memorization",
    "prepare_instructions",
    "instruction_tune",
    "run_lm_eval",
    "decontaminate",
    "drop_contaminated",
    "release_checkpoint",
    "aggregate_monitors",
    "assign_test_groups",
    "match_groups",
    "correlate",
)
# A worse state wins when a job's outputs disagree.
_RANK = {DONE: 0, OUTDATED: 1, MISSING: 2, INCOMPLETE: 3, FAILED: 4}


@dataclass(frozen=True)
class Output:
    path: str
    rule: str
    status: str  # Snakemake's: ok, missing, incomplete, or why it would rerun
    plan: str  # "no update" or "update pending"


@dataclass
class Matrix:
    """{model: {checkpoint or SERIES: {rule: state}}} with the rules in DAG order."""

    rules: list[str]
    cells: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SYMBOLS, 0)
        for rows in self.cells.values():
            for row in rows.values():
                for state in row.values():
                    out[state] += 1
        return out


def parse_summary(text: str) -> list[Output]:
    """The rows of `snakemake --summary` (tab-separated, with a header line)."""
    lines = [line for line in text.splitlines() if "\t" in line]
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t")
    need = {"output_file", "rule", "status", "plan"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise ValueError(f"not the output of `snakemake --summary` (columns {reader.fieldnames})")
    return [Output(r["output_file"], r["rule"], r["status"], r["plan"]) for r in reader]


def _checkpoint_of(path: str, checkpoints: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    parts = PurePosixPath(path).parts
    for model, ids in checkpoints.items():
        if model not in parts:
            continue
        for part in parts[parts.index(model) + 1 :]:
            # a folder named by the id, or a file such as routers/{model}/{step}.safetensors
            hits = [i for i in ids if part == i or part.startswith(f"{i}.")]
            if hits:
                return model, max(hits, key=len)
        return model, SERIES
    return ALL_MODELS, SERIES


def _failed(workdir: Path, rule: str, model: str, step: str) -> bool:
    """Whether a log of this job (per-checkpoint jobs log under logs/{rule}/{model}/{step}...)
    ends in a traceback: the job ran and failed, so its outputs are missing."""
    base = workdir / "logs" / rule / model
    logs = [base / f"{step}.log", *(base / step).rglob("*.log")] if step != SERIES else list(base.glob("*.log"))
    for log in logs:
        try:
            if "Traceback (most recent call last)" in log.read_text(errors="replace"):
                return True
        except (FileNotFoundError, IsADirectoryError):
            continue
    return False


def interrupted_outputs(workdir: Path) -> set[str]:
    """Outputs of jobs that started and never finished (Snakemake's markers, base64 path names)."""
    folder = workdir / ".snakemake" / "incomplete"
    out = set()
    for marker in folder.glob("*") if folder.is_dir() else []:
        try:
            out.add(base64.b64decode(marker.name).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _state(out: Output, workdir: Path, model: str, step: str, interrupted: set[str]) -> str:
    if out.status == "ok":
        # an output whose own inputs, params and code are unchanged is still rerun when a job
        # upstream is (Snakemake plans it: "update pending"), e.g. every distance after a change of tau
        return OUTDATED if out.plan == "update pending" else DONE
    if out.status == "incomplete" or out.path in interrupted:
        return INCOMPLETE
    if out.status == "missing":
        return FAILED if _failed(workdir, out.rule, model, step) else MISSING
    if out.status == "removed temp file":  # a temp output (disk-bounded mode's tuned models) is gone
        # after the jobs that read it finished: done unless something still needs it made
        return DONE if out.plan == "no update" else MISSING
    return OUTDATED  # exists, but Snakemake would rerun it (changed input, params or code)


def build_matrix(outputs: Iterable[Output], checkpoints: Mapping[str, Sequence[str]], workdir: Path) -> Matrix:
    outputs = list(outputs)
    listed = list(dict.fromkeys(o.rule for o in outputs if o.rule != "all"))
    rules = [r for r in STAGE_ORDER if r in listed] + [r for r in listed if r not in STAGE_ORDER]
    matrix = Matrix(rules)
    interrupted = interrupted_outputs(workdir)
    for model, ids in checkpoints.items():
        matrix.cells[model] = {s: {} for s in [*ids, SERIES]}
    matrix.cells[ALL_MODELS] = {SERIES: {}}
    for out in outputs:
        if out.rule == "all":
            continue
        model, step = _checkpoint_of(out.path, checkpoints)
        state = _state(out, workdir, model, step, interrupted)
        row = matrix.cells[model][step]
        if _RANK[state] > _RANK.get(row.get(out.rule, DONE), 0) or out.rule not in row:
            row[out.rule] = state
    return matrix


def render(matrix: Matrix) -> str:
    """Per model: a checkpoint x stage grid of the per-checkpoint stages, then the stages that
    combine the checkpoints; a legend with counts last."""
    lines = []
    for model, rows in matrix.cells.items():
        if not any(rows.values()):
            continue
        steps = [s for s in rows if s != SERIES]
        per_ckpt = [r for r in matrix.rules if any(r in rows[s] for s in steps)]
        if per_ckpt:
            width = max(len(s) for s in steps) + 2
            lines.append(f"model {model}")
            for i, rule in enumerate(per_ckpt):  # stage names written diagonally above their columns
                lines.append(" " * width + "  " * i + "┌ " + rule)
            for step in steps:
                lines.append(
                    f"{step:<{width}}" + " ".join(SYMBOLS[rows[step][r]] if r in rows[step] else " " for r in per_ckpt)
                )
        series = rows[SERIES]
        if series:
            label = "across models" if model == ALL_MODELS else "across checkpoints"
            lines.append(f"  {label}: " + "  ".join(f"{SYMBOLS[series[r]]} {r}" for r in matrix.rules if r in series))
        lines.append("")
    counts = matrix.counts()
    lines.append("  ".join(f"{SYMBOLS[k]} {k} {counts[k]}" for k in SYMBOLS))
    return "\n".join(lines)


def snakemake_summary(workdir: Path, configfile: str | None, snakefile: str | None = None) -> str:
    """`snakemake --summary` of the workflow in `workdir` (a dry evaluation: nothing runs)."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--summary", "--nolock"]
    if snakefile:
        cmd += ["--snakefile", snakefile]
    if configfile:
        cmd += ["--configfile", configfile]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"snakemake --summary failed in {workdir}:\n{run.stderr[-3000:]}")
    return run.stdout


def status(workdir: Path, config: Mapping[str, Any], configfile: str | None, snakefile: str | None = None) -> Matrix:
    checkpoints = {m: [c["id"] for c in spec["checkpoints"]] for m, spec in config["models"].items()}
    return build_matrix(parse_summary(snakemake_summary(workdir, configfile, snakefile)), checkpoints, workdir)
