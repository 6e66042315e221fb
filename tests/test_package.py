"""The package's shape: no import cycle, the public API where the README says, registries that match
the schema, and the Python examples of the README and the docs run."""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stylediff"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every stylediff module ``path`` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("stylediff")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("stylediff"):
                candidates = [f"{target}.{alias.name}" for alias in node.names]
                modules = {
                    c
                    for c in candidates
                    if (ROOT / Path(*c.split("."))).with_suffix(".py").is_file()
                    or (ROOT / Path(*c.split(".")) / "__init__.py").is_file()
                }
                found |= modules or {target}
    return found - {name}


def test_no_import_cycle_inside_the_package():
    graph = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                cycle = trail[trail.index(child) :] + [child] if child in trail else [node, child]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if child not in state:
                visit(child, trail + [child])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


MAX_CODE_LINES = 350
"""Lines of code a module may hold: docstrings, comments and blank lines do not count, so documenting a
module (Google-style Args/Returns on every public function) never forces a split. The largest module has
about 310 today; 350 leaves room for a fix, not for a second concept."""


def code_lines(text: str) -> int:
    """Lines of ``text`` that are code: not blank, not a comment, not in a docstring (a module's, class's
    or function's first string, or the string after an assignment that documents it)."""
    tree = ast.parse(text)
    documentation = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for previous, statement in zip([None, *body], body):
            is_string = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            if is_string and isinstance(statement.value.value, str):
                documents = previous is None and isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                if documents or isinstance(previous, (ast.Assign, ast.AnnAssign)):
                    documentation.update(range(statement.lineno, statement.end_lineno + 1))
    return sum(
        1
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in documentation
    )


def test_code_lines_skip_documentation_only():
    text = 'def f(x):\n    """Doc\n    more."""\n    # why\n\n    return x  # inline\nX = 1\n"""X\'s doc."""\n'
    assert code_lines(text) == 3


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_module_is_short_and_says_what_it_owns(path):
    """One concept per module: at most 350 lines of code, with a docstring whose first sentence says what
    it owns."""
    text = path.read_text()
    lines = code_lines(text)
    assert lines <= MAX_CODE_LINES, f"{path.relative_to(ROOT)} has {lines} lines of code: split it by concept"
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.split("\n\n")[0].strip(), f"{path.relative_to(ROOT)} has no module docstring"


def repository_sources() -> str:
    """The text of every file that can use a name of the package: code, rules, tests, benchmarks, tools."""
    paths = [ROOT / "Snakefile", *ROOT.glob("rules/*.smk")]
    for folder in ("stylediff", "tests", "bench", "tools", "ci", "examples"):
        paths += (ROOT / folder).rglob("*.py")
    return "\n".join(path.read_text() for path in paths if path.is_file())


def test_every_module_constant_is_used():
    """No dead constants: each UPPER_CASE name a module of the package assigns is read somewhere."""
    sources = repository_sources()
    unused = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper() and not target.id.startswith("__"):
                    if len(re.findall(rf"\b{target.id}\b", sources)) < 2:
                        unused.append(f"{path.relative_to(ROOT)}: {target.id}")
    assert not unused, "defined and never used: " + ", ".join(unused)


def test_no_hidden_cli_options():
    """Every option of every verb shows in its --help (no hidden aliases kept for old names)."""
    from stylediff.cli import build_parser

    verbs = build_parser()._subparsers._group_actions[0].choices
    hidden = [
        f"{verb} {'/'.join(action.option_strings)}"
        for verb, parser in verbs.items()
        for action in parser._actions
        if action.help == argparse.SUPPRESS
    ]
    assert not hidden, "hidden options: " + ", ".join(hidden)


def test_public_api_keeps_its_names():
    from stylediff.cli import build_parser, main  # noqa: F401
    from stylediff.networks.vgg19 import load_vgg19  # noqa: F401
    from stylediff.nst.losses import STYLE_LOSSES, style_objective  # noqa: F401
    from stylediff.nst.optimize import invert, synthesize_texture, transfer_style  # noqa: F401


def test_build_parser_in_a_fresh_interpreter_lists_every_verb():
    code = "from stylediff.cli import build_parser; print(sorted(build_parser()._subparsers._group_actions[0].choices))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == sorted(
        [
            "invert",
            "texture",
            "transfer",
            "sample",
            "search",
            "plan",
            "metrics",
            "aggregate",
            "figures",
            "findings",
            "publish",
            "layers",
            "methods",
            "weights",
            "batch",
        ]
    )


def test_registry_lookup_fails_in_one_line_and_get_is_dicts():
    from stylediff.core.errors import LossError
    from stylediff.nst.losses import STYLE_LOSSES

    assert STYLE_LOSSES.get("gramm") is None and STYLE_LOSSES.get("gram") is STYLE_LOSSES.lookup("gram")
    with pytest.raises(LossError, match=r"^unknown style loss 'gramm'; valid losses: gram, mean_std"):
        STYLE_LOSSES.lookup("gramm")


def readme_python_blocks() -> list[str]:
    """Every distinct ```python block of the README and of the docs pages."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    blocks = [block for page in pages for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]
    return list(dict.fromkeys(blocks))


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_readme_python_examples_run(tmp_path, index):
    """Each ```python block of the README and the docs runs as it is, from the repository root (sizes
    shrunk so the test is quick: 256 px -> 32 px, 300 steps -> 3)."""
    code = readme_python_blocks()[index]
    code = (
        code.replace("256", "32")
        .replace("steps=300", "steps=3")
        .replace("num_inference_steps=50", "num_inference_steps=3")
    )
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
