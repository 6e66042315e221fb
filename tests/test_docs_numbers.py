"""Numbers on the docs pages that a command produces are that command's output (tools/docs_numbers.py
writes docs/generated/, the pages include it): the files are current, and no page writes a plan's count
of runs and jobs by hand."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAND_WRITTEN_COUNT = re.compile(r"\b\d[\d,]* runs in \d+ (?:run )?jobs\b")


def docs_numbers():
    spec = importlib.util.spec_from_file_location("docs_numbers", ROOT / "tools" / "docs_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_counts_on_the_pages_are_what_stylediff_plan_says():
    pytest.importorskip("snakemake")
    stale = docs_numbers().stale(with_dag=False)
    assert not stale, (
        f"docs/generated/{stale} differ from `stylediff plan --summary-md`: run python tools/docs_numbers.py"
    )


@pytest.mark.slow
def test_the_job_count_on_the_pages_is_what_snakemake_schedules():
    pytest.importorskip("snakemake")
    module = docs_numbers()
    assert (module.GENERATED / "dag-quick.md").read_text(encoding="utf-8") == module.dag_line()


def test_the_summary_line_adds_up_the_per_experiment_counts(monkeypatch):
    pytest.importorskip("snakemake")
    from stylediff.cli import main

    monkeypatch.chdir(ROOT)

    def run(*argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["plan", *argv]) == 0
        return out.getvalue()

    per_experiment = re.findall(r"^(\w+): (\d+) runs in (\d+) jobs$", run(), re.MULTILINE)
    assert len(per_experiment) >= 2
    runs, jobs = sum(int(r) for _, r, _ in per_experiment), sum(int(j) for _, _, j in per_experiment)
    parts = ", ".join(f"{name} {r} in {j}" for name, r, j in per_experiment)
    assert run("--summary-md").strip() == f"{runs} runs in {jobs} run jobs ({parts})"


PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "generated" not in p.parts)


@pytest.mark.parametrize(
    "page",
    PAGES,
    ids=lambda page: page.relative_to(ROOT / "docs").as_posix(),
)
def test_no_page_writes_a_plan_count_by_hand(page):
    found = HAND_WRITTEN_COUNT.findall(page.read_text(encoding="utf-8"))
    assert not found, f"{page.name} states {found}: include docs/generated/plan-<preset>.md instead"


# -- the quick-preset page quotes the committed summaries (report/<experiment>_summary.md) ------------
def summary(experiment: str) -> list[dict[str, str]]:
    """The rows of the table in report/<experiment>_summary.md, as written by `snakemake publish`."""
    lines = [
        line for line in (ROOT / "report" / f"{experiment}_summary.md").read_text().splitlines() if line.startswith("|")
    ]
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def quoted(pattern: str) -> list[str]:
    """The numbers the quick-preset page quotes where ``pattern`` matches (whitespace folded)."""
    text = " ".join((ROOT / "docs" / "workflow" / "quick-preset.md").read_text(encoding="utf-8").split())
    found = re.search(pattern, text)
    assert found, f"docs/workflow/quick-preset.md no longer says {pattern!r}: update this test with the page"
    return list(found.groups())


def as_quoted(values: list[str], shown: list[str]) -> list[str]:
    """``values`` written with as many decimals as the page shows for each."""
    return [f"{float(v):.{len(s.partition('.')[2])}f}" for v, s in zip(values, shown, strict=True)]


def value(rows: list[dict[str, str]], column: str, **where) -> str:
    (row,) = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return row[column]


def test_the_quick_preset_page_quotes_the_inversion_summary():
    rows = [r for r in summary("inversion") if r["pooling"] == "max"]
    (astronaut,) = quoted(r"astronaut ((?:[\d.]+ → )+[\d.]+) dB")
    shown = astronaut.split(" → ")
    assert shown == as_quoted([r["psnr"] for r in rows if r["image"] == "astronaut"], shown)
    chelsea = [r["psnr"] for r in rows if r["image"] == "chelsea"]
    shown = quoted(r"chelsea ([\d.]+) → ([\d.]+) dB")
    assert shown == as_quoted([chelsea[0], chelsea[-1]], shown)


def test_the_quick_preset_page_quotes_the_texture_summary():
    rows = [r for r in summary("texture") if r["loss"] == "gram"]
    one, five = "relu1_1", "relu1_1-relu2_1-relu3_1-relu4_1-relu5_1"
    shown = quoted(
        r"falls from ([\d.]+) \(\{relu1_1\}\) to ([\d.]+) \(five layers\) on Starry Night and from ([\d.]+) to ([\d.]+) on brick"
    )
    values = [
        value(rows, "gram_dist_mean", style=s, layers=layers)
        for s in ("starry_night", "brick")
        for layers in (one, five)
    ]
    assert shown == as_quoted(values, shown)
    (bound,) = quoted(r"`layout_copy` ≤ ([\d.]+) for every loss")
    assert max(float(r["layout_copy"]) for r in summary("texture")) <= float(bound)


def test_the_quick_preset_page_quotes_the_guidance_summary():
    rows = summary("guidance")
    shown = quoted(
        r"falls from ([\d.]+) \(Starry Night\) / ([\d.]+) \(The Scream\) unguided to ([\d.]+) / ([\d.]+) at `x0` 0.03"
        r" and ([\d.]+) / ([\d.]+) at `through_unet` 0.1"
    )
    values = [
        value(rows, "gram_dist_mean", style=style, method=method, scale=scale)
        for method, scale in (("x0", "0.0"), ("x0", "0.03"), ("through_unet", "0.1"))
        for style in ("starry_night", "the_scream")
    ]
    assert shown == as_quoted(values, shown)
