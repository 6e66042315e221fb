"""How every figure looks: sizes for the docs page, fonts, the colour-blind-safe palette with a fixed
colour and marker per method, the :class:`Figure` record (name, caption, draw), saving with the
``min_font_px`` PNG chunk, and the error-bar and legend helpers the curve figures share.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...core.io import atomic_path

DEFAULT_NORMALIZATION = "per_step"
FIGURE_DPI = 100
PAGE_WIDTH_PX = 680
"""The docs content column at a 1280 px window (680–900 px by theme and sidebar): an image up to this
wide is shown at its natural size."""
FONT_PT = 10.0
"""Axis labels, titles, legends: 10 pt at 100 dpi is 13.9 px, the size of the page's own small text."""
SMALL_FONT_PT = 9.0
"""Tick labels, the smallest text of a curve figure: 12.5 px at 100 dpi."""
GRID_FONT_PX = 14
"""Labels of an image grid, in pixels (Pillow draws at the natural size)."""
MIN_FONT_KEY = "min_font_px"
"""PNG text chunk: the smallest font size in the saved image, in pixels at its natural size."""
GRID_CELL_MIN_PX = 64
"""The smallest image cell of a grid: a 32 px sample magnified twice; more columns than fit the page at
this size make the grid wider than the page (and its ``min_font_px`` says so once it is shrunk)."""
GRID_CELL_MAX_PX = 128
"""The largest cell: a 32 px sample magnified four times; larger cells only make a tall grid taller."""
FIDELITY_LEVELS = (0.1, 0.2, 0.3)
"""The LPIPS levels at which the guidance-methods grid shows each method (issue 37's matched levels)."""
MATCH_TOLERANCE = 0.05
"""How far a scale's mean LPIPS may lie from a level to be shown at it: half the levels' spacing, so a
sample in the 0.3 column is not one that moved by 0.5."""

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
PALETTE = [
    OKABE_ITO["blue"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["bluish green"],
    OKABE_ITO["orange"],
    OKABE_ITO["reddish purple"],
    OKABE_ITO["sky blue"],
    OKABE_ITO["black"],
    "#882255",  # Tol's wine: Okabe–Ito's yellow is too pale for a line on white
    "#999933",  # Tol's olive
    "#777777",
]
"""Ten line colours: Okabe–Ito without its yellow, then two of Paul Tol's dark colours and a grey."""
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
METHOD_STYLES = {
    name: (PALETTE[i], MARKERS[i])
    for i, name in enumerate(
        ["x0", "dps", "classifier", "mpgd", "freedom", "through_unet", "ugd", "tfg", "lgd", "attention_distillation"]
    )
}
"""A fixed colour and marker per guidance method; the pairs that issue 35 found hard to tell apart
(dps/ugd, freedom/mpgd) differ in hue and marker."""


# ------------------------------------------------------------------------------------------- basics
def unique(values) -> list:
    return list(dict.fromkeys(values))


def layer_set_label(layers: str) -> str:
    names = str(layers).split("-")
    return names[0] if len(names) == 1 else f"{names[0]}…{names[-1]} ({len(names)})"


def caption_name(figure: str) -> str:
    """The caption file beside the figure ``figure`` (a file name or path): ``x_grid.png`` ->
    ``x_grid.caption.rst``.
    """
    path = Path(figure)
    return str(path.with_name(f"{path.stem}.caption.rst")) if path.parent != Path() else f"{path.stem}.caption.rst"


def series_style(name: str, index: int) -> dict:
    """Colour and marker of a line: the method's own when ``name`` starts with a method's name, else the
    ``index``-th of the palette.
    """
    method = str(name).split(",")[0]
    color, marker = METHOD_STYLES.get(method, (PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)]))
    return {"color": color, "marker": marker}


def line_styles(names: Sequence[str]) -> dict[str, dict]:
    """Distinct styles for ``names``: a method's own colour unless two lines share it (then the palette's
    by position, and the markers by position).
    """
    styles = {name: series_style(name, i) for i, name in enumerate(names)}
    if len({s["color"] for s in styles.values()}) < len(names):
        styles = {
            name: {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
            for i, name in enumerate(names)
        }
    return styles


@dataclass(frozen=True)
class Figure:
    """One figure of an experiment: its file name, its caption and the function that draws it to a path."""

    name: str
    caption: str
    draw: Callable[[Path], None]


# ------------------------------------------------------------------------------------ matplotlib figures
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": FONT_PT,
            "axes.titlesize": FONT_PT,
            "axes.labelsize": FONT_PT,
            "legend.fontsize": SMALL_FONT_PT,
            "legend.title_fontsize": SMALL_FONT_PT,
            "xtick.labelsize": SMALL_FONT_PT,
            "ytick.labelsize": SMALL_FONT_PT,
            "figure.titlesize": FONT_PT + 1,
            "svg.hashsalt": "stylediff",
        }
    )
    return plt


def min_font_px(fig) -> float:
    """The smallest font size among the figure's drawn, non-empty texts, in pixels at ``FIGURE_DPI``."""
    from matplotlib.text import Text

    fig.canvas.draw()
    sizes = [
        text.get_fontsize()
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and text.get_figure() is not None
    ]
    return min(sizes) * FIGURE_DPI / 72 if sizes else float("nan")


def _png_metadata(font_px: float) -> dict:
    return {"Software": None, MIN_FONT_KEY: f"{font_px:.1f}"}


def _save(fig, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG at ``FIGURE_DPI`` with its ``min_font_px`` text chunk."""
    plt = _pyplot()
    metadata = _png_metadata(min_font_px(fig))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata=metadata)
    plt.close(fig)


def read_min_font_px(path: str | os.PathLike) -> float:
    """The ``min_font_px`` chunk of a PNG written here (NaN when it has none)."""
    from PIL import Image

    with Image.open(path) as img:
        return float(img.text.get(MIN_FONT_KEY, "nan"))


def _dodge(count: int, width: float) -> list[float]:
    """Offsets that spread ``count`` lines over ``width`` around 0 (their error bars no longer overlap)."""
    return [width * (i - (count - 1) / 2) / max(count - 1, 1) for i in range(count)]


def _errorbar_lines(frame, x: str, y: str, line: str, xorder: list) -> dict[str, list[tuple[float, float, float]]]:
    """{line value: [(position index, mean, std)]}: ``y`` over the remaining rows at each ``x``."""
    out = {}
    for name in unique(frame[line]):
        sub = frame[frame[line] == name]
        points = []
        for pos, value in enumerate(xorder):
            values = sub[sub[x] == value][y].astype(float).dropna()
            if len(values):
                points.append((pos, values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0))
        out[str(name)] = points
    return out


def coinciding(lines: dict[str, list[tuple[float, float, float]]], tolerance: float = 0.01) -> list[tuple[str, str]]:
    """Pairs of lines whose means differ by less than ``tolerance`` of the plotted range at every shared
    point: drawn on top of each other, they would look like one line.
    """
    values = [m for points in lines.values() for _, m, _ in points]
    span = (max(values) - min(values)) if values else 0.0
    pairs = []
    names = list(lines)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pa, pb = dict((p, m) for p, m, _ in lines[a]), dict((p, m) for p, m, _ in lines[b])
            shared = set(pa) & set(pb)
            if len(shared) > 1 and all(abs(pa[p] - pb[p]) <= tolerance * span for p in shared):
                pairs.append((a, b))
    return pairs


def _draw_errorbars(
    ax, lines, positions: Sequence[float], styles: dict[str, dict], dodge: Callable[[float, float], float]
):
    """Each line's mean ± std, its x moved by ``dodge(x, offset)`` (offsets spread over [-0.5, 0.5])."""
    for (name, points), offset in zip(lines.items(), _dodge(len(lines), 1.0)):
        ax.errorbar(
            [dodge(positions[p], offset) for p, _, _ in points],
            [m for _, m, _ in points],
            yerr=[s for _, _, s in points],
            capsize=2,
            linewidth=1.2,
            markersize=5,
            label=name,
            **styles[name],
        )


def _coincide_text(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return " Lines that coincide (drawn side by side): " + "; ".join(f"{a} with {b}" for a, b in pairs) + "."


def _legend_below(fig, axes, ncol: int, title_lines: int = 0) -> None:
    """One legend under the panels (from the first panel's lines), room kept for it and for a suptitle of
    ``title_lines`` lines.
    """
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
    rows = math.ceil(len(labels) / ncol)
    legend_inches, title_inches = 0.12 + 0.21 * rows, 0.25 * title_lines
    height = fig.get_figheight()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    fig.tight_layout(pad=0.4, rect=(0, legend_inches / height, 1, 1 - title_inches / height))


# --------------------------------------------------------------------------------------------- helpers
def _model_text(frame) -> str:
    return ", ".join(dict.fromkeys(frame["model"].astype(str))) if "model" in frame else "(model not recorded)"


def _lookup(frame, keys: Sequence[str], column: str) -> dict[tuple, str]:
    """{(row's ``keys`` values): row's ``column``}; empty when the table has no such column (a table
    without image paths still gives its captions).
    """
    if column not in frame:
        return {}
    return {tuple(row[k] for k in keys): row[column] for _, row in frame.iterrows()}


def _first_seed(frame):
    return frame[frame["seed"] == sorted(frame["seed"].unique())[0]] if "seed" in frame else frame


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _listing(values: Sequence) -> str:
    return ", ".join(str(v) for v in values)


def _scale_text(scale: float) -> str:
    return "unguided" if scale == 0 else f"scale {scale:g}"
