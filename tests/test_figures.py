"""Figures sized for the page, captions from the figures' own parameters, the matched-fidelity figure and the
labelled image grid (stylediff.reporting.figures), the results page's and README's captions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylediff.core.errors import ConfigError
from stylediff.reporting.figures import (
    caption_name,
    figure_captions,
    labelled_grid,
    make_figures,
    matched_fidelity_figure,
    read_min_font_px,
    with_captions,
)
from stylediff.reporting.figures.guidance import MATCHED_COLUMNS
from stylediff.reporting.figures.style import GRID_FONT_PX, PAGE_WIDTH_PX


def _png(path, side=32, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


def _guidance_table(tmp_path, scales, modes=(("x0", "0-1"), ("through_unet", "0-1"))):
    """A guidance table as `aggregate` writes it (two styles, two seeds), with a PNG per run."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rows = []
    for (method, window), scale, style, seed in itertools.product(modes, scales, ["s", "t"], [0, 1]):
        out = _png(tmp_path / f"{method}_{window}_{scale}_{style}_{seed}.png", seed=len(rows))
        rows.append(
            {
                "model": "models/tiny",
                "model_slug": "tiny",
                "style": style,
                "loss": "gram",
                "layers": "relu1_1",
                "window": window,
                "normalization": "per_step",
                "method": method,
                "scale": scale,
                "seed": seed,
                "output": out,
                "reference": _png(tmp_path / f"ref_{style}.png", side=64),
                "gram_dist_mean": 1.0 - 0.1 * scale + 0.01 * seed + (0.05 if method == "x0" else 0.0),
                "lpips_vgg": 0.1 * scale,
            }
        )
    table = tmp_path / "guidance.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


def _methods_frame(tmp_path, scales_per_method: int, lpips: bool = True):
    rows = []
    methods = {
        "x0": [0.01 * 3**i for i in range(scales_per_method)],
        "dps": [0.3 * 3**i for i in range(scales_per_method)],
    }
    for style, seed in itertools.product(["s", "t"], [0, 1]):
        rows.append({"method": "unguided", "scale": 0.0, "style": style, "seed": seed, "lpips": 0.0})
        for method, scales in methods.items():
            rows += [
                {"method": method, "scale": s, "style": style, "seed": seed, "lpips": [0.09, 0.21, 0.28, 0.4, 0.5][i]}
                for i, s in enumerate(scales)
            ]
    frame = pd.DataFrame(rows)
    frame = frame.assign(
        model="models/tiny",
        model_slug="tiny",
        loss="gram",
        layers="relu1_1",
        output=[_png(tmp_path / f"o{i}.png", seed=i) for i in range(len(frame))],
        reference=_png(tmp_path / "ref.png", side=64),
        gram_dist_mean=2.0 - frame["lpips"],
    )
    if lpips:
        frame["lpips_vgg"] = frame["lpips"]
    return frame.drop(columns="lpips")


def test_captions_follow_the_number_of_scales(tmp_path):
    """A caption is built from the figure's own data: three scales give "3 scales", five give "5 scales",
    and the scale values it lists are the table's."""
    make_figures("guidance", _guidance_table(tmp_path / "a", [0.0, 0.3, 1.0]), tmp_path / "fa")
    make_figures("guidance", _guidance_table(tmp_path / "b", [0.0, 0.1, 0.3, 1.0, 3.0]), tmp_path / "fb")
    grid3 = (tmp_path / "fa" / caption_name("guidance_tiny_x0_grid.png")).read_text()
    grid5 = (tmp_path / "fb" / caption_name("guidance_tiny_x0_grid.png")).read_text()
    assert "at 2 scales (0.3, 1; columns)" in grid3
    assert "at 4 scales (0.1, 0.3, 1, 3; columns)" in grid5
    scale3 = (tmp_path / "fa" / caption_name("guidance_tiny_scale.png")).read_text()
    assert "Scales 0, 0.3, 1 on a symlog axis" in scale3 and "2 styles × 2 seeds" in scale3

    grid = {n: figure_captions("guidance_methods", _methods_frame(tmp_path, n, lpips=False)) for n in (3, 5)}
    assert "each of its 3 scales" in grid[3]["guidance_methods_tiny_grid.png"]
    assert "each of its 5 scales" in grid[5]["guidance_methods_tiny_grid.png"]


def test_methods_grid_shows_each_method_at_matched_lpips(tmp_path):
    """With LPIPS, the columns are the levels 0.1, 0.2, 0.3 and each cell is the scale nearest the level
    within 0.05, else empty, and the caption says so."""
    from stylediff.reporting.figures.guidance import grid_columns

    frame = _methods_frame(tmp_path, 3)  # mean LPIPS 0.09, 0.21, 0.28 per method
    columns = grid_columns(frame, ["x0", "dps"])
    assert columns.matched and columns.headers == ["LPIPS ≈ 0.1", "LPIPS ≈ 0.2", "LPIPS ≈ 0.3"]
    assert columns.scales["x0"] == [0.01, 0.03, 0.09]
    frame = frame[~((frame["method"] == "x0") & (frame["scale"] > 0.02))]  # x0 only at LPIPS 0.09
    columns = grid_columns(frame, ["x0", "dps"])
    assert columns.scales["x0"] == [0.01, None, None]  # 0.09 is too far from 0.2 and 0.3 to stand for them
    frame.loc[frame["method"] == "dps", "lpips_vgg"] += 0.03  # dps at 0.12, 0.24, 0.31
    assert grid_columns(frame, ["x0", "dps"]).scales["dps"] == pytest.approx([0.3, 0.9, 2.7])
    frame.loc[frame["method"] == "dps", "lpips_vgg"] += 0.05  # dps at 0.17, 0.29, 0.36: none near 0.1
    assert grid_columns(frame, ["x0", "dps"]).scales["dps"] == pytest.approx([None, 0.3, 0.9])
    caption = figure_captions("guidance_methods", frame)["guidance_methods_tiny_grid.png"]
    assert "nearest 0.1, 0.2, 0.3 and within 0.05" in caption and "2 guidance methods (x0, dps)" in caption


def test_curve_figures_fit_the_page_and_record_their_smallest_font(tmp_path):
    made = make_figures("guidance", _guidance_table(tmp_path / "t", [0.0, 0.3, 1.0]), tmp_path / "f")
    for path in made:
        with Image.open(path) as img:
            assert img.size[0] <= PAGE_WIDTH_PX + 40, (path.name, img.size)
        assert read_min_font_px(path) >= 12, path.name  # 9 pt at 100 dpi
    assert read_min_font_px(tmp_path / "f" / "guidance_tiny_x0_grid.png") == GRID_FONT_PX


def test_coinciding_lines_are_drawn_apart_and_named(tmp_path):
    """Two guidance modes with identical curves (issue 35's "8 modes listed, 7 lines shown") are named in the
    caption; modes that differ are not."""
    table = _guidance_table(tmp_path / "t", [0.0, 0.3, 1.0], modes=(("x0", "0-1"), ("x0", "0-0.5"), ("dps", "0-1")))
    frame = pd.read_csv(table)
    frame.loc[frame["method"] == "dps", "gram_dist_mean"] += 0.5
    caption = figure_captions("guidance", frame)["guidance_tiny_scale.png"]
    assert "Lines that coincide (drawn side by side): x0, window 0-1 with x0, window 0-0.5." in caption
    frame.loc[frame["window"] == "0-0.5", "gram_dist_mean"] += 0.3
    assert "coincide" not in figure_captions("guidance", frame)["guidance_tiny_scale.png"]


def _matched_frame():
    """Three methods, two metrics, levels 0.05…0.4: ``a`` ranked everywhere, ``b`` ranked above 0.23 (partial
    coverage below), ``c`` never ranked and reaching no level (no mean)."""
    rows = []
    levels = [round(0.05 + 0.025 * i, 3) for i in range(15)]
    for metric, method, level in itertools.product(["loss", "held"], ["a", "b", "c"], levels):
        mean = -level * {"a": 2.0, "b": 1.0, "c": 0.5}[method]
        coverage = 1.0 if method == "a" or level > 0.23 else (0.75 if level >= 0.2 else 0.4)
        ranked = method == "a" or (method == "b" and level > 0.23)
        if method == "c":
            mean, coverage = math.nan, 0.0
        rows.append([method, metric, level, mean, mean - 0.05, mean + 0.05, coverage, ranked])
    return pd.DataFrame(rows, columns=list(MATCHED_COLUMNS))


def test_matched_fidelity_figure_draws_ranked_levels_with_bands():
    """One panel per metric; a method's band only where it is ranked, its line wherever it has a mean,
    dashed with open markers where it is not ranked; a method with no value is in the legend as not ranked
    and nowhere else."""
    fig = matched_fidelity_figure(_matched_frame(), {"loss": "the loss", "held": "a held-out distance"}, "m")
    axes = fig.get_axes()
    legend = fig.legends[0]
    assert [text.get_text() for text in legend.get_texts()] == ["a", "b", "c (not ranked)"]
    a_color, b_color, c_color = (handle.get_color() for handle in legend.legend_handles)
    assert [ax.get_title() for ax in axes] == ["the loss (the guidance loss)", "a held-out distance (held out)"]
    for ax in axes:
        bands = ax.collections
        assert len(bands) == 2  # a and b; none for c
        b_band = bands[1].get_paths()[0].vertices
        assert b_band[:, 0].min() == pytest.approx(0.25)
        segments = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_linestyle() != "None"]
        assert not [line for line in ax.get_lines() if line.get_color() == c_color and len(line.get_xdata())]
        dashed = [line for line in segments if line.get_linestyle() == "--"]
        assert dashed and all(line.get_color() == b_color for line in dashed)
        assert max(x for line in dashed for x in line.get_xdata()) == pytest.approx(0.25)  # 0.225 → 0.25 is dashed
        assert min(x for line in dashed for x in line.get_xdata()) == pytest.approx(0.05)  # unranked levels drawn
        assert all(line.get_linestyle() == "-" for line in segments if line.get_color() == a_color)
    with pytest.raises(ConfigError, match="lacks columns coverage"):
        matched_fidelity_figure(_matched_frame().drop(columns="coverage"))
    empty = matched_fidelity_figure(_matched_frame().iloc[:0])  # a table without LPIPS: a figure that says so
    assert "no LPIPS" in empty.get_axes()[0].texts[0].get_text()


def test_the_figure_s_frame_is_the_comparison_s_sweep():
    """The matched-fidelity figure draws :func:`~stylediff.reporting.comparison.sweep`: each curve read at a
    level (here its log ratio is -LPIPS at every point, so exactly -level where read), ranked where every
    curve has a value, no interval where one does not."""
    from stylediff.reporting.comparison import sweep

    rows = []
    for style, seed in itertools.product(["s", "t"], [0, 1, 2]):
        rows.append(
            {"method": "unguided", "scale": 0.0, "style": style, "seed": seed, "lpips_vgg": 0.0, "gram_dist_mean": 2.0}
        )
        for scale, lpips in ((0.1, 0.05), (0.3, 0.15), (1.0, 0.25)):
            lpips *= 1.4 if style == "t" else 1.0
            rows.append(
                {
                    "method": "x0",
                    "scale": scale,
                    "style": style,
                    "seed": seed,
                    "lpips_vgg": lpips,
                    "gram_dist_mean": 2.0 * math.exp(-lpips),
                }
            )
    frame = sweep(pd.DataFrame(rows), levels=[0.1, 0.3], resamples=500)
    assert list(frame.columns) == list(MATCHED_COLUMNS)
    at = frame.set_index("level")
    assert at.loc[0.1, "ranked"] and at.loc[0.1, "coverage"] == 1.0
    assert at.loc[0.1, "mean"] == pytest.approx(-0.1) and at.loc[0.1, "lo"] <= -0.1 <= at.loc[0.1, "hi"]
    assert not at.loc[0.3, "ranked"] and at.loc[0.3, "coverage"] == 0.5  # t reaches 0.35, s stops at 0.25
    assert at.loc[0.3, "mean"] == pytest.approx(-0.3)  # over the curves that reach the level, drawn dashed


def test_labelled_grid_labels_every_row_and_column_at_page_width(tmp_path):
    """Paths, arrays (HWC and CHW), None and a large style image in one grid; small images magnified by a whole
    factor; the labels' font size recorded."""
    small = _png(tmp_path / "a.png", side=32, seed=1)
    chw = np.random.default_rng(2).random((3, 32, 32)).astype(np.float32)
    images = [[_png(tmp_path / "style.png", side=300), small, chw, None, small] for _ in range(3)]
    out = labelled_grid(
        images,
        ["x0", "through_unet", "a method with a long name"],
        ["style", "unguided", "LPIPS ≈ 0.1", "LPIPS ≈ 0.2", "LPIPS ≈ 0.3"],
        tmp_path / "grid.png",
        title="A title",
        notes=[[None, None, "scale 0.015\nLPIPS 0.09", "no scale nearer", None]] * 3,
    )
    with Image.open(out) as img:
        width, height = img.size
        pixels = np.asarray(img.convert("RGB"))
    assert width <= PAGE_WIDTH_PX and height > 3 * 96
    assert read_min_font_px(out) == GRID_FONT_PX
    # one source pixel of a 32 px image covers a block of identical pixels (nearest, whole factor)
    source = np.asarray(Image.open(small).convert("RGB"))
    colours = {tuple(c) for c in pixels.reshape(-1, 3)}
    assert tuple(source[0, 0]) in colours and tuple(source[31, 31]) in colours
    with pytest.raises(ValueError, match="2 row labels for 3 rows"):
        labelled_grid(images, ["a", "b"], None, tmp_path / "bad.png")


def test_results_page_puts_each_figure_caption_under_it():
    lines = ["text", "![grid](../report/x_grid.png)", "![other](y.png)", ""]
    out = with_captions(lines, {"x_grid.png": "The caption."})
    assert out == ["text", "![grid](../report/x_grid.png)", "", "*The caption.*", "", "![other](y.png)", ""]


def test_publish_splices_the_published_caption_into_a_page(tmp_path):
    """The README's caption is the caption file of the figure it shows; a marker of a figure elsewhere is left
    alone; a missing caption is an error, not a stale caption."""
    from stylediff.reporting.publish import splice_captions

    folder = tmp_path / "report" / "findings"
    folder.mkdir(parents=True)
    (folder / "g_grid.png").write_bytes(b"png")
    (folder / caption_name("g_grid.png")).write_text("8 guidance methods, 5 scales.\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- caption: report/findings/g_grid.png -->\n*one row per method at three scales*\n<!-- /caption -->\n"
        "<!-- caption: report/other.png -->\nkept\n<!-- /caption -->\nend\n"
    )
    assert splice_captions(readme, folder)
    text = readme.read_text()
    assert "*8 guidance methods, 5 scales.*" in text and "three scales" not in text and "\nkept\n" in text
    assert not splice_captions(readme, folder)  # unchanged the second time
    (folder / caption_name("g_grid.png")).unlink()
    with pytest.raises(ConfigError, match="no caption"):
        splice_captions(readme, folder)
