"""The docs check (link resolver, API entry points, what a page's measurement fails on, the measuring
server) and the docs hook's reStructuredText conversion (no mkdocs build, no browser: the CI script
ci/docs_check.py does those)."""

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


def png(path: Path, size=(400, 100), font_px: str | None = None) -> Path:
    """A PNG written the way stylediff's figures are (matplotlib's savefig), declaring its smallest font."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    fig.text(0.5, 0.5, "scale 0.03", fontsize=7)
    fig.savefig(path, dpi=100, metadata={"Software": None, **({"min_font_px": font_px} if font_px else {})})
    plt.close(fig)
    return path


def measurement(images=(), maths=0, rendered=0, katex_errors=(), wide=()):
    return {
        "images": list(images),
        "maths": maths,
        "rendered": rendered,
        "katex_errors": list(katex_errors),
        "wide": list(wide),
    }


def test_a_figure_whose_text_the_page_shrinks_below_the_threshold_fails(tmp_path):
    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    base = "http://127.0.0.1:1/"
    png(tmp_path / "small.png", font_px="9.7")  # matplotlib's 7 pt at 100 dpi
    assert docs_check.figure_font_px(tmp_path / "small.png") == pytest.approx(9.7)
    shrunk = {"src": base + "small.png", "natural": 400, "shown": 200}  # half size: 4.85 px text
    problems, notes = docs_check.check_page(tmp_path, base, "home", measurement([shrunk]))
    assert len(problems) == 1 and "small.png" in problems[0] and "4.8 px on the page" in problems[0]
    whole = {"src": base + "small.png", "natural": 400, "shown": 400}
    assert docs_check.check_page(tmp_path, base, "home", measurement([whole])) == ([], [])
    # a figure whose smallest text is already too small fails at its natural size too
    png(tmp_path / "tiny.png", font_px="6")
    tiny = {"src": base + "tiny.png", "natural": 400, "shown": 400}
    assert len(docs_check.check_page(tmp_path, base, "home", measurement([tiny]))[0]) == 1


def test_a_shrunk_figure_without_its_font_size_is_listed_unchecked(tmp_path):
    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    base = "http://127.0.0.1:1/"
    png(tmp_path / "plain.png")
    assert docs_check.figure_font_px(tmp_path / "plain.png") is None
    image = {"src": base + "plain.png", "natural": 400, "shown": 100}
    problems, notes = docs_check.check_page(tmp_path, base, "results", measurement([image]))
    assert problems == [] and len(notes) == 1 and "not checked" in notes[0]


def test_unrendered_maths_and_katex_errors_fail():
    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    problems, _ = docs_check.check_page(
        Path("."), "", "sampler", measurement(maths=3, rendered=1, katex_errors=["\\frac{"])
    )
    assert len(problems) == 2 and "2 of 3 equations" in problems[0] and "frac" in problems[1]
    assert docs_check.check_page(Path("."), "", "sampler", measurement(maths=3, rendered=3)) == ([], [])


def test_check_api_needs_the_signature_and_the_call(tmp_path):
    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    name = "stylediff.diffusion.sampler.GuidedSampler"
    signature = '<h2 id="{0}">x</h2><div class="doc-signature"><pre><code>GuidedSampler(model, objective: Loss)</code></pre></div>'
    for page, objects in docs_check.API_ENTRY_POINTS.items():
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        html = "".join(
            signature.format(o) + "".join(f'<h3 id="{o}.{m}"></h3>' for m in ms) for o, ms in objects.items()
        )
        (tmp_path / page).write_text(html)
    assert docs_check.check_api(tmp_path) == []
    page = tmp_path / "reference/diffusion/index.html"
    page.write_text(page.read_text().replace(f'id="{name}.__call__"', 'id="gone"'))
    assert docs_check.check_api(tmp_path) == [f"reference/diffusion/index.html: {name}.__call__ is not shown"]
    page.write_text(page.read_text().replace("objective: Loss", "objective"))
    assert f"{name} has no signature with annotations" in " ".join(docs_check.check_api(tmp_path))


def test_the_server_adds_the_measurement_to_html_pages_only(tmp_path):
    import urllib.request

    docs_check = load(ROOT / "ci" / "docs_check.py", "docs_check")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text("<html><body><p>hi</p></body></html>")
    (tmp_path / "x.css").write_text("body{}</body>")
    server, base = docs_check.serve(tmp_path)
    try:
        page = urllib.request.urlopen(base + "a/").read().decode()
        css = urllib.request.urlopen(base + "x.css").read().decode()
    finally:
        server.shutdown()
    assert "MEASURE_JS" not in page and docs_check.MEASURE_JS.strip()[:40] in page
    assert page.index("<p>hi</p>") < page.index("docs-check") < page.index("</body>")
    assert css == "body{}</body>"
