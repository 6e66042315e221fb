"""Figures of the experiment workflow, drawn for the size the docs page shows them, each with the caption
its own parameters give.

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

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import atomic_path, write_text
from .tables import read_table, recorded_label, with_shared_baselines

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
    ``x_grid.caption.rst``."""
    path = Path(figure)
    return str(path.with_name(f"{path.stem}.caption.rst")) if path.parent != Path() else f"{path.stem}.caption.rst"


def series_style(name: str, index: int) -> dict:
    """Colour and marker of a line: the method's own when ``name`` starts with a method's name, else the
    ``index``-th of the palette."""
    method = str(name).split(",")[0]
    color, marker = METHOD_STYLES.get(method, (PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)]))
    return {"color": color, "marker": marker}


def line_styles(names: Sequence[str]) -> dict[str, dict]:
    """Distinct styles for ``names``: a method's own colour unless two lines share it (then the palette's
    by position, and the markers by position)."""
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
    point: drawn on top of each other, they would look like one line."""
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
    ``title_lines`` lines."""
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
    rows = math.ceil(len(labels) / ncol)
    legend_inches, title_inches = 0.12 + 0.21 * rows, 0.25 * title_lines
    height = fig.get_figheight()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    fig.tight_layout(pad=0.4, rect=(0, legend_inches / height, 1, 1 - title_inches / height))


# ------------------------------------------------------------------------------------------ image grids
def _as_image(image):
    """A PIL RGB image from a path, a PIL image, or an (H, W, 3) / (3, H, W) / (1, 3, H, W) array or
    tensor with values in [0, 1] (floats) or 0…255 (integers)."""
    import numpy as np
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as img:
            return img.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if hasattr(image, "detach"):  # a torch tensor, without importing torch here
        image = image.detach().float().cpu().numpy()
    array = np.asarray(image)
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 2 or array.shape[-1] == 1:
        array = np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
    if array.dtype.kind == "f":
        array = np.clip(np.round(array * 255), 0, 255)
    return Image.fromarray(array.astype(np.uint8), "RGB")


GRID_GLYPHS = str.maketrans({"×": "x", "≈": "~", "–": "-", "—": "-", "→": "->"})
"""Characters Pillow's bundled font (Aileron) has no glyph for, and what the grids draw instead."""


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _wrap(text: str, font, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` px: at its newlines, then between words; a word
    wider than the line after its ``_``, ``-`` or ``…`` (``sliced_`` / ``wasserstein``), and between
    characters where a part is still too wide."""
    import re

    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            if font.getlength(word) <= width:
                line = word
                continue
            for part in re.findall(r"[^_\-…]+[_\-…]?|[_\-…]", word):
                if font.getlength(line + part) <= width:
                    line += part
                    continue
                if line:
                    lines.append(line)
                line = ""
                for char in part:
                    if font.getlength(line + char) > width and line:
                        lines.append(line)
                        line = ""
                    line += char
        lines.append(line)
    return lines


def _cell_size(images: Sequence, columns: int, label_width: int, width: int) -> int:
    """The side of an image cell: the page width shared by the columns, rounded down to a whole multiple
    (two or more) of the smallest image side when that fits (a 32 px sample at 64, 96, 128 px, pixel for
    pixel)."""
    gap = 4
    available = (width - label_width - 8) // max(columns, 1) - gap
    available = max(GRID_CELL_MIN_PX, min(GRID_CELL_MAX_PX, available))
    sides = [max(img.size) for img in images]
    smallest = min(sides) if sides else available
    return smallest * (available // smallest) if 2 * smallest <= available else available


def labelled_grid(
    images: Sequence[Sequence],
    row_labels: Sequence[str] | None,
    col_labels: Sequence[str] | None,
    out: str | os.PathLike,
    *,
    title: str | None = None,
    notes: Sequence[Sequence[str | None]] | None = None,
    width: int = PAGE_WIDTH_PX,
) -> Path:
    """An image grid with its labels, sized for the docs page, written to ``out`` (PNG, with the
    ``min_font_px`` chunk).

    Args:
        images: rows of cells; a cell is an image path, a PIL image, an array or tensor (see
            :func:`_as_image`), or None for an empty cell. A row may be shorter than the longest.
        row_labels: one label per row, drawn left of it (None: no label column).
        col_labels: one label per column, drawn above it (None: no header).
        out: the PNG to write.
        title: a line (or lines) above the grid, wrapped to its width.
        notes: per cell, a text drawn under its image (e.g. the scale it was sampled at), or None.
        width: the width to fit (the page's content column); the cells never go below
            ``GRID_CELL_MIN_PX``, so a grid of many columns is wider.

    Returns:
        ``out`` as a Path.

    Each image is fitted into a square cell keeping its aspect ratio: magnified by a whole factor with
    nearest-neighbour sampling when small (pixels stay pixels), reduced with Lanczos when large. Text is
    drawn in Pillow's bundled font, whose missing characters are replaced (:data:`GRID_GLYPHS`).
    """
    from PIL import Image, ImageDraw

    font = _font(GRID_FONT_PX)
    line_height = GRID_FONT_PX + 4
    title, row_labels, col_labels, notes = _printable(title, row_labels, col_labels, notes)
    loaded = [[_cell_image(cell) for cell in row] for row in images]
    columns = max((len(row) for row in loaded), default=0)
    if col_labels is not None and len(col_labels) > columns:
        columns = len(col_labels)
    label_width = 0
    row_lines = []
    if row_labels is not None:
        if len(row_labels) != len(loaded):
            raise ValueError(f"{len(row_labels)} row labels for {len(loaded)} rows")
        row_lines = [_wrap(label, font, 150) for label in row_labels]
        label_width = 8 + int(max((font.getlength(line) for lines in row_lines for line in lines), default=0))
    cell = _cell_size([img for row in loaded for img in row if img is not None], columns, label_width, width)
    gap, margin = 4, 4
    header_lines = [_wrap(label, font, cell) for label in (col_labels or [])]
    header_height = line_height * max((len(lines) for lines in header_lines), default=0) + (4 if col_labels else 0)
    note_lines = [[_wrap(note, font, cell) if note else [] for note in row] for row in (notes or [])]
    note_height = line_height * max((len(lines) for row in note_lines for lines in row), default=0)
    total_width = margin + label_width + columns * (cell + gap) + margin
    title_lines = _wrap(title, font, total_width - 2 * margin) if title else []
    title_height = line_height * len(title_lines) + (6 if title else 0)
    row_height = cell + note_height + gap
    total_height = margin + title_height + header_height + len(loaded) * row_height + margin
    canvas = Image.new("RGB", (total_width, total_height), "white")
    draw = ImageDraw.Draw(canvas)
    ink = (34, 34, 34)
    y = margin
    for line in title_lines:
        draw.text((margin, y), line, font=font, fill=ink)
        y += line_height
    y += 6 if title else 0
    x0 = margin + label_width
    for j, lines in enumerate(header_lines):
        top = y + header_height - 4 - line_height * len(lines)
        _draw_centred(draw, lines, font, x0 + j * (cell + gap), cell, top, line_height, ink)
    y += header_height
    for i, row in enumerate(loaded):
        top = y + i * row_height
        if row_labels is not None:
            lines = row_lines[i]
            start = top + (cell - line_height * len(lines)) / 2
            for k, line in enumerate(lines):
                draw.text((margin, start + k * line_height), line, font=font, fill=ink)
        for j, img in enumerate(row):
            left = x0 + j * (cell + gap)
            if img is not None:
                _paste_fitted(canvas, img, cell, left, top)
            if notes is not None and i < len(note_lines) and j < len(note_lines[i]):
                lines = note_lines[i][j]
                # under the image; in the middle of an empty cell (the note says why it is empty)
                start = top + cell if img is not None else top + (cell - line_height * len(lines)) / 2
                _draw_centred(draw, lines, font, left, cell, start, line_height, ink)
    text_drawn = bool(title_lines or header_lines or row_lines or any(any(r) for r in note_lines))
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(MIN_FONT_KEY, f"{float(GRID_FONT_PX if text_drawn else math.nan):.1f}")
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG", pnginfo=info)
    return Path(out)


def _printable(title, row_labels, col_labels, notes):
    """The grid's texts with the characters Pillow's bundled font lacks replaced (:data:`GRID_GLYPHS`)."""

    def fix(text):
        return str(text).translate(GRID_GLYPHS) if text else text

    return (
        fix(title),
        None if row_labels is None else [fix(label) for label in row_labels],
        None if col_labels is None else [fix(label) for label in col_labels],
        [[fix(note) for note in row] for row in notes] if notes else notes,
    )


def _draw_centred(draw, lines, font, left: float, width: float, top: float, line_height: int, ink) -> None:
    """``lines`` centred in the column [left, left + width], from ``top`` down."""
    for k, line in enumerate(lines):
        draw.text((left + (width - font.getlength(line)) / 2, top + k * line_height), line, font=font, fill=ink)


def _cell_image(cell):
    """A grid cell as a PIL image, or None for an empty cell (None, or a path that is not a file)."""
    if cell is None or (isinstance(cell, (str, os.PathLike)) and not Path(cell).is_file()):
        return None
    return _as_image(cell)


def _paste_fitted(canvas, img, cell: int, left: int, top: int) -> None:
    """``img`` centred in the square cell at (left, top), keeping its aspect ratio."""
    from PIL import Image

    ratio = cell / max(img.size)
    ratio = math.floor(ratio) if ratio >= 2 else ratio  # whole pixels where magnified twice or more
    size = (max(1, round(img.width * ratio)), max(1, round(img.height * ratio)))
    fitted = img.resize(size, Image.NEAREST if ratio >= 1 else Image.LANCZOS)
    canvas.paste(fitted, (left + (cell - fitted.width) // 2, top + (cell - fitted.height) // 2))


# --------------------------------------------------------------------------------------------- helpers
def _model_text(frame) -> str:
    return ", ".join(dict.fromkeys(frame["model"].astype(str))) if "model" in frame else "(model not recorded)"


def _lookup(frame, keys: Sequence[str], column: str) -> dict[tuple, str]:
    """{(row's ``keys`` values): row's ``column``}; empty when the table has no such column (a table
    without image paths still gives its captions)."""
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


# ------------------------------------------------------------------------------------------- inversion
def inversion_figures(frame) -> list[Figure]:
    from ..networks.vgg19_layers import LAYER_INDEX

    plt = _pyplot()
    model = _model_text(frame)
    poolings = unique(frame["pooling"]) if "pooling" in frame else []
    pooling = ""
    if len(poolings) > 1:  # the grid and curves show the first pooling; results.md compares them
        frame = frame[frame["pooling"] == poolings[0]]
        pooling = f", {poolings[0]} pooling (of {_listing(poolings)})"
    first = _first_seed(frame)
    seed = first["seed"].iloc[0]
    images = unique(frame["image"])
    layers = sorted(unique(frame["layer"]), key=lambda name: LAYER_INDEX.get(name, 0))
    outputs, refs = _lookup(first, ["image", "layer"], "output"), _lookup(first, ["image"], "reference")
    columns = ["original"] + layers
    seeds = sorted(frame["seed"].unique())
    metric = "lpips_vgg" if "lpips_vgg" in frame else "psnr"

    def grid(path):
        labelled_grid(
            [[refs.get((image,))] + [outputs.get((image, layer)) for layer in layers] for image in images],
            images,
            columns,
            path,
            title=f"Feature inversion, seed {seed}{pooling} ({model})",
        )

    def curves(path):
        fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH_PX / FIGURE_DPI, 3.4))
        lines = {}
        for ax, column in zip(axes, ("feature_error", metric)):
            lines[column] = _errorbar_lines(frame, "layer", column, "image", layers)
            styles = line_styles(list(lines[column]))
            _draw_errorbars(ax, lines[column], range(len(layers)), styles, lambda x, o: x + 0.3 * o)
            ax.set_xticks(range(len(layers)))
            ax.set_xticklabels(layers, rotation=45, ha="right")
            ax.set_ylabel(recorded_label(frame, column))
            ax.grid(alpha=0.3)
        axes[0].set_title("feature error at the layer")
        axes[1].set_title("LPIPS to the original" if metric == "lpips_vgg" else "PSNR")
        _legend_below(fig, axes, ncol=min(len(images), 5))
        _save(fig, path)

    n_seeds = len(seeds)
    return [
        Figure(
            "inversion_grid.png",
            f"Feature inversion (Mahendran and Vedaldi): {_count(len(images), 'image')} (rows; the original in "
            f"the first column) each reconstructed from noise by matching its activations at one layer of "
            f"{model}: {_listing(layers)} (columns, shallow to deep); seed {seed}{pooling}.",
            grid,
        ),
        Figure(
            "inversion_error.png",
            f"Inversion error against the inverted layer ({_listing(layers)}), one line per image "
            f"({_count(len(images), 'image')}): left, the relative feature error at that layer; right, "
            + ("LPIPS (VGG) between the reconstruction and the original" if metric == "lpips_vgg" else "PSNR")
            + f". Mean ± standard deviation over {_count(n_seeds, 'seed')}{pooling}; {model}.",
            curves,
        ),
    ]


# --------------------------------------------------------------------------------------------- texture
def texture_figures(frame) -> list[Figure]:
    plt = _pyplot()
    model = _model_text(frame)
    first = _first_seed(frame)
    seed = first["seed"].iloc[0]
    styles = unique(frame["style"])
    layer_sets = sorted(unique(frame["layers"]), key=lambda s: len(str(s).split("-")))
    losses = unique(frame["loss"])
    loss0 = "gram" if "gram" in losses else losses[0]
    deepest = layer_sets[-1]
    refs = _lookup(first, ["style"], "reference")
    labels = [layer_set_label(s) for s in layer_sets]
    headers = [str(s).split("-")[0] if i == 0 else f"…{str(s).split('-')[-1]}" for i, s in enumerate(layer_sets)]
    by_layers = _lookup(first[first["loss"] == loss0], ["style", "layers"], "output")
    by_loss = _lookup(first[first["layers"] == deepest], ["style", "loss"], "output")
    seeds = sorted(frame["seed"].unique())
    ticks = [f"…{str(s).split('-')[-1]}" for s in layer_sets]

    def layers_grid(path):
        labelled_grid(
            [[refs.get((style,))] + [by_layers.get((style, s)) for s in layer_sets] for style in styles],
            styles,
            ["style"] + headers,
            path,
            title=f"Textures by layer set, loss {loss0}, seed {seed} ({model})",
        )

    def losses_grid(path):
        labelled_grid(
            [[refs.get((style,))] + [by_loss.get((style, loss)) for loss in losses] for style in styles],
            styles,
            ["style"] + losses,
            path,
            title=f"Textures by loss, {layer_set_label(deepest)}, seed {seed} ({model})",
        )

    def curves(path):
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH_PX / FIGURE_DPI, 3.4))
        lines = _errorbar_lines(frame, "layers", "gram_dist_mean", "loss", layer_sets)
        _draw_errorbars(ax, lines, range(len(layer_sets)), line_styles(list(lines)), lambda x, o: x + 0.25 * o)
        ax.set_xticks(range(len(layer_sets)))
        ax.set_xticklabels(ticks)
        ax.set_xlabel("nested layer set (relu1_1 … the layer named)")
        ax.set_ylabel(recorded_label(frame, "gram_dist_mean"))
        ax.grid(alpha=0.3)
        ax.legend(title="optimised loss", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        fig.tight_layout(pad=0.4)
        _save(fig, path)

    spread = f"mean ± standard deviation over {_count(len(styles), 'style')} × {_count(len(seeds), 'seed')}"
    return [
        Figure(
            "texture_layers_grid.png",
            f"Texture synthesis (Gatys et al. 2015) with nested layer sets: each of {_count(len(styles), 'style')} "
            f"(rows; the style image first) synthesised from noise by the {loss0} loss at "
            f"{_listing(labels)} (columns, each headed by its deepest layer); seed {seed}; {model}.",
            layers_grid,
        ),
        Figure(
            "texture_losses_grid.png",
            f"Texture synthesis with each style loss ({_listing(losses)}; columns) at the deepest layer set "
            f"{layer_set_label(deepest)}, {_count(len(styles), 'style')} (rows; the style image first); "
            f"seed {seed}; {model}.",
            losses_grid,
        ),
        Figure(
            "texture_gram_vs_layers.png",
            f"Gram distance to the style image (mean over relu1_1…relu5_1) against the layer set optimised "
            f"({_listing(ticks)}), one line per optimised loss ({_listing(losses)}); {spread}. Every output is "
            f"graded by the same Gram metric whatever loss made it; {model}.",
            curves,
        ),
    ]


# -------------------------------------------------------------------------------------------- transfer
def transfer_figures(frame) -> list[Figure]:
    model = _model_text(frame)
    first = _first_seed(frame)
    seed = first["seed"].iloc[0]
    losses = unique(frame["loss"])
    pairs = unique(zip(first["content"], first["style"]))
    contents, refs = _lookup(first, ["content"], "baseline"), _lookup(first, ["style"], "reference")
    outputs = _lookup(first, ["content", "style", "loss"], "output")
    columns = ["content", "style"] + losses

    def grid(path):
        labelled_grid(
            [[contents.get((c,)), refs.get((s,))] + [outputs.get((c, s, loss)) for loss in losses] for c, s in pairs],
            [f"{c} × {s}" for c, s in pairs],
            columns,
            path,
            title=f"Style transfer by loss, seed {seed} ({model})",
        )

    return [
        Figure(
            "transfer_grid.png",
            f"Neural style transfer (Gatys et al. 2016): {_count(len(pairs), 'content × style pair')} (rows; "
            f"content and style images in the first two columns) with each style loss ({_listing(losses)}; "
            f"columns); seed {seed}; {model}.",
            grid,
        )
    ]


# -------------------------------------------------------------------------------------------- guidance
def guidance_figures(frame) -> list[Figure]:
    figures = []
    for slug in unique(frame["model_slug"]):
        figures += _guidance_model_figures(frame[frame["model_slug"] == slug], slug)
    return figures


def _guidance_model_figures(sub, slug: str) -> list[Figure]:
    plt = _pyplot()
    model = _model_text(sub)
    first = _first_seed(sub)
    seed = first["seed"].iloc[0]
    # the grids show the first loss, layer set and window and the default normalisation; the curves
    # compare them (a table without one of these axes has one value of it)
    picked = {column: unique(sub[column])[0] for column in ("loss", "layers", "window") if column in sub}
    picked.update({"normalization": DEFAULT_NORMALIZATION} if "normalization" in sub else {})
    grid = first
    for column, value in picked.items():
        grid = grid[grid[column] == value]
    window0 = picked.get("window")
    loss = f"loss {picked['loss']}" if "loss" in picked else "the style loss"
    loss += f" at {layer_set_label(picked['layers'])}" if "layers" in picked else ""
    styles = unique(sub["style"])
    seeds = sorted(sub["seed"].unique())
    scales = sorted(unique(sub["scale"]))
    window = "" if window0 is None or sub["window"].nunique() == 1 else f", window {window0}"
    figures = []
    refs = _lookup(grid, ["style"], "reference")
    for method in unique(sub["method"]):
        outputs = _lookup(grid[grid["method"] == method], ["style", "scale"], "output")

        def draw(path, outputs=outputs, method=method):
            labelled_grid(
                [[refs.get((style,))] + [outputs.get((style, scale)) for scale in scales] for style in styles],
                styles,
                ["style"] + [_scale_text(s) for s in scales],
                path,
                title=f"Guidance {method}, {loss}{window}, seed {seed} ({model})",
            )

        figures.append(
            Figure(
                f"guidance_{slug}_{method}_grid.png",
                f"Style-guided sampling, guidance mode {method}{window}: {_count(len(styles), 'style')} (rows; the "
                f"style image first) at {_count(len([s for s in scales if s > 0]), 'scale')} "
                f"({_listing(f'{s:g}' for s in scales if s > 0)}; columns), the unguided sample (scale 0, same "
                f"seed) first; {loss}; seed {seed}; model {model}.",
                draw,
            )
        )
    curves = with_shared_baselines(sub).copy()
    if "window" in curves and curves["window"].nunique() > 1:  # one line per method, window, normalisation
        curves["method"] = curves["method"] + ", window " + curves["window"].astype(str)
    if "normalization" in curves and curves["normalization"].nunique() > 1:
        curves["method"] = curves["method"] + ", " + curves["normalization"].astype(str)
    titles = {"gram_dist_mean": "Gram distance to the style", "lpips_vgg": "LPIPS to the unguided sample"}
    metrics = [m for m in titles if m in curves and curves[m].notna().any()]
    lines = {m: _errorbar_lines(curves, "scale", m, "method", scales) for m in metrics}
    pairs = (
        [p for p in coinciding(lines[metrics[0]]) if all(p in coinciding(lines[m]) for m in metrics)] if metrics else []
    )
    positive = [s for s in scales if s > 0]
    modes = unique(curves["method"])
    panels = {
        "gram_dist_mean": "the Gram distance of the samples to the style image (mean over relu1_1…relu5_1)",
        "lpips_vgg": "LPIPS (VGG) to the unguided sample of the same seed",
    }

    def draw_curves(path):
        height = 3.2 + 0.22 * math.ceil(len(modes) / 2)
        fig, axes = plt.subplots(1, len(metrics), figsize=(PAGE_WIDTH_PX / FIGURE_DPI, height), squeeze=False)
        axes = list(axes[0])
        styles = line_styles(modes)
        for ax, metric in zip(axes, metrics):
            # dodge multiplicatively: the axis is symlog, scale 0 (the shared unguided sample) stays put
            _draw_errorbars(ax, lines[metric], scales, styles, lambda x, o: x * (1.25**o) if x > 0 else x)
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
            ax.set_xticks(scales)
            ax.set_xticklabels([f"{s:g}" for s in scales])
            ax.set_xlabel("guidance scale (0 = unguided)")
            ax.set_ylabel(recorded_label(curves, metric))
            ax.set_title(titles[metric])
            ax.grid(alpha=0.3)
        _legend_below(fig, axes, ncol=2)
        _save(fig, path)

    figures.append(
        Figure(
            f"guidance_{slug}_scale.png",
            f"Guidance scale sweep, one line per guidance mode ({_count(len(modes), 'mode')}: {'; '.join(modes)}): "
            + "; ".join(
                f"{side}{panels[m]}" for side, m in zip(["left, " if len(metrics) > 1 else "", "right, "], metrics)
            )
            + (" (the table has no LPIPS)" if "lpips_vgg" not in metrics else "")
            + f". Scales {_listing(f'{s:g}' for s in scales)} on a "
            f"symlog axis (0 = unguided); mean ± standard deviation over {_count(len(styles), 'style')} × "
            f"{_count(len(seeds), 'seed')}; model {model}." + _coincide_text(pairs),
            draw_curves,
        )
    )
    return figures


# ----------------------------------------------------------------------------------- guidance methods
def guidance_methods_figures(frame) -> list[Figure]:
    """Per model and guidance network: the sample grid (:func:`methods_grid`) and the matched-fidelity
    figure (:func:`matched_fidelity_figure`)."""
    from ..workflow.experiments import DEFAULT_NETWORK, methods_figure_stem
    from .comparison import network_groups

    figures = []
    for slug, network, sub in network_groups(frame):
        model = _model_text(sub) + ("" if network == DEFAULT_NETWORK else f", guided on {network}")
        stem = methods_figure_stem(slug, network)
        figures += [methods_grid(sub, model, f"{stem}_grid.png"), matched_figure(sub, model, f"{stem}_matched.png")]
    return figures


@dataclass(frozen=True)
class GridColumns:
    """What the columns of the guidance-methods grid are: matched LPIPS levels, or each method's scales."""

    headers: list[str]
    scales: dict[str, list[float | None]]
    """method -> the scale shown in each column (None: an empty cell)."""
    lpips: dict[tuple[str, float], float]
    """(method, scale) -> its mean LPIPS to the unguided sample over the table's styles × seeds."""
    matched: bool


def grid_columns(sub, methods: list[str], levels: Sequence[float] = FIDELITY_LEVELS) -> GridColumns:
    """With an LPIPS column: for each method and level, the scale whose mean LPIPS (over every style and
    seed) is nearest the level, if within ``MATCH_TOLERANCE`` of it, and kept only at the level it is
    nearest (so no image shows twice); without one: each method's scales, low to high."""
    lpips = {}
    if "lpips_vgg" in sub and sub["lpips_vgg"].notna().any():
        means = sub[sub["method"].isin(methods)].groupby(["method", "scale"])["lpips_vgg"].mean()
        lpips = {(m, float(s)): float(v) for (m, s), v in means.items() if not math.isnan(v)}
    if lpips:
        scales = {}
        for method in methods:
            options = {s: v for (m, s), v in lpips.items() if m == method}
            keep = []
            for level in levels:
                near = {s: abs(v - level) for s, v in options.items() if abs(v - level) <= MATCH_TOLERANCE}
                scale = min(near, key=near.get) if near else None
                closer = scale is not None and any(abs(options[scale] - o) < near[scale] for o in levels if o != level)
                keep.append(None if closer else scale)
            scales[method] = keep
        return GridColumns([f"LPIPS ≈ {level:g}" for level in levels], scales, lpips, True)
    scales = {m: sorted(float(s) for s in sub[sub["method"] == m]["scale"].unique()) for m in methods}
    width = max((len(v) for v in scales.values()), default=0)
    return GridColumns(["guided"] if width == 1 else [f"scale #{i}" for i in range(1, width + 1)], scales, {}, False)


def methods_grid(sub, model: str, name: str) -> Figure:
    """One row per method (one style, one seed): the style image, the unguided sample, then the method at
    the matched LPIPS levels (:func:`grid_columns`), each cell noting its scale and mean LPIPS."""
    style0, seed0 = unique(sub["style"])[0], sorted(sub["seed"].unique())[0]
    methods = [m for m in unique(sub["method"]) if m != "unguided"]
    shown = sub[(sub["style"] == style0) & (sub["seed"] == seed0)]
    outputs = _lookup(shown, ["method", "scale"], "output")
    reference = next(iter(_lookup(shown, ["style"], "reference").values()), None)
    columns = grid_columns(sub, methods)
    n_styles, n_seeds = sub["style"].nunique(), sub["seed"].nunique()

    def note(method, scale):
        if scale is None:
            return f"none within {MATCH_TOLERANCE:g}" if columns.matched else None
        lpips = columns.lpips.get((method, scale))
        return f"scale {scale:g}" + (f"\nLPIPS {lpips:.2f}" if lpips is not None else "")

    def draw(path):
        labelled_grid(
            [
                [reference, outputs.get(("unguided", 0.0))] + [outputs.get((m, s)) for s in columns.scales[m]]
                for m in methods
            ],
            methods,
            ["style", "unguided"] + columns.headers,
            path,
            title=f"Guidance methods, style {style0}, seed {seed0} ({model})",
            notes=[[None, None] + [note(m, s) for s in columns.scales[m]] for m in methods],
        )

    n_scales = sorted({len(sub[sub["method"] == m]["scale"].unique()) for m in methods})
    scales_text = (
        "–".join(str(n) for n in (n_scales[0], n_scales[-1]) if n_scales)
        if len(n_scales) > 1
        else str(n_scales[0] if n_scales else 0)
    )
    if columns.matched:
        what = (
            f"then the method at the scale (of its {scales_text}) whose LPIPS (VGG) to the unguided sample, "
            f"averaged over {_count(n_styles, 'style')} × {_count(n_seeds, 'seed')}, is nearest "
            f"{_listing(f'{v:g}' for v in FIDELITY_LEVELS)} and within {MATCH_TOLERANCE:g} of it (columns; under "
            "each image its scale and that mean; an empty cell: no scale of the method is that near the level)"
        )
    else:
        what = (
            "then the method at its one scale"
            if scales_text == "1"
            else f"then the method at each of its {scales_text} scales, low to high (columns #1, #2, …)"
        ) + " (under each image its scale; the table has no LPIPS to match methods by)"
    return Figure(
        name,
        f"{_count(len(methods), 'guidance method')} ({_listing(methods)}), one row each, on style {style0}, "
        f"seed {seed0}: the style image, the unguided sample (same seed), {what}. Every method runs on the same "
        f"sampler (scheduler, steps, eta) with the same style loss, so only the guidance rule differs; model "
        f"{model}.",
        draw,
    )


MATCHED_COLUMNS = ("method", "metric", "level", "mean", "lo", "hi", "coverage", "ranked")
"""The matched-fidelity frame :func:`matched_fidelity_figure` draws: one row per method, style metric and
LPIPS level: the mean log ratio of the distance to the unguided sample's (``mean``) with its pointwise
95 % interval (``lo``, ``hi``), the share of (style, seed) curves that reach the level (``coverage``) and
whether the method is ranked there (``ranked``)."""


def matched_figure(sub, model: str, name: str) -> Figure:
    """The matched-fidelity figure of one model and network's rows (:func:`matched_fidelity_figure` of
    :func:`stylediff.reporting.fidelity.matched_fidelity`)."""
    from .comparison import style_metrics
    from .fidelity import FIGURE_LEVELS, matched_fidelity

    metrics = style_metrics(sub)
    labels = {m: recorded_label(sub, m) for m in metrics}
    n_styles, n_seeds = sub["style"].nunique(), sub["seed"].nunique()

    def draw(path):
        curves = matched_fidelity(sub, FIGURE_LEVELS)
        _save(matched_fidelity_figure(curves, labels, model), path)

    levels = f"{FIGURE_LEVELS[0]:g}…{FIGURE_LEVELS[-1]:g}"
    if "lpips_vgg" not in sub or sub["lpips_vgg"].isna().all():
        return Figure(
            name,
            "Style distance at matched fidelity: this table has no LPIPS to the unguided sample (the metrics job "
            f"found no LPIPS backbone), so no method can be read at a fidelity level and the figure is empty; model "
            f"{model}.",
            draw,
        )
    return Figure(
        name,
        f"Style distance at matched fidelity, one panel per style metric ({len(metrics)}: the guidance loss, "
        f"then {_count(len(metrics) - 1, 'held-out metric')}, named above each panel): the mean over {_count(n_styles, 'style')} × "
        f"{_count(n_seeds, 'seed')} of ln(distance / the unguided sample's), each method's curve interpolated at "
        f"LPIPS (VGG) to the unguided sample {levels}, one line per method with its pointwise 95 % crossed-"
        "bootstrap band. Below 0: closer to the style than the unguided sample. A method is drawn only at the "
        "levels where it is ranked; dashed, with open markers, where fewer than all its curves reach the level. "
        f"Model {model}.",
        draw,
    )


def matched_fidelity_figure(curves, labels: dict[str, str] | None = None, model: str = ""):
    """One panel per metric (stacked, sharing the LPIPS axis) of a matched-fidelity frame
    (:data:`MATCHED_COLUMNS`): per method a line through its ranked levels with its band; segments touching a
    level of partial coverage dashed, those points open. Returns the matplotlib figure."""
    missing = [c for c in MATCHED_COLUMNS if c not in curves]
    if missing:
        raise ConfigError(f"matched-fidelity frame lacks columns {', '.join(missing)}")
    plt = _pyplot()
    if curves.empty:
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH_PX / FIGURE_DPI, 1.6))
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "no LPIPS to the unguided sample in the table:\nno method matched by fidelity",
            ha="center",
            va="center",
        )
        fig.tight_layout(pad=0.4)
        return fig
    labels = labels or {}
    metrics, methods = unique(curves["metric"]), unique(curves["method"])
    styles = line_styles(methods)
    fig, axes = plt.subplots(
        len(metrics),
        1,
        figsize=(PAGE_WIDTH_PX / FIGURE_DPI, 1.0 + 2.6 * len(metrics) + 0.21 * math.ceil(len(methods) / 4)),
        sharex=True,
        squeeze=False,
    )
    axes = [row[0] for row in axes]
    ranked = set(curves[curves["ranked"].astype(bool)]["method"])
    for ax, metric in zip(axes, metrics):
        for method in methods:
            part = curves[(curves["method"] == method) & (curves["metric"] == metric)].sort_values("level")
            part = part[part["ranked"].astype(bool)]
            style = styles[method]
            label = method if method in ranked else f"{method} (not ranked)"
            if part.empty:
                ax.plot([], [], linestyle="-", label=label, **style)
                continue
            x, mean = part["level"].to_numpy(float), part["mean"].to_numpy(float)
            full = part["coverage"].to_numpy(float) >= 1.0
            levels = sorted(curves["level"].unique())
            index = [levels.index(v) for v in x]
            ax.fill_between(
                x, part["lo"].to_numpy(float), part["hi"].to_numpy(float), color=style["color"], alpha=0.13, linewidth=0
            )
            for k in range(len(x) - 1):
                if index[k + 1] != index[k] + 1:  # a level between them is not ranked: no line across it
                    continue
                dashed = not (full[k] and full[k + 1])
                ax.plot(
                    x[k : k + 2],
                    mean[k : k + 2],
                    color=style["color"],
                    linewidth=1.4,
                    linestyle="--" if dashed else "-",
                )
            ax.plot(x[full], mean[full], linestyle="none", markersize=5, **style)
            ax.plot(x[~full], mean[~full], linestyle="none", markersize=5, markerfacecolor="white", **style)
            ax.plot([], [], linestyle="-", label=label, markersize=5, **style)
        ax.axhline(0.0, color="#555555", linewidth=0.8)
        ax.set_title(labels.get(metric, metric) + (" (the guidance loss)" if metric == metrics[0] else " (held out)"))
        ax.set_ylabel("ln(distance / unguided)")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("LPIPS (VGG) to the unguided sample of the same seed")
    if model:
        fig.suptitle(f"Style distance at matched fidelity ({model})")
    _legend_below(fig, axes, ncol=4, title_lines=1 if model else 0)
    return fig


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
    with its caption file beside it (:func:`caption_name`). Returns the PNGs written."""
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
    paragraph holding that caption in italics."""
    import re

    out = []
    for line in lines:
        out.append(line)
        found = re.fullmatch(r"!\[[^\]]*\]\(([^)\s]+)\)(\{[^}]*\})?", line.strip())
        if found and Path(found.group(1)).name in captions:
            out += ["", f"*{captions[Path(found.group(1)).name]}*", ""]
    return out
