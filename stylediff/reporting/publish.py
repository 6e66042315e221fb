"""Publishing a workflow run: the one step that writes tracked files, run on purpose.

A run writes only under its results folder (figures, summaries and findings under ``RESULTS/report``).
``snakemake publish --cores 2`` (or ``stylediff publish``) copies the summaries and figures into the
committed folder (``report/`` for the quick preset), and, for a preset with ``readme: true``, copies its
tables into ``tables/`` there, writes the results page ``docs/results.md`` (:func:`stylediff.reporting.findings.findings_markdown`
of the published tables, figure links pointing at the published figures) and splices a short table of its
findings, one row per section (its heading and its one-sentence finding with the numbers) and a link to the page,
into README.md between its markers.
Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import atomic_path, write_text
from .findings import FINDING, findings_markdown, splice_readme


def _link(folder: Path, base: Path):
    """The figure ``name`` in ``folder`` as a link relative to the folder ``base`` (posix separators)."""
    return lambda name: Path(os.path.relpath(folder.resolve() / name, base.resolve())).as_posix()


def _copy(source: Path, target: Path, written: list[Path]) -> Path:
    if not source.is_file():
        raise ConfigError(f"{source} does not exist: run the workflow (`snakemake --cores 2`) before publishing")
    data = source.read_bytes()
    if not (target.is_file() and target.read_bytes() == data):
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        written.append(target)
    return target


def publish(
    files: list[str | os.PathLike],
    to: str | os.PathLike,
    tables: dict[str, str] | None = None,
    page: str | os.PathLike | None = None,
    readme: str | os.PathLike | None = None,
    preset: str | None = None,
) -> list[Path]:
    """Copy ``files`` into the folder ``to`` and ``tables`` ({experiment: csv}) into ``to/tables`` (atomically;
    a file whose bytes are unchanged is left alone, so its modification time stays); from the copied tables,
    write the results ``page`` and/or splice them into ``readme``, their figure links pointing into ``to``.
    Returns the paths written."""
    to = Path(to)
    written: list[Path] = []
    for file in map(Path, files):
        _copy(file, to / file.name, written)
    tables = {
        name: str(_copy(Path(csv), to / "tables" / Path(csv).name, written)) for name, csv in (tables or {}).items()
    }
    if (page or readme) and not tables:
        raise ConfigError("a results page or README needs the experiments' tables (--table EXPERIMENT=CSV)")
    if page:
        page = Path(page)
        write_text(page, findings_markdown(tables, _link(to, page.parent), preset))
        written.append(page)
    if readme:
        readme = Path(readme)
        target = os.path.relpath(Path(page).resolve(), readme.resolve().parent) if page else None
        splice_readme(readme, readme_table(findings_markdown(tables, _link(to, readme.parent), preset), preset, target))
        written.append(readme)
    return written


def readme_table(page: str, preset: str | None = None, link: str | None = None) -> str:
    """The README's short results table: one row per section of the page (its ``###`` heading) with the
    section's finding, the sentence each section writes after its heading (``**Finding.** …``, with its
    numbers), pointing at the results page (``link``, relative to the README) for the rest."""
    rows, heading = [], None
    for line in page.splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
        elif line.startswith(FINDING) and heading is not None:
            rows.append((heading, line[len(FINDING) :].strip().replace("|", "\\|")))
            heading = None
    where = f" (preset `{preset}`)" if preset else ""
    numbers = f"; figures and caveats: [{link}]({Path(link).as_posix()})" if link else ""
    return (
        "\n".join([f"| section | finding{where}{numbers} |", "|---|---|", *(f"| {h} | {f} |" for h, f in rows)]) + "\n"
    )
