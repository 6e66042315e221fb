"""Publishing a workflow run: the one step that writes tracked files, run on purpose.

A run writes only under its results folder (figures, summaries and findings under ``RESULTS/report``).
``snakemake publish --cores 2`` (or ``stylediff publish``) copies the summaries and figures into the
committed folder (``report/`` for the quick preset), and, for a preset with ``readme: true``, copies its
tables into ``tables/`` there, writes the results page ``docs/results.md`` (:func:`stylediff.reporting.findings.findings_markdown`
of the published tables, figure links pointing at the published figures) and splices a short table of its
findings, one row per section (its heading and its one-sentence finding with the numbers) and a link to the page,
into README.md between its markers.
Any Markdown file given with ``captions_in`` (the README, the docs home page) gets, between each
``<!-- caption: FIGURE -->`` and ``<!-- /caption -->``, the caption the workflow wrote for that figure
(:func:`splice_captions`), so a page's caption is the figure's own. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import atomic_path, write_text
from .figures import caption_name
from .findings import findings_markdown, splice_readme
from .markdown import FINDING

CAPTION_BEGIN, CAPTION_END = "<!-- caption: ", "<!-- /caption -->"
"""Markers around a figure's caption in a Markdown file: ``<!-- caption: PATH -->`` (PATH the figure,
relative to the file) … ``<!-- /caption -->``."""


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
    captions_in: list[str | os.PathLike] | None = None,
) -> list[Path]:
    """Copy ``files`` into the folder ``to`` and ``tables`` ({experiment: csv}) into ``to/tables`` (atomically;
    a file whose bytes are unchanged is left alone, so its modification time stays); from the copied tables,
    write the results ``page`` and/or splice them into ``readme``, their figure links pointing into ``to``;
    splice the captions of the figures in ``to`` into the Markdown files ``captions_in``. Returns the paths
    written."""
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
    for markdown in map(Path, captions_in or []):
        if splice_captions(markdown, to) and markdown not in written:
            written.append(markdown)
    return written


def splice_captions(markdown: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Replace the text between each caption marker pair of ``markdown`` whose figure lies in ``folder``
    by that figure's caption file (:func:`stylediff.reporting.figures.caption_name`) in italics; markers
    of figures elsewhere are left alone. Returns whether the file changed."""
    import re

    markdown, folder = Path(markdown), Path(folder).resolve()
    if not markdown.is_file():
        raise ConfigError(f"{markdown} does not exist")
    text = markdown.read_text()
    pattern = re.compile(re.escape(CAPTION_BEGIN) + r"(\S+) -->\n.*?" + re.escape(CAPTION_END), re.S)

    def caption(found) -> str:
        figure = (markdown.parent / found.group(1)).resolve()
        if figure.parent != folder:
            return found.group(0)
        source = figure.parent / caption_name(figure.name)
        if not source.is_file():
            raise ConfigError(f"{markdown}: no caption {source} for {found.group(1)}: run the workflow's figures first")
        # blank lines around the caption: Markdown reads it as its own paragraph between the two comments
        return f"{CAPTION_BEGIN}{found.group(1)} -->\n\n*{source.read_text().strip()}*\n\n{CAPTION_END}"

    new = pattern.sub(caption, text)
    if new != text:
        write_text(markdown, new)
    return new != text


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
