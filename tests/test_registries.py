"""The registries are the only source of names: the workflow schema's enums, the docs' tables of losses,
networks, methods and metrics, the method pages and their nav entries, and the API reference pages of the
networks are checked against them (``schema_problems`` and ``docs_problems`` in conftest.py: one line per
problem naming the file and the line to add or remove, so a new registration is told exactly what to
write; tests/test_contracts.py performs the recipes with throw-away registrations)."""

from __future__ import annotations

import re

from .conftest import LOSSES_PAGE, ROOT, docs_problems, schema_problems


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


def test_the_recipes_name_files_that_exist():
    """Every file or folder docs/concepts.md "Adding things" names (from the repository root or the package, a
    bare file name anywhere in it; ``<name>`` placeholders aside) exists."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    section = text[text.index("## Adding things") :]
    paths = {p for p in re.findall(r"`([\w./-]+(?:/|\.py|\.md|\.yaml|\.yml))`", section) if "<" not in p}
    assert len(paths) >= 10, paths  # the recipes name their files
    found = [ROOT, ROOT / "stylediff"]
    missing = [
        p
        for p in sorted(paths)
        if not any((base / p).exists() for base in found) and not ("/" not in p and any(found[1].rglob(p)))
    ]
    assert not missing, f"docs/concepts.md names files that do not exist: {missing}"
