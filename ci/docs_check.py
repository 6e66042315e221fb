"""Check the documentation site: a strict build, every internal link, and a real browser's view.

    python ci/docs_check.py [--out results/docs_check]

1. ``mkdocs build --strict`` into ``OUT/site`` (mkdocstrings imports this checkout: PYTHONPATH is set
   to the repository root);
2. every ``href``/``src`` of every built HTML page that points inside the site resolves to a file,
   and its ``#fragment``, if any, to an element id of that page (no browser needed);
3. the site is served on 127.0.0.1 and headless Chromium (Debian's ``chromium``) screenshots the home
   page and one guidance-method page into ``OUT/home.png`` and ``OUT/method.png``; a screenshot that
   is missing or of one flat colour fails the check. ``--no-browser`` skips this step.

Exit status 0 when everything holds; otherwise one line per problem on stderr and status 1.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
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
PAGES = {"home.png": "", "method.png": "part2/methods/tfg/"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1280,1000",
]


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


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def screenshot(browser: str, url: str, out: Path) -> str | None:
    """Screenshot ``url`` into ``out``; a problem as one line, or None."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", url]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not out.is_file():
        return f"chromium could not screenshot {url}: {result.stderr.strip().splitlines()[-1:]}"
    from PIL import Image

    colours = Image.open(out).convert("RGB").getcolors(maxcolors=1 << 16)
    if colours is not None and len(colours) < 16:
        return f"screenshot of {url} shows almost nothing ({len(colours)} colours): {out}"
    return None


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

    if not args.no_browser:
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            problems.append("no chromium on PATH (apt-get install -y chromium), or pass --no-browser")
        else:
            server, base = serve(site)
            try:
                for name, page in PAGES.items():
                    problem = screenshot(browser, base + page, out / name)
                    if problem:
                        problems.append(problem)
                    else:
                        print(f"docs_check: screenshot {out / name} ({base + page})")
            finally:
                server.shutdown()

    for problem in problems:
        print(f"docs_check: {problem}", file=sys.stderr)
    print(f"docs_check: {'FAILED' if problems else 'ok'} in {time.perf_counter() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
