"""stylediff.reporting.publish and `stylediff publish`: the one step that writes tracked files (report/, docs/results.md,
README.md's results section). The tables are the committed findings tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stylediff.core.errors import ConfigError
from stylediff.reporting.findings import README_BEGIN, README_END
from stylediff.reporting.markdown import FINDING
from stylediff.reporting.publish import publish

ROOT = Path(__file__).resolve().parents[1]
TABLES = {name: str(ROOT / "report" / "findings" / "tables" / f"{name}.csv") for name in ("inversion", "texture")}


@pytest.fixture
def run(tmp_path):
    """A run's report folder (two files) and a README with the markers, in a checkout-like folder."""
    report = tmp_path / "results" / "report"
    report.mkdir(parents=True)
    (report / "texture_summary.md").write_text("| a |\n")
    (report / "inversion_grid.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "README.md").write_text(f"# title\n\nbefore\n{README_BEGIN}\nstale text\n{README_END}\nafter\n")
    return tmp_path


def test_copies_and_leaves_unchanged_files_alone(run):
    files = sorted((run / "results" / "report").iterdir())
    written = publish(files, run / "report")
    assert sorted(written) == sorted(run / "report" / f.name for f in files)
    assert all((run / "report" / f.name).read_bytes() == f.read_bytes() for f in files)
    stamp = (run / "report" / "inversion_grid.png").stat().st_mtime_ns
    (run / "results" / "report" / "texture_summary.md").write_text("| b |\n")
    assert publish(files, run / "report") == [run / "report" / "texture_summary.md"]
    assert (run / "report" / "inversion_grid.png").stat().st_mtime_ns == stamp
    assert (run / "report" / "texture_summary.md").read_text() == "| b |\n"


def test_page_and_readme_link_the_published_figures(run):
    files = sorted((run / "results" / "report").iterdir())
    publish(files, run / "report" / "findings", TABLES, run / "docs" / "results.md", run / "README.md", "findings")
    assert sorted(p.name for p in (run / "report" / "findings" / "tables").iterdir()) == [
        "inversion.csv",
        "texture.csv",
    ]
    page = (run / "docs" / "results.md").read_text()
    readme = (run / "README.md").read_text()
    assert "](../report/findings/inversion_grid.png)" in page and "preset `findings`" in page
    assert "stale text" not in readme and "](docs/results.md)" in readme
    headings = [line[4:] for line in page.splitlines() if line.startswith("### ")]
    findings = [line[len(FINDING) :] for line in page.splitlines() if line.startswith(FINDING)]
    rows = readme[readme.index(README_BEGIN) : readme.index(README_END)].splitlines()[3:]
    assert len(headings) == len(findings) == 3  # inversion, texture, losses
    assert rows == [f"| {h} | {f} |" for h, f in zip(headings, findings)]  # each section: its finding, its numbers
    assert "PSNR falls (ρ = " in rows[0] and re.search(r"\[-?\d", rows[0])
    assert readme.startswith(f"# title\n\nbefore\n{README_BEGIN}\n") and readme.endswith(f"{README_END}\nafter\n")


def test_missing_file_or_tables_are_one_line_errors(run):
    with pytest.raises(ConfigError, match="does not exist: run the workflow"):
        publish([run / "results" / "report" / "nope.png"], run / "report")
    with pytest.raises(ConfigError, match="needs the experiments' tables"):
        publish([], run / "report", page=run / "docs" / "results.md")
    assert not (run / "report").exists() and not (run / "docs").exists()


def test_cli(run):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    files = [str(path) for path in sorted((run / "results" / "report").iterdir())]
    result = subprocess.run(
        [sys.executable, "-m", "stylediff", "publish", "--files", *files, "--to", "report"],
        cwd=run,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "stylediff publish: wrote report/inversion_grid.png and report/texture_summary.md\n"
    result = subprocess.run(
        [sys.executable, "-m", "stylediff", "publish", "--files", "x.png", "--to", "report"],
        cwd=run,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and "x.png does not exist" in result.stderr


def test_the_readme_row_is_the_sections_finding_and_follows_its_data():
    from stylediff.reporting.publish import readme_table

    page = "\n".join(
        ["## Results", "", "### A", "", f"{FINDING}x falls (ρ = -0.9 [-1, -0.8]).", "", "text", "### B", "", "t"]
    )
    assert readme_table(page) == "| section | finding |\n|---|---|\n| A | x falls (ρ = -0.9 [-1, -0.8]). |\n"
    flipped = page.replace("falls (ρ = -0.9 [-1, -0.8])", "rises (ρ = 0.9 [0.8, 1])")
    assert "| A | x rises (ρ = 0.9 [0.8, 1]). |" in readme_table(flipped)  # B has no finding: no row
