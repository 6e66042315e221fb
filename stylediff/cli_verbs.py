"""Imports the modules that add verbs to the CLI (each calls ``cli.EXTRA_VERBS.append``)."""
from . import cli_report  # noqa: F401
from . import cli_sample  # noqa: F401
