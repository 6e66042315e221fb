"""The stylediff command line: each verb parses and validates its arguments, calls one package
function, writes its output with a JSON sidecar and prints one line saying what it wrote. User errors
print one line and exit 2.

:func:`build_parser` imports each verb module and calls its ``register(subparsers)``; the verb modules
import the torch parts of the package only when a verb runs, so ``stylediff --help`` and
``stylediff layers`` start without torch. A verb's run function returns the line to print (or None
for the verbs that print what they list).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __doc__ as package_doc
from .. import __version__
from ..core.errors import StylediffError
from ..core.extras import missing_extra_message
from . import batch, info, optimize, report, sample, search, weights
from .args import OneLineParser

VERB_MODULES = (optimize, sample, search, report, info, weights, batch)
"""Each module registers its verbs; batch comes last so that it can run every other verb."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stylediff",
        description=package_doc.strip(),
        epilog="stylediff VERB --help shows a verb's options. Errors are one line; --debug shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"stylediff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in VERB_MODULES:
        module.register(sub)
    for choice in sub._choices_actions:  # a verb's --help opens with its one-line help when it has no more
        verb = sub.choices[choice.dest]
        if verb.description is None:
            verb.description = choice.help[0].upper() + choice.help[1:] + "."
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `stylediff plan | head`: the reader has gone, as with any Unix filter
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush writes nowhere
        return 141  # 128 + SIGPIPE, the status of a filter killed by the closed pipe


def _run(args: argparse.Namespace) -> int:
    try:
        summary = args.func(args)
    except StylediffError as exc:
        if args.debug:
            raise
        print(f"stylediff {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None or args.debug:
            raise
        print(f"stylediff {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stylediff {args.verb}: interrupted", file=sys.stderr)
        return 130
    if summary:
        print(f"stylediff {args.verb}: {summary}")
    sys.stdout.flush()  # here, so that a closed pipe is a BrokenPipeError main() handles
    return 0
