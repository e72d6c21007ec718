"""The `grokpath` command: small helpers around the pipeline (the pipeline itself runs under Snakemake).

Each subcommand is one entry of COMMANDS: name -> (help, setup). `setup(parser)` adds the subcommand's
arguments and returns the function that runs it (`run(args) -> exit code`); add a command by adding an entry.
Expected failures (HubError, bad arguments) print one line on stderr and exit with 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

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


COMMANDS: dict[str, tuple[str, Setup]] = {
    "revisions": ("list a hub repo's branches, or map training steps to them (--steps)", _setup_revisions),
    "prefetch": ("download hub revisions into the HF cache, for later offline runs", _setup_prefetch),
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
    except (HubError, CliError, OSError, ValueError) as err:
        print(f"grokpath {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
