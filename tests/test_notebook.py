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
