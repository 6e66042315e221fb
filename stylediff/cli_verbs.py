"""Imports the modules that add verbs to the CLI (each calls ``cli.EXTRA_VERBS.append``)."""
