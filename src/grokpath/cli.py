"""The `grokpath` command: small helpers around the pipeline (the pipeline itself runs under Snakemake).

Each subcommand is one entry of COMMANDS: name -> (help, setup). `setup(parser)` adds the subcommand's
arguments and returns the function that runs it (`run(args) -> exit code`); add a command by adding an entry.
Expected failures (HubError, bad arguments) print one line on stderr and exit with 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Run = Callable[[argparse.Namespace], int]
Setup = Callable[[argparse.ArgumentParser], Run]

EXIT_ERROR = 2


class CliError(Exception):
    """A user error: printed without a traceback."""


def _setup_revisions(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("repo", help="hub repository, e.g. allenai/OLMoE-1B-7B-0924")
    parser.add_argument(
        "--steps",
        type=_steps,
        help="comma-separated training steps (e.g. 5000,125000): print a YAML snippet for a config's checkpoints",
    )
    parser.add_argument("--repo-type", default="model", choices=("model", "dataset"))
    return _run_revisions


def _run_revisions(args: argparse.Namespace) -> int:
    from grokpath import hub

    branches = hub.list_branches(args.repo, repo_type=args.repo_type)
    if args.steps is None:
        for name in hub.sort_branches(branches):
            print(name)
        return 0
    resolved = hub.resolve_steps(branches, args.steps)
    print(f"# checkpoints of {args.repo}: training step -> hub branch")
    for step in args.steps:
        print(f"- {{id: step{step}, step: {step}, revision: {resolved[step]}}}")
    return 0


def _setup_prefetch(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("repo", help="hub repository")
    parser.add_argument("revisions", nargs="+", metavar="revision", help="branch, tag or commit sha")
    parser.add_argument("--repo-type", default="model", choices=("model", "dataset"))
    return _run_prefetch


def _run_prefetch(args: argparse.Namespace) -> int:
    from grokpath import hub

    for revision in args.revisions:
        sha = hub.prefetch(args.repo, revision, repo_type=args.repo_type)
        print(f"{revision} {sha}")
    return 0


def _setup_status(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--directory", "-d", type=Path, default=Path("."), help="the workflow's working directory")
    parser.add_argument("--configfile", help="the config the run uses (default: the Snakefile's config.yaml)")
    parser.add_argument("--snakefile", help="the Snakefile, if not in the directory")
    parser.add_argument("--json", action="store_true", help="print the matrix as JSON")
    return _run_status


def _run_status(args: argparse.Namespace) -> int:
    from grokpath import config, status

    workdir = args.directory.resolve()
    path = Path(args.configfile) if args.configfile else Path("config.yaml")
    cfg = config.load_config(path if path.is_absolute() else workdir / path)
    matrix = status.status(workdir, cfg, args.configfile, args.snakefile)
    if args.json:
        print(json.dumps({"rules": matrix.rules, "cells": matrix.cells, "counts": matrix.counts()}, indent=1))
    else:
        print(status.render(matrix))
    return 0


def _setup_monitor(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("checkpoint", type=Path, help="a checkpoint folder in Hugging Face format")
    parser.add_argument(
        "--samples",
        type=Path,
        required=True,
        help='the fixed sample set: JSONL of {"text": ...} rows, or a samples table of the workflow (.parquet)',
    )
    parser.add_argument("--text-field", default="text", help="JSONL field holding the text")
    parser.add_argument("--tau", type=float, default=0.7, help="pathway threshold in (0, 1] (default 0.7)")
    parser.add_argument("--level", choices=("char", "token"), default="char", help="edit distance level")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--step", type=int, help="training step to record with the values")
    parser.add_argument("--log", type=Path, help="append the values as one JSON line to this file")
    return _run_monitor


def _run_monitor(args: argparse.Namespace) -> int:
    from grokpath import checkpoints, extraction, monitor, samples, tables

    if not 0 < args.tau <= 1:
        raise CliError(f"--tau must be in (0, 1], got {args.tau}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be a positive number of samples, got {args.batch_size}")
    # Checked before any weight is read; transformers would take a missing folder for a hub repo id.
    problem = checkpoints.folder_problem(args.checkpoint)
    if problem:
        raise CliError(f"checkpoint {args.checkpoint} {problem}; give a checkpoint folder in Hugging Face format")
    if args.samples.suffix == ".parquet":
        df = tables.read(args.samples, tables.SAMPLES_SCHEMA)
        texts, names = df["text"].to_list(), df["sample_id"].to_list()
    else:
        texts = samples.read_texts(args.samples, args.text_field)
        names = None
    if len(texts) < 2:
        raise CliError(f"{args.samples}: the monitors need at least 2 samples, got {len(texts)}")
    net, tokenizer = extraction.load_checkpoint(args.checkpoint, args.device, args.dtype)
    result = monitor.measure(
        net, tokenizer, texts, sample_ids=names, tau=args.tau, level=args.level, batch_size=args.batch_size
    )
    record = {
        "checkpoint": str(args.checkpoint),
        "step": args.step,
        "samples": str(args.samples),
        "tau": args.tau,
        "n_samples": result.n_samples,
        "pathway_distance": result.distance,
        "pathway_consistency": result.consistency,
        "sample_loss": result.loss,
    }
    print(
        f"{args.checkpoint}: pathway distance {result.distance:.4f}, consistency {result.consistency:.4f}, "
        f"mean sample loss {result.loss:.4f} ({result.n_samples} samples, tau {args.tau})"
    )
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with open(args.log, "a", encoding="utf-8") as fh:  # appended: a log across checkpoints
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    return 0


COMMANDS: dict[str, tuple[str, Setup]] = {
    "revisions": ("list a hub repo's branches, or map training steps to them (--steps)", _setup_revisions),
    "prefetch": ("download hub revisions into the HF cache, for later offline runs", _setup_prefetch),
    "monitor": ("pathway distance and consistency of one checkpoint on a sample set", _setup_monitor),
    "status": ("where a run stands: checkpoint x stage matrix of done, missing, failed, interrupted", _setup_status),
}


def _steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps must be comma-separated integers, got {text!r}") from None
    if not steps or any(s < 0 for s in steps):
        raise argparse.ArgumentTypeError(f"steps must be non-negative integers, got {text!r}")
    return steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grokpath", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO) on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, setup) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=setup(p))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for errors, with a one-line message on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed usage and the error already
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from grokpath.hub import HubError

    try:
        return args.run(args)
    except (HubError, CliError, OSError, ValueError, RuntimeError) as err:
        print(f"grokpath {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
