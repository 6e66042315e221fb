"""The quick starts the README and getting-started page show: the same blocks on both pages, each with
its image and the cost line ``tools/quickstart_images.py`` measured (not typed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_tool():
    spec = importlib.util.spec_from_file_location("quickstart_images", ROOT / "tools" / "quickstart_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pages_show_readme_s_quick_starts_with_their_images_and_measured_costs():
    assert quickstart_tool().problems() == []


def test_a_page_whose_block_differs_or_a_cost_line_typed_by_hand_is_reported(tmp_path, monkeypatch):
    tool = quickstart_tool()
    page = tmp_path / "getting-started.md"
    page.write_text(tool.PAGES[0].read_text(encoding="utf-8").replace("--steps 30", "--steps 31", 1), encoding="utf-8")
    readme = tmp_path / "README.md"
    text = tool.README.read_text(encoding="utf-8")
    lines = tool.readme_lines(text)
    readme.write_text(text.replace(lines[2], "about 5 s of CPU time\n"), encoding="utf-8")
    monkeypatch.setattr(tool, "PAGES", [page])
    monkeypatch.setattr(tool, "README", readme)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    found = tool.problems()
    assert any("quick start 1's block is not README.md's" in line for line in found)
    assert any("quick start 2's cost line" in line for line in found)
