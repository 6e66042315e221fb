"""Check the documentation site: a strict build, every internal link, and what a reader sees at 1280 px.

    python ci/docs_check.py [--out results/docs_check]

1. ``mkdocs build --strict`` into ``OUT/site`` (mkdocstrings imports this checkout: PYTHONPATH is set
   to the repository root);
2. every ``href``/``src`` of every built HTML page that points inside the site resolves to a file,
   and its ``#fragment``, if any, to an element id of that page (no browser needed);
3. the API reference shows what a user reaches for first: each entry point in ``API_ENTRY_POINTS``
   has its heading, a signature with annotations, and the members listed there (``__call__``…);
4. the site is served on 127.0.0.1 and headless Chromium (Debian's ``chromium``) opens each page of
   ``PAGES`` at 1280 px: a screenshot ``OUT/<name>.png`` of the whole page (up to ``MAX_HEIGHT`` px;
   from its ``#anchor`` down where the page names one; missing or of one flat colour fails), and a measurement (``OUT/<name>.json``) made in the page by
   ``MEASURE_JS`` after KaTeX has run:

   * maths: every ``arithmatex`` element rendered by KaTeX, no ``katex-error``;
   * figures: every ``<img>`` whose PNG declares its smallest font size (the text chunk
     ``min_font_px``: pixels at the PNG's own size, written by stylediff/reporting/figures/style.py) fails
     when that font, scaled to the size the page shows the image at, is below ``MIN_FONT_PX``; an image
     shown below its natural size without that chunk is listed as unchecked (a warning, not a failure);
   * wide content: tables and code blocks wider than the column are listed (they scroll; a note).

   ``--no-browser`` skips this step.

Exit status 0 when everything holds; otherwise one line per problem on stderr and status 1.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
# screenshot name -> page: the pages a new user reads first, figure pages, GuidedSampler's API entry, a maths page
PAGES = {
    "home": "",
    "getting-started": "getting-started/",
    "sampler": "part2/sampler/",
    "method": "part2/methods/tfg/",
    "methods-index": "part2/methods/",  # the methods table at 1280 px (one line per rule)
    "results": "results/",
    "api-guided-sampler": "reference/diffusion/#stylediff.diffusion.sampler.GuidedSampler",
    "losses": "part1/losses/",  # inline maths in a table: KaTeX loads offline and renders
}
WIDTH = 1280  # a laptop screen: the width at which the issue found tables and figures cut off or shrunk
MAX_HEIGHT = 14000  # a screenshot shows a page down to here (the results page is ~13000 px)
ANCHORED_HEIGHT = 1600  # a page named with an #anchor: the screenshot is cut to this much from the anchor down
# The smallest text a figure may show on the page, in CSS px. Browsers' default minimum font size
# setting is 9-10 px and Material's smallest own text (code in tables) is about 11 px; matplotlib's
# 7 pt at 100 dpi is 9.7 px at a figure's natural size, so a figure shrunk below ~93 % fails.
MIN_FONT_PX = 9.0
FONT_KEY = "min_font_px"  # PNG text chunk: the figure's smallest font size in px at its natural size
# API page -> object id -> the members it must show: the entry points the reference index starts with
API_ENTRY_POINTS = {
    "reference/diffusion/index.html": {
        "stylediff.diffusion.loading.load_model": [],
        "stylediff.diffusion.sampler.GuidedSampler": ["__call__"],
    },
    "reference/methods/index.html": {"stylediff.diffusion.methods.make_method": []},
    "reference/losses/index.html": {"stylediff.nst.losses.style_objective": []},
    "reference/optimize/index.html": {"stylediff.nst.optimize.synthesize_texture": []},
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
# Run in each page after load (and after KaTeX, which renders on Material's document$): what the reader
# sees, as JSON in a <script id="docs-check"> element that --dump-dom prints.
MEASURE_JS = r"""
window.addEventListener("load", function () { setTimeout(function () {
  var article = document.querySelector("article") || document.body;
  var out = {width: window.innerWidth, height: document.documentElement.scrollHeight, images: [],
             maths: 0, rendered: 0, katex_errors: [], wide: [], anchor: null};
  var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target) out.anchor = target.getBoundingClientRect().top + window.scrollY;
  article.querySelectorAll("img").forEach(function (img) {
    var box = img.getBoundingClientRect();
    if (box.width > 0) out.images.push({src: img.currentSrc || img.src, natural: img.naturalWidth,
                                        natural_height: img.naturalHeight, shown: box.width});
  });
  article.querySelectorAll(".arithmatex").forEach(function (el) {
    out.maths += 1; if (el.querySelector(".katex")) out.rendered += 1;
  });
  article.querySelectorAll(".katex-error").forEach(function (el) {
    out.katex_errors.push(el.getAttribute("title") || el.textContent.slice(0, 80));
  });
  article.querySelectorAll(".md-typeset__scrollwrap, pre > code").forEach(function (el) {
    if (el.scrollWidth > el.clientWidth + 1) out.wide.push({
      what: el.tagName === "CODE" ? "code block" : "table", width: el.scrollWidth, column: el.clientWidth,
      text: el.textContent.trim().slice(0, 60)});
  });
  var result = document.createElement("script");
  result.type = "application/json"; result.id = "docs-check"; result.textContent = JSON.stringify(out);
  document.body.appendChild(result);
}, 500); });
"""


class Links(HTMLParser):
    """The link targets and the element ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if value and ((name == "href" and tag in ("a", "link")) or (name == "src" and tag in ("img", "script"))):
                self.targets.append(value)


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8", errors="replace"))
    return links


def resolve(site: Path, page: Path, target: str) -> tuple[Path, str] | None:
    """The file and fragment ``target`` on ``page`` points to, or None for an external link."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith(("mailto:", "data:", "javascript:")):
        return None
    if not parts.path:
        return page, parts.fragment
    path = (site / parts.path.lstrip("/")) if parts.path.startswith("/") else (page.parent / unquote(parts.path))
    path = Path(os.path.normpath(path))
    if path.is_dir() or parts.path.endswith("/"):
        path = path / "index.html"
    return path, parts.fragment


def check_links(site: Path) -> tuple[list[str], int]:
    problems, checked = [], 0
    pages = sorted(site.rglob("*.html"))
    parsed = {page: parse(page) for page in pages}
    for page, links in parsed.items():
        for target in links.targets:
            resolved = resolve(site, page, target)
            if resolved is None:
                continue
            checked += 1
            path, fragment = resolved
            where = page.relative_to(site)
            if site.resolve() not in path.resolve().parents and path.resolve() != site.resolve():
                problems.append(f"{where}: link {target!r} leaves the site")
            elif not path.is_file():
                problems.append(f"{where}: link {target!r} points to a missing file")
            elif fragment and path.suffix == ".html":
                ids = parsed[path].ids if path in parsed else parse(path).ids
                if unquote(fragment) not in ids:
                    problems.append(f"{where}: link {target!r} names a missing anchor")
    return problems, checked


def check_api(site: Path) -> list[str]:
    """The entry points of API_ENTRY_POINTS are on their pages with a signature that has annotations,
    and with their listed members (``__call__``: the filters once hid it)."""
    problems = []
    for page, objects in API_ENTRY_POINTS.items():
        path = site / page
        if not path.is_file():
            problems.append(f"{page}: the API page is missing")
            continue
        html = path.read_text(encoding="utf-8")
        for name, members in objects.items():
            start = html.find(f'id="{name}"')
            if start < 0:
                problems.append(f"{page}: no heading for {name}")
                continue
            block = html[start : html.find("</pre>", start)]
            signature = re.sub(r"<[^>]+>", "", block[block.find("doc-signature") :])
            if "doc-signature" not in block or "(" not in signature or ":" not in signature:
                problems.append(f"{page}: {name} has no signature with annotations")
            problems += [f"{page}: {name}.{m} is not shown" for m in members if f'id="{name}.{m}"' not in html]
    return problems


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(MeasuringHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class MeasuringHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site, with MEASURE_JS added to every HTML page (the built files stay as built)."""

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_bytes().replace(b"</body>", b"<script>" + MEASURE_JS.encode() + b"</script></body>", 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def chromium(browser: str, url: str, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def measure(browser: str, url: str) -> dict | None:
    """MEASURE_JS's findings for the page at ``url`` (None if the page never reported)."""
    result = chromium(browser, url, f"--window-size={WIDTH},1000", "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r'<script type="application/json" id="docs-check">(.*?)</script>', result.stdout, re.S)
    return json.loads(found.group(1)) if found else None


def screenshot(browser: str, url: str, out: Path, height: int) -> str | None:
    """Screenshot ``url`` at WIDTH x ``height`` into ``out``; a problem as one line, or None."""
    result = chromium(
        browser, url, f"--window-size={WIDTH},{height}", "--virtual-time-budget=10000", f"--screenshot={out}"
    )
    if result.returncode != 0 or not out.is_file():
        return f"chromium could not screenshot {url}: {result.stderr.strip().splitlines()[-1:]}"
    from PIL import Image

    colours = Image.open(out).convert("RGB").getcolors(maxcolors=1 << 16)
    if colours is not None and len(colours) < 16:
        return f"screenshot of {url} shows almost nothing ({len(colours)} colours): {out}"
    return None


def cut(path: Path, top: int) -> int:
    """Cut a screenshot to ANCHORED_HEIGHT px from a little above ``top``; the height it has now."""
    from PIL import Image

    with Image.open(path) as img:
        top = max(0, top - 80)  # the heading under Material's 48 px header bar
        part = img.crop((0, top, img.width, min(img.height, top + ANCHORED_HEIGHT)))
    part.save(path)
    return part.height


def figure_font_px(path: Path) -> float | None:
    """The smallest font size a PNG declares (its FONT_KEY text chunk), in px at its natural size."""
    from PIL import Image

    with Image.open(path) as img:
        value = getattr(img, "text", {}).get(FONT_KEY)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def check_page(site: Path, base: str, name: str, found: dict) -> tuple[list[str], list[str]]:
    """Problems and notes from one page's measurement: maths rendered, figure text readable at the size
    shown, content wider than the column."""
    problems, notes = [], []
    if found["rendered"] < found["maths"]:
        problems.append(
            f"{name}: {found['maths'] - found['rendered']} of {found['maths']} equations not rendered by KaTeX"
        )
    problems += [f"{name}: KaTeX error: {error}" for error in found["katex_errors"]]
    for image in found["images"]:
        src = urlsplit(image["src"])
        if not image["src"].startswith(base):
            notes.append(f"{name}: {image['src']} is not part of the site: not checked")
            continue
        path = site / unquote(src.path).lstrip("/")
        scale = image["shown"] / image["natural"] if image["natural"] else 1.0
        shown = f"{image['natural']} px shown at {image['shown']:.0f} px ({scale:.0%})"
        font = figure_font_px(path) if path.suffix.lower() == ".png" and path.is_file() else None
        if font is not None and font * scale < MIN_FONT_PX:
            problems.append(
                f"{name}: {path.relative_to(site)}: its smallest text is {font:g} px, {shown}: "
                f"{font * scale:.1f} px on the page (< {MIN_FONT_PX:g} px)"
            )
        elif font is None and scale < 1:
            notes.append(f"{name}: {path.relative_to(site)}: {shown}, no {FONT_KEY} in the file: text size not checked")
    for wide in found["wide"]:
        notes.append(
            f"{name}: a {wide['what']} {wide['width']} px wide in a {wide['column']} px column scrolls: {wide['text']!r}"
        )
    return problems, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "docs_check")
    parser.add_argument("--no-browser", action="store_true", help="skip the screenshots")
    args = parser.parse_args()
    start = time.perf_counter()
    out = args.out.resolve()
    site = out / "site"
    out.mkdir(parents=True, exist_ok=True)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "NO_MKDOCS_2_WARNING": "1",
    }
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        print("docs_check: mkdocs build --strict failed:", file=sys.stderr)
        print(
            "\n".join(line for line in build.stderr.splitlines() if "WARNING" in line or "ERROR" in line)
            or build.stderr[-2000:],
            file=sys.stderr,
        )
        return 1
    print(
        f"docs_check: strict build ok ({len(list(site.rglob('*.html')))} pages) in {time.perf_counter() - start:.0f} s"
    )

    problems, checked = check_links(site)
    print(f"docs_check: {checked} internal links checked, {len(problems)} broken")
    api = check_api(site)
    print(f"docs_check: {sum(map(len, API_ENTRY_POINTS.values()))} API entry points checked, {len(api)} problems")
    problems += api

    if not args.no_browser:
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            problems.append("no chromium on PATH (apt-get install -y chromium), or pass --no-browser")
        else:
            server, base = serve(site)
            try:
                for name, page in PAGES.items():
                    found = measure(browser, base + page)
                    if found is None:
                        problems.append(f"{name}: {base + page} reported no measurement (did the page load?)")
                        continue
                    (out / f"{name}.json").write_text(json.dumps(found, indent=1) + "\n")
                    page_problems, notes = check_page(site, base, name, found)
                    problems += page_problems
                    for note in notes:
                        print(f"docs_check: note: {note}")
                    # headless Chromium screenshots a page scrolled to an #anchor blank: shoot the
                    # whole page and cut it at the anchor
                    height = min(max(found["height"], 1000), MAX_HEIGHT)
                    problem = screenshot(browser, base + page.split("#")[0], out / f"{name}.png", height)
                    if "#" in page and found["anchor"] is None:
                        problems.append(f"{name}: {base + page}: no element with that id")
                    elif not problem and found["anchor"] is not None:
                        height = cut(out / f"{name}.png", int(found["anchor"]))
                    if problem:
                        problems.append(problem)
                    else:
                        print(
                            f"docs_check: screenshot {out / name}.png ({base + page}, {WIDTH}x{height}): "
                            f"{len(found['images'])} images, {found['rendered']}/{found['maths']} equations rendered"
                        )
            finally:
                server.shutdown()

    for problem in problems:
        print(f"docs_check: {problem}", file=sys.stderr)
    print(f"docs_check: {'FAILED' if problems else 'ok'} in {time.perf_counter() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
