"""Image grids with their labels (:func:`labelled_grid`), drawn with Pillow and sized for the docs page:
a 32 px sample is magnified by whole pixels, labels are :data:`~.style.GRID_FONT_PX` high.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ...core.io import atomic_path
from .style import GRID_CELL_MAX_PX, GRID_CELL_MIN_PX, GRID_FONT_PX, MIN_FONT_KEY, PAGE_WIDTH_PX


# ------------------------------------------------------------------------------------------ image grids
def _as_image(image):
    """A PIL RGB image from a path, a PIL image, or an (H, W, 3) / (3, H, W) / (1, 3, H, W) array or
    tensor with values in [0, 1] (floats) or 0…255 (integers).
    """
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
    characters where a part is still too wide.
    """
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
    pixel).
    """
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
