"""The numbers on the docs pages that a command produces, written by that command.

    python tools/docs_numbers.py            # rewrite docs/generated/*.md
    python tools/docs_numbers.py --check    # exit 1, naming each file that is not what the command prints now

Each file of docs/generated/ is one line, without a newline at its end (pymdownx.snippets would end the
paragraph there; pre-commit leaves the folder alone), that a page includes where it states the number
(``--8<-- "docs/generated/plan-quick.md"`` on a line of its own inside the sentence), so a changed plan cannot leave an old count on a page: tests/test_docs_numbers.py runs ``--check``, and
also fails on a count of runs and jobs written on a page by hand.

* ``plan-<preset>.md``: ``stylediff plan --summary-md`` for the preset (config.yaml with
  config/<preset>.yaml laid over it): total runs and run jobs, then per experiment;
* ``dag-quick.md``: how many jobs Snakemake schedules for the quick preset from scratch
  (``snakemake -n --forceall``: plans, images, runs, metrics, tables, figures and the ``all`` target).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "docs" / "generated"
PRESETS = {
    "quick": [],
    "findings": ["config/findings.yaml"],
    "full": ["config/full.yaml"],
    "sd_style": ["config/sd_style.yaml"],
}


def plan_line(preset: str) -> str:
    """``stylediff plan --summary-md`` for a preset, run in this process from the repository root."""
    from stylediff.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.chdir(ROOT):
        status = main(["plan", "--summary-md", "--configfile", "config.yaml", *PRESETS[preset]])
    if status:
        raise SystemExit(f"stylediff plan failed for the {preset} preset (status {status})")
    return out.getvalue().strip()


def dag_line() -> str:
    """The number of jobs ``snakemake -n --forceall`` lists for the quick preset."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", "--cores", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    total = re.search(r"^total\s+(\d+)\s*$", result.stdout + result.stderr, re.MULTILINE)
    if result.returncode != 0 or total is None:
        raise SystemExit(f"snakemake -n failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return f"{total.group(1)} Snakemake jobs in all"


def generated(with_dag: bool = True) -> dict[str, str]:
    """File name -> the text it should hold now."""
    files = {f"plan-{preset}.md": plan_line(preset) for preset in PRESETS}
    if with_dag:
        files["dag-quick.md"] = dag_line()
    return files


def stale(with_dag: bool = True) -> list[str]:
    """The files of docs/generated/ whose text is not what the commands print now."""
    return [
        name
        for name, text in generated(with_dag).items()
        if not (GENERATED / name).is_file() or (GENERATED / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"docs_numbers: docs/generated/{name} is stale: run python tools/docs_numbers.py", file=sys.stderr)
        return 1 if names else 0
    GENERATED.mkdir(exist_ok=True)
    for name, text in generated().items():
        (GENERATED / name).write_text(text, encoding="utf-8")
        print(f"docs_numbers: docs/generated/{name}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
