"""The API reference covers the package: every module of stylediff/ is rendered by a mkdocstrings
directive (``::: stylediff.x.y``) on a docs page, and every directive names a module that exists.
No mkdocs build (ci/docs_check.py builds the site and checks what the pages show)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stylediff"
DIRECTIVE = re.compile(r"^:::\s+(stylediff(?:\.\w+)*)\s*$", re.MULTILINE)


def package_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of stylediff/ (packages by their __init__.py)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def documented() -> dict[str, list[str]]:
    """Dotted name -> the docs pages whose directives render it. The reference pages hold every
    module but the guidance rules, whose modules are rendered on their method pages
    (docs/part2/methods/<name>.md) beside the rule's derivation."""
    pages: dict[str, list[str]] = {}
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for name in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            pages.setdefault(name, []).append(page.relative_to(ROOT).as_posix())
    return pages


def test_every_module_of_the_package_is_on_a_docs_page():
    # an empty __init__.py (a folder made a package, nothing in it) has nothing to render
    modules = {name: path for name, path in package_modules().items() if path.read_text(encoding="utf-8").strip()}
    assert len(modules) > 50  # the walk found the package
    missing = sorted(set(modules) - set(documented()))
    assert not missing, f"modules on no docs page (add a `::: module` directive under docs/reference/): {missing}"


def test_every_directive_names_a_module_once():
    modules = package_modules()
    pages = documented()
    unknown = sorted(name for name in pages if name not in modules and name.rsplit(".", 1)[0] not in modules)
    assert not unknown, f"directives naming no module of stylediff/: {unknown}"
    twice = {name: where for name, where in pages.items() if len(where) > 1}
    assert not twice, f"modules rendered on two pages (their anchors would clash): {twice}"


def test_every_directive_outside_the_method_pages_is_under_reference():
    elsewhere = {
        name: where
        for name, where in documented().items()
        for page in where
        if not page.startswith(("docs/reference/", "docs/part2/methods/"))
    }
    assert not elsewhere, f"API directives outside docs/reference/: {elsewhere}"
