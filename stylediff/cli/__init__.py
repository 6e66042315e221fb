"""The ``stylediff`` command line: each verb parses and validates its arguments, calls one package
function, and writes its output with a JSON sidecar. User errors print one line and exit 2.

:func:`build_parser` imports each verb module and calls its ``register(subparsers)``; the verb modules
import the torch parts of the package only when a verb runs, so ``stylediff --help`` and
``stylediff layers`` start without torch.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import StylediffError
from . import batch, info, optimize, report, sample, search, weights
from .args import OneLineParser

VERB_MODULES = (optimize, sample, search, report, info, weights, batch)
"""Each module registers its verbs; batch comes last so that it can run every other verb."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="stylediff", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in VERB_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except StylediffError as exc:
        if args.debug:
            raise
        print(f"stylediff {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stylediff {args.verb}: interrupted", file=sys.stderr)
        return 130
    return 0
