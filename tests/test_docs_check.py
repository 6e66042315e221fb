"""The docs check's link resolver and the docs hook's reStructuredText conversion (no mkdocs build,
no browser: the CI script ci/docs_check.py does those)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_links_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    (tmp_path / "a").mkdir()
    (tmp_path / "img.png").write_bytes(b"png")
    (tmp_path / "a" / "index.html").write_text('<h2 id="here">x</h2><a href="../#top">up</a>')
    (tmp_path / "index.html").write_text(
        '<p id="top"></p><a href="a/#here">ok</a><img src="img.png"><a href="https://example.org/x">ext</a>'
        '<a href="b/">missing page</a><a href="a/#nowhere">missing anchor</a><a href="#top">self</a>'
    )
    problems, checked = docs_check.check_links(tmp_path)
    assert checked == 6
    assert sorted(p.split("link ")[1] for p in problems) == [
        "'a/#nowhere' names a missing anchor",
        "'b/' points to a missing file",
    ]


def test_check_links_passes_a_consistent_site(tmp_path):
    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    (tmp_path / "index.html").write_text('<a id="x" href="#x">self</a>')
    assert docs_check.check_links(tmp_path) == ([], 1)


def test_hook_turns_rst_tables_and_roles_into_markdown():
    pytest.importorskip("mkdocs")
    import markdown

    hooks = load(ROOT / "docs" / "hooks.py", "docs_hooks")
    text = """See :class:`~stylediff.evaluation.metrics.Metric` and a_{t-1} or ∇_{x_t}L and ᾱ_{t−1}.

=====  ===========
kind   metrics
=====  ===========
a      one, two,
       three
b      four
=====  ===========
"""
    html = markdown.markdown(text, extensions=["tables", hooks.DocstringMarkdown()])
    assert "<code>stylediff.evaluation.metrics.Metric</code>" in html and "<em>" not in html
    assert "<td>one, two, three</td>" in html and "<td>four</td>" in html and "=====" not in html
