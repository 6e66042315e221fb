"""``stylediff batch VERB 'ARGS' 'ARGS' …``: several runs of one verb in one process.

Python, torch and the weights load once: a 64 px texture run computes for about 2 s after about 5 s
of start-up. Every item is parsed before the first runs, so a typo fails before any work; each run
writes its own image and sidecar, exactly as it would alone."""

from __future__ import annotations

import argparse
import shlex

from ..core.errors import ConfigError, StylediffError
from . import args as cli


def run_batch(args, verbs: argparse._SubParsersAction) -> str:
    parser = verbs.choices.get(args.batch_verb)
    if parser is None or args.batch_verb == "batch":
        raise ConfigError(
            f"unknown verb {args.batch_verb!r} for batch; valid: "
            f"{', '.join(name for name in verbs.choices if name != 'batch')}"
        )
    runs = [parser.parse_args(shlex.split(item)) for item in args.items]
    for index, run in enumerate(runs, 1):
        try:
            run.func(run)
        except StylediffError as exc:
            raise type(exc)(f"item {index} of {len(runs)}: {exc}") from exc
    outs = (
        [str(out) for run in runs for out in (run.out if isinstance(run.out, list) else [run.out]) if out]
        if all(hasattr(run, "out") for run in runs)
        else []
    )
    if not outs:
        return f"{len(runs)} {args.batch_verb} runs"
    return f"{len(runs)} {args.batch_verb} runs: " + (
        cli.wrote(*outs) if len(outs) <= 3 else f"wrote {len(outs)} outputs, {outs[0]} … {outs[-1]}"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="run several command lines of one verb in one process",
        description="Run several command lines of one verb in one process: Python, torch "
        "and the weights load once. Every item is parsed before the first runs.",
    )
    p.add_argument("batch_verb", metavar="VERB", help="the verb every item runs, e.g. texture")
    p.add_argument(
        "items", nargs="+", metavar="ARGS", help="one quoted argument string per run, e.g. '--style s.jpg --out a.png'"
    )
    p.set_defaults(func=lambda args: run_batch(args, sub))
