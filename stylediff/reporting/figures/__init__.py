"""Figures of the experiment workflow, drawn for the size the docs page shows them, each with the caption
its own parameters give.

The package: :mod:`.style` (sizes, fonts, palette, the :class:`Figure` record, saving), :mod:`.grids`
(labelled image grids), :mod:`.optimisation` (Part 1's figures), :mod:`.guidance` (guided sampling's), and
here the driver.

Every figure of an experiment is a :class:`Figure`: its file name, its caption (a sentence built from the
same values the figure is drawn from, so a caption cannot say three scales when the figure has five) and
the function that draws it. :func:`make_figures` writes each PNG and, beside it, its caption
(:func:`caption_name`: ``<stem>.caption.rst``, plain text that reads the same as reStructuredText for
``snakemake --report`` and as Markdown for the results page); :func:`figure_captions` gives the captions
without drawing (the results page puts them under its figures).

Sizes: the docs content column is about 680 px wide at a 1280 px window (:data:`PAGE_WIDTH_PX`); a wider
image is shrunk, and its text with it. So curve figures are at most that wide at :data:`FIGURE_DPI`, with
no text under :data:`SMALL_FONT_PT`; image grids (:func:`labelled_grid`, drawn with Pillow so that a
32 px sample is magnified by whole pixels) fit their cells to that width, with labels of
:data:`GRID_FONT_PX`. Every PNG carries its smallest font size in pixels as the PNG text chunk
``min_font_px`` (:data:`MIN_FONT_KEY`): the docs check reads it and scales it by the displayed width over
the natural width. The PNGs carry no timestamp or version, so the same table gives byte-identical files.

Colours: the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies) and two more
dark colours, each method with a fixed colour and marker (:data:`METHOD_STYLES`) so a method looks the
same in every figure, and up to 10 lines stay apart by marker as well as colour.

matplotlib and Pillow are imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ...core.errors import ConfigError
from ...core.io import write_text
from ..tables import read_table
from .grids import labelled_grid
from .guidance import guidance_figures, guidance_methods_figures, matched_fidelity_figure
from .optimisation import inversion_figures, texture_figures, transfer_figures
from .style import MIN_FONT_KEY, Figure, caption_name, layer_set_label, read_min_font_px, unique

__all__ = [
    "FIGURES",
    "MIN_FONT_KEY",
    "Figure",
    "caption_name",
    "figure_captions",
    "guidance_figures",
    "guidance_methods_figures",
    "inversion_figures",
    "labelled_grid",
    "layer_set_label",
    "make_figures",
    "matched_fidelity_figure",
    "read_min_font_px",
    "texture_figures",
    "transfer_figures",
    "unique",
    "with_captions",
]

# ---------------------------------------------------------------------------------------------- driver
FIGURES: dict[str, Callable[..., list[Figure]]] = {
    "inversion": inversion_figures,
    "texture": texture_figures,
    "transfer": transfer_figures,
    "guidance": guidance_figures,
    "guidance_methods": guidance_methods_figures,
}
"""Experiment -> the function listing its figures from its table."""


def _figures(experiment: str, frame) -> list[Figure]:
    if experiment not in FIGURES:
        raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(FIGURES)}")
    if frame.empty:
        raise ConfigError(f"the {experiment} table has no rows")
    return FIGURES[experiment](frame)


def figure_captions(experiment: str, frame) -> dict[str, str]:
    """{figure file name: caption} of ``experiment``'s figures from its table, without drawing them."""
    return {figure.name: figure.caption for figure in _figures(experiment, frame)}


def make_figures(experiment: str, table: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Draw ``experiment``'s figures (the plan's ``figures`` names) from its table into ``out_dir``, each
    with its caption file beside it (:func:`caption_name`). Returns the PNGs written.
    """
    frame = read_table(table)
    if frame.empty:
        raise ConfigError(f"table {table} has no rows")
    written = []
    for figure in _figures(experiment, frame):
        path = Path(out_dir) / figure.name
        figure.draw(path)
        write_text(Path(out_dir) / caption_name(figure.name), figure.caption + "\n")
        written.append(path)
    return written


def with_captions(lines: list[str], captions: dict[str, str]) -> list[str]:
    """Markdown ``lines`` with, after every image line ``![…](…/name)`` whose ``name`` has a caption, a
    paragraph holding that caption in italics.
    """
    import re

    out = []
    for line in lines:
        out.append(line)
        found = re.fullmatch(r"!\[[^\]]*\]\(([^)\s]+)\)(\{[^}]*\})?", line.strip())
        if found and Path(found.group(1)).name in captions:
            out += ["", f"*{captions[Path(found.group(1)).name]}*", ""]
    return out
