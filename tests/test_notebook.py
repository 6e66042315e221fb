"""examples/quickstart.ipynb runs from top to bottom in a fresh python3 kernel (nbclient), so it cannot
rot; a cell appended here checks what its text claims. The notebook is committed without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"

CHECKS = """
assert texture.image.shape == (1, 3, SIZE, SIZE) and texture.final["loss"] < texture.history[0]["loss"] / 10
unguided, styled = samples[0.0], samples[0.03]
assert all(s < u for s, u in zip(styled.losses, unguided.losses)), (styled.losses, unguided.losses)
assert all(g < u for g, u in zip(out.losses, orange(unguided.images).tolist()))
print("checked")
"""


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == "python3"


def test_the_notebook_needs_only_the_core_and_a_jupyter_kernel_as_it_says():
    """Each module the notebook imports is the standard library's, stylediff's, a core dependency's or the
    IPython kernel's (ipykernel's requirements: any Jupyter front end runs one); its first cell names
    the Jupyter front end the core install does not bring."""
    import ast
    import importlib.metadata as metadata
    import re
    import sys
    import tomllib

    def name(requirement: str) -> str:  # "torch>=2.6,<3" -> "torch"
        return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    modules = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules.add(node.module.split(".")[0])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {name(r) for r in project["dependencies"]}
    kernel = {"ipykernel"} | {name(r) for r in metadata.requires("ipykernel") or []}
    distributions = metadata.packages_distributions()
    outside = {
        module: distributions.get(module)
        for module in modules - set(sys.stdlib_module_names) - {"stylediff"}
        if not {name(d) for d in distributions.get(module, [])} & (core | kernel)
    }
    assert not outside, f"the notebook imports {outside}: neither the core install nor a Jupyter kernel brings them"
    assert "IPython" in modules  # so the notebook does need the kernel's packages, as its text says
    assert "pip install jupyterlab" in notebook.cells[0].source and "jupyter execute" in notebook.cells[0].source


@pytest.mark.slow
def test_quickstart_notebook_runs_and_does_what_it_says(monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(CHECKS))
    # the kernel imports this checkout's stylediff, as the tests do
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 3, "a texture, the unguided and styled samples, the custom-loss samples"
    assert outputs[-1].text.strip() == "checked"
