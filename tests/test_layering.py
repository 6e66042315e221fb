"""The package's layering: one folder per concept, imports only downwards, and the torch-free packages.

``LAYERS`` is the table of docs/concepts.md ("The package"): each package and the packages it may import.
A new import that crosses a line fails here with the file and the import, so the tree stays the module
map; a new top-level module fails too (every module belongs to a concept folder).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stylediff"

LAYERS: dict[str, set[str]] = {
    "core": set(),
    "weights": {"core"},
    "networks": {"core", "weights"},
    "nst": {"core", "networks"},
    "workflow": {"core"},
    "diffusion": {"core", "weights", "networks", "nst"},
    "evaluation": {"core", "weights", "networks", "nst", "workflow"},
    "reporting": {"core", "networks", "workflow", "evaluation"},
    "cli": {"core", "weights", "networks", "nst", "workflow", "diffusion", "evaluation", "reporting"},
}
"""Package -> the packages it may import (besides itself and the root's ``__version__``/``__doc__``)."""

TORCH_FREE = ("workflow.*", "reporting.*", "core.errors", "core.registry", "core.io", "core.provenance", "networks")
"""Importing these modules (``.*``: every module of the package) must not import torch: Snakemake parses the workflow and aggregates tables with them,
and the CLI lists names without paying torch's start-up."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute stylediff module) of every stylediff import in ``path``, relative ones resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "stylediff":
                target = node.module.split(".")
            else:
                continue
            found.append((node.lineno, ".".join(target)))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "stylediff"]
    return found


def _concept(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_lives_in_a_concept_folder():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert top == [], f"modules at the top of stylediff/: {top}; put each in its concept's folder"
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert sorted(LAYERS) == folders, "a package without a row in LAYERS (or a row without a package)"


def test_imports_only_go_down():
    wrong = []
    for module, path in _modules().items():
        if path.parent == PACKAGE:  # stylediff/__init__.py, __main__.py: the root starts the CLI
            continue
        here = _concept(module)
        for line, target in _imports(module, path):
            there = _concept(target)
            if there is None:
                allowed = {"stylediff"}  # __version__, __doc__
                ok = target in allowed
            else:
                ok = there == here or there in LAYERS[here]
            if not ok:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} ({here} -> {there})")
    assert not wrong, "imports against the layering (docs/concepts.md):\n" + "\n".join(wrong)


def _module_level_imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: the package modules it imports at module level}`` (not those inside functions)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.Module(body=top_level, type_ignores=[])):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            elif node.module and node.module.startswith("stylediff"):
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                targets.add(sub if sub in modules else target)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def test_no_import_cycle_between_modules():
    """Module-level imports (not those inside functions) form no cycle."""
    graph = _module_level_imports(_modules())
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_torch_free_packages_do_not_import_torch():
    def torch_free(module: str) -> bool:
        name = module.removeprefix("stylediff.")
        return any(name == t or (t.endswith(".*") and name.startswith(t[:-1])) for t in TORCH_FREE)

    modules = [m for m in _modules() if torch_free(m)]
    assert len(modules) > len(TORCH_FREE)
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "    assert 'torch' not in sys.modules, m\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
