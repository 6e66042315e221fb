"""The registries are the only source of names: the workflow schema's enums, the docs' tables of losses,
networks, methods and metrics, the method pages and their nav entries, and the API reference pages of the
networks are checked against them here. Each check returns one line per problem naming the file and the
line to add or remove, so a new registration (tests/test_contracts.py registers throw-away ones) is told
exactly what to write."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .conftest import ROOT

SCHEMA = ROOT / "schemas" / "config.schema.yaml"
LOSSES_PAGE = ROOT / "docs" / "part1" / "losses.md"
METHODS_PAGE = ROOT / "docs" / "part2" / "methods" / "index.md"
METRICS_PAGE = ROOT / "docs" / "workflow" / "metrics.md"
NETWORKS_TABLE = ROOT / "stylediff" / "networks" / "__init__.py"
"""The table of networks is the module docstring of stylediff.networks (docs/reference/losses.md renders it)."""


def _mismatch(where: str, listed, registered, line) -> list[str]:
    """One line per registered name ``where`` lacks (``line(name)``: what to add) and per name it lists that is
    not registered."""
    listed, registered = list(listed), list(registered)
    return [f"{where}: add {line(name)}" for name in registered if name not in listed] + [
        f"{where}: {name!r} is not registered (remove it or register it)" for name in listed if name not in registered
    ]


def schema_enums() -> dict[str, list[str]]:
    """What each enum of the schema must hold, from the registries."""
    from stylediff.diffusion.methods import METHODS
    from stylediff.diffusion.methods.normalised import NormalisedGradient
    from stylediff.networks import NETWORKS
    from stylediff.networks.vgg19_layers import LAYERS, POOLINGS, WEIGHT_SOURCES
    from stylediff.nst.losses import STYLE_LOSSES
    from stylediff.workflow.experiments import EXPERIMENTS

    return {
        "$defs.loss.enum": list(STYLE_LOSSES),
        "$defs.network.enum": list(NETWORKS),
        "$defs.method.enum": list(METHODS),
        "$defs.normalised_method.enum": [n for n, cls in METHODS.items() if issubclass(cls, NormalisedGradient)],
        "$defs.layer.enum": list(LAYERS),
        "properties.weights.enum": list(WEIGHT_SOURCES),
        "properties.pooling.enum": list(POOLINGS),
        "properties.experiments.items.enum": list(EXPERIMENTS),
    }


def schema_problems() -> list[str]:
    """The schema's enums against the registries (order free: a name is registered or not)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    problems = []
    for path, registered in schema_enums().items():
        node = schema
        for key in path.split("."):
            node = node[key]
        problems += _mismatch(f"{SCHEMA.relative_to(ROOT)} {path}", node, registered, repr)
    return problems


def table_names(text: str, pattern: str) -> list[str]:
    """The names in the first cell of a markdown table's rows (backticked; several per cell allowed)."""
    names = []
    for row in re.findall(r"^\|([^|\n]*)\|", text, flags=re.M):
        names += re.findall(pattern, row)
    return names


def nav_method_pages(mkdocs: str) -> list[str]:
    """The method pages the mkdocs nav lists (``- NAME: part2/methods/NAME.md``) besides the index."""
    return re.findall(r"^\s*- (\S+): part2/methods/\1\.md\s*$", mkdocs, flags=re.M)


def docs_problems(read=Path.read_text) -> list[str]:
    """The docs against the registries: the losses' table, the networks' table and API pages, the methods'
    table, pages and nav entries, the metrics' table (``read(path)``: a file's text)."""
    import stylediff.networks as networks_package
    from stylediff.diffusion.methods import METHODS
    from stylediff.evaluation.metrics import METRICS
    from stylediff.networks import NETWORKS
    from stylediff.nst.losses import STYLE_LOSSES

    problems = _mismatch(
        str(LOSSES_PAGE.relative_to(ROOT)),
        table_names(read(LOSSES_PAGE), r"^\s*`([^`]+)`"),
        STYLE_LOSSES,
        lambda name: f"the table row '| `{name}` | statistic | distance |'",
    )
    problems += _mismatch(
        f"{NETWORKS_TABLE.relative_to(ROOT)} (its docstring's table)",
        re.findall(r"^``([^`]+)``\s", networks_package.__doc__, flags=re.M),
        NETWORKS,
        lambda name: f"the row '``{name}``  weights  where they are looked for'",
    )
    reference = "\n".join(read(path) for path in (ROOT / "docs" / "reference").glob("*.md"))
    for name, spec in NETWORKS.items():
        if f"::: stylediff.networks.{spec.module}\n" not in reference:
            problems.append(f"docs/reference/losses.md: add the line '::: stylediff.networks.{spec.module}' ({name})")
    problems += _mismatch(
        str(METHODS_PAGE.relative_to(ROOT)),
        table_names(read(METHODS_PAGE), r"^\s*\[`([^`]+)`\]"),
        METHODS,
        lambda name: f"the table row '| [`{name}`]({name}.md) | paper | update | reference code | default | range |'",
    )
    for name in METHODS:
        if not (METHODS_PAGE.parent / f"{name}.md").is_file():
            problems.append(f"docs/part2/methods/{name}.md: write the method's page")
    problems += _mismatch(
        "mkdocs.yml nav (Guidance methods)",
        nav_method_pages(read(ROOT / "mkdocs.yml")),
        METHODS,
        "'- {0}: part2/methods/{0}.md'".format,
    )
    problems += _mismatch(
        str(METRICS_PAGE.relative_to(ROOT)),
        table_names(read(METRICS_PAGE), r"`([^`]+)`"),
        METRICS,
        lambda name: f"the table row '| `{name}` | columns | kinds | what |'",
    )
    return problems


def naming(problems: list[str], name: str) -> list[str]:
    """The problems that concern ``name``."""
    return [
        line
        for line in problems
        if f"{name!r}" in line or f"`{name}`" in line or f"{name}.md" in line or f"({name})" in line
    ]


def test_the_schema_enums_hold_exactly_the_registered_names():
    problems = schema_problems()
    assert not problems, "\n".join(problems)


def test_the_docs_list_exactly_the_registered_names():
    problems = docs_problems()
    assert not problems, "\n".join(problems)


def test_a_missing_docs_line_is_named():
    """The check can fail: a method page dropped from the nav and a loss row dropped from its table are named."""
    edits = {
        ROOT / "mkdocs.yml": lambda text: text.replace("- dps: part2/methods/dps.md\n", ""),
        LOSSES_PAGE: lambda text: re.sub(r"^\| `mean_std` \|.*\n", "", text, flags=re.M),
    }
    problems = docs_problems(read=lambda path: edits.get(path, lambda text: text)(path.read_text()))
    assert problems[0] == "docs/part1/losses.md: add the table row '| `mean_std` | statistic | distance |'"
    assert problems[1:] == ["mkdocs.yml nav (Guidance methods): add '- dps: part2/methods/dps.md'"]


def test_cli_choices_are_the_registries(monkeypatch):
    """--loss, --network and --method take every registered name, list them in their help and refuse others in
    one line naming the valid ones."""
    import argparse

    from stylediff.cli import build_parser
    from stylediff.cli.args import registry

    monkeypatch.setenv("COLUMNS", "2000")  # one line per option: argparse wraps at hyphens (clip-vit-b16)
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    for verb, flag, kind in (
        ("texture", "--loss", "loss"),
        ("texture", "--network", "network"),
        ("sample", "--method", "method"),
    ):
        sub = verbs[verb]
        help_text = sub.format_help()
        action = next(a for a in sub._actions if flag in a.option_strings)
        assert ", ".join(registry(kind)) in help_text, (flag, help_text)
        for name in registry(kind):
            assert action.type(name) == name
        try:
            action.type("not-registered")
        except argparse.ArgumentTypeError as exc:
            assert "\n" not in str(exc) and ", ".join(registry(kind)) in str(exc)
        else:
            raise AssertionError(f"{flag} took an unregistered name")


def _named(node, key: str = "") -> list[tuple[str, str]]:
    """Every (kind, name) a config names under a ``loss(es)``, ``network(s)`` or ``method(s)`` key."""
    kinds = {"loss": "loss", "losses": "loss", "network": "network", "networks": "network"}
    kinds |= {"method": "method", "methods": "method"}
    if isinstance(node, dict):
        if key in ("methods", "networks") and "name" in node:  # an entry {name: …, its settings}
            return [(kinds[key], node["name"]), *_named({k: v for k, v in node.items() if k != "name"})]
        return [found for k, value in node.items() for found in _named(value, k)]
    if isinstance(node, list):
        return [found for item in node for found in _named(item, key)]
    return [(kinds[key], node)] if key in kinds and isinstance(node, str) else []


def test_every_name_the_presets_use_is_registered():
    """The published presets (and the run ids made from them) name losses, networks and methods: each is
    registered, whatever the registration order."""
    from stylediff.cli.args import registry

    from .conftest import preset_config

    for preset in ["quick", *(path.stem for path in sorted((ROOT / "config").glob("*.yaml")))]:
        named = _named(preset_config(preset))
        assert {"loss", "method"} <= {kind for kind, _ in named}, named  # the walk finds them
        unknown = [(kind, name) for kind, name in named if name not in registry(kind)]
        assert not unknown, f"config {preset} names unregistered {unknown}"
