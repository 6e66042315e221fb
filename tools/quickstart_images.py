"""Run the README's quick starts as written: the images they make and what they cost, for the docs.

    python tools/quickstart_images.py            # run quick starts 1-3, write their images and cost lines
    python tools/quickstart_images.py 2          # only quick start 2
    python tools/quickstart_images.py --check    # no run: the pages' quick starts are README's, outputs present

Each "## Quick start N" section of README.md opens with one fenced block, a bash block of commands or
a Python script; docs/getting-started.md repeats the same blocks (``--check`` compares them). This script
runs each block exactly as written (bash: ``bash -e``, Python: the block as a file), from a fresh
folder holding links to the checkout's ``data/`` and ``models/`` (what a fresh clone has), with the
checkout's package first on ``PYTHONPATH`` and torch's default threads. It then

* copies the images the block writes (``OUTPUTS``) to ``docs/assets/quickstart/``, which README.md and
  getting-started.md show beside the block;
* writes ``docs/generated/quickstart-N.md`` (which getting-started.md includes) and the same line between
  README.md's ``<!-- quickstart-N:begin … -->`` and ``<!-- quickstart-N:end -->`` markers: the cost the
  pages state beside the block, the CPU time
  of the block's processes (user + system, from ``getrusage``), which does not grow when other jobs
  share the cores, the wall time, the 1-minute load average before the run, the cores and the date.
  On an idle 2-core machine the wall time is about the CPU time over 2 at best (torch's two threads);
  on a loaded one it is longer, which the load average says.

A changed quick start (a flag, a step count) therefore changes what this script measures and shows;
``tests/test_quickstart.py`` runs ``--check``: the pages' blocks are README's, every output image and cost
line exists, and README's cost lines are the snippets'.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [ROOT / "docs" / "getting-started.md"]  # pages that repeat README's quick-start blocks
ASSETS = ROOT / "docs" / "assets" / "quickstart"
GENERATED = ROOT / "docs" / "generated"
# quick start -> {file the block writes (relative to where it runs): its name under docs/assets/quickstart/}
OUTPUTS = {
    1: {"results/tex.png": "texture.png"},
    2: {"results/demo/starry.png": "sample_x0.png", "results/demo/unguided.png": "sample_unguided.png"},
    3: {"results/own_loss.png": "own_loss.png"},
}
SECTION = re.compile(r"^## Quick start (\d+)\b.*?^```(\w+)\n(.*?)^```", re.M | re.S)
MARKERS = re.compile(r"(<!-- quickstart-(\d+):begin[^>]*-->\n)(.*?)(<!-- quickstart-\2:end -->)", re.S)


def blocks(path: Path) -> dict[int, tuple[str, str]]:
    """Quick start number -> (language, text) of the first fenced block of its section in ``path``."""
    return {int(n): (lang, text) for n, lang, text in SECTION.findall(path.read_text(encoding="utf-8"))}


def readme_lines(text: str) -> dict[int, str]:
    """Quick start number -> the text between its README markers."""
    return {int(m.group(2)): m.group(3) for m in MARKERS.finditer(text)}


def splice_readme(n: int, line: str) -> None:
    """Put ``line`` between quick start ``n``'s markers in README.md."""
    text = README.read_text(encoding="utf-8")
    new = MARKERS.sub(lambda m: m.group(1) + line + "\n" + m.group(4) if m.group(2) == str(n) else m.group(0), text)
    if n not in readme_lines(text):
        raise SystemExit(f"README.md has no <!-- quickstart-{n}:begin --> … <!-- quickstart-{n}:end --> markers")
    README.write_text(new, encoding="utf-8")


def problems() -> list[str]:
    """What ``--check`` reports: pages whose blocks differ from README's, missing images or cost lines."""
    found = blocks(README)
    out = [f"README.md: no quick start {n}" for n in OUTPUTS if n not in found]
    for page in PAGES:
        theirs = blocks(page)
        for n in OUTPUTS:
            if n in found and theirs.get(n) != found[n]:
                out.append(f"{page.relative_to(ROOT)}: quick start {n}'s block is not README.md's")
    for n, files in OUTPUTS.items():
        for name in files.values():
            if not (ASSETS / name).is_file():
                out.append(f"docs/assets/quickstart/{name} is missing: run python tools/quickstart_images.py {n}")
        snippet = GENERATED / f"quickstart-{n}.md"
        if not snippet.is_file():
            out.append(f"docs/generated/quickstart-{n}.md is missing: run python tools/quickstart_images.py {n}")
        elif readme_lines(README.read_text(encoding="utf-8")).get(n, "").strip() != snippet.read_text(encoding="utf-8"):
            out.append(f"README.md: quick start {n}'s cost line is not docs/generated/quickstart-{n}.md's")
    return out


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(n: int, lang: str, text: str) -> str:
    """Run quick start ``n``'s block in a fresh folder; copy its images; return its cost line."""
    with tempfile.TemporaryDirectory(prefix=f"quickstart{n}-") as tmp:
        work = Path(tmp)
        for name in ("data", "models"):
            (work / name).symlink_to(ROOT / name, target_is_directory=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if lang == "bash":
            argv = ["bash", "-e", "-c", text]
        elif lang == "python":
            (work / "quickstart.py").write_text(text, encoding="utf-8")
            argv = [sys.executable, "quickstart.py"]
        else:
            raise SystemExit(f"README.md quick start {n}: a {lang!r} block, expected bash or python")
        load = os.getloadavg()[0]
        cpu, wall = children_cpu(), time.perf_counter()
        result = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
        cpu, wall = children_cpu() - cpu, time.perf_counter() - wall
        if result.returncode:
            raise SystemExit(f"quick start {n} failed (status {result.returncode}):\n{result.stderr[-2000:]}")
        ASSETS.mkdir(parents=True, exist_ok=True)
        for made, name in OUTPUTS[n].items():
            if not (work / made).is_file():
                raise SystemExit(f"quick start {n} did not write {made}")
            shutil.copyfile(work / made, ASSETS / name)
    date = datetime.date.today().isoformat()
    return (
        f"about {cpu:.0f} s of CPU time ({wall:.0f} s wall on {os.cpu_count()} cores at load {load:.1f}; "
        f"measured {date} by tools/quickstart_images.py)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="*", type=int, help="quick starts to run (default: all)")
    parser.add_argument("--check", action="store_true", help="compare the pages' blocks, check the outputs; no run")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    found = blocks(README)
    for n in args.numbers or sorted(OUTPUTS):
        lang, text = found[n]
        line = run(n, lang, text)
        (GENERATED / f"quickstart-{n}.md").write_text(line, encoding="utf-8")  # one line, no newline: a snippet
        splice_readme(n, line)
        print(f"quick start {n}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
