"""Figures of the experiment workflow: image grids and curves with error bars, drawn from an
experiment's table. Small PNGs with fixed size and dpi and no timestamp or version metadata, so the
same table gives byte-identical files. matplotlib is imported inside the functions."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import atomic_path
from .tables import read_table, recorded_label, with_shared_baselines

DEFAULT_NORMALIZATION = "per_step"
FIGURE_DPI = 100
CELL_INCHES = 1.15


# ---------------------------------------------------------------------------------------- figures
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "figure.titlesize": 8, "svg.hashsalt": "stylediff"})
    return plt


def _save(fig, path: str | os.PathLike) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)


def _read_rgb(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def unique(values) -> list:
    return list(dict.fromkeys(values))


def layer_set_label(layers: str) -> str:
    names = str(layers).split("-")
    return names[0] if len(names) == 1 else f"{names[0]}…{names[-1]} ({len(names)})"


def image_grid(
    rows: list[str], cols: list[str], cells: dict[tuple[str, str], str | None], title: str, out: str | os.PathLike
) -> None:
    """Grid of images: ``cells[(row, col)]`` is an image path (or None for an empty cell)."""
    plt = _pyplot()
    title_inches = 0.12 + 0.15 * (title.count("\n") + 1)
    height = 0.25 + title_inches + CELL_INCHES * len(rows)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, figsize=(0.4 + CELL_INCHES * len(cols), height))
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            path = cells.get((row, col))
            if path and Path(path).is_file():
                ax.imshow(_read_rgb(path), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if i == 0:
                ax.set_title(col, fontsize=6)
            if j == 0:
                ax.set_ylabel(row, fontsize=6)
    fig.suptitle(title)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2, rect=(0, 0, 1, 1 - title_inches / height))
    _save(fig, out)


def _errorbar_axes(
    ax,
    frame,
    x: str,
    y: str,
    line: str,
    xorder: list,
    xlabels: list[str] | None = None,
    positions: list[float] | None = None,
) -> None:
    """One line per value of ``line``: mean ± std of ``y`` over the remaining rows at each ``x``."""
    positions = positions if positions is not None else list(range(len(xorder)))
    for name in unique(frame[line]):
        sub = frame[frame[line] == name]
        means, stds, xs = [], [], []
        for pos, value in zip(positions, xorder):
            values = sub[sub[x] == value][y].astype(float).dropna()
            if len(values):
                xs.append(pos)
                means.append(values.mean())
                stds.append(values.std(ddof=1) if len(values) > 1 else 0.0)
        ax.errorbar(xs, means, yerr=stds, marker="o", markersize=3, capsize=2, linewidth=1, label=str(name))
    ax.set_xticks(positions)
    ax.set_xticklabels(xlabels if xlabels is not None else [str(v) for v in xorder], rotation=30, ha="right")
    ax.set_ylabel(recorded_label(frame, y))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, title=line, title_fontsize=6)


def _model_text(frame) -> str:
    return ", ".join(dict.fromkeys(frame["model"].astype(str)))


def _first_seed(frame):
    return frame[frame["seed"] == sorted(frame["seed"].unique())[0]] if "seed" in frame else frame


def inversion_figures(frame, out_dir: Path) -> None:
    from ..networks.vgg19_layers import LAYER_INDEX

    plt = _pyplot()
    model = _model_text(frame)
    poolings = unique(frame["pooling"]) if "pooling" in frame else []
    if len(poolings) > 1:  # the grid and curves show the first pooling; results.md compares them
        frame = frame[frame["pooling"] == poolings[0]]
        model = f"{model}, {poolings[0]} pooling"
    first = _first_seed(frame)
    images = unique(frame["image"])
    layers = sorted(unique(frame["layer"]), key=lambda name: LAYER_INDEX.get(name, 0))
    cells = {}
    for _, row in first.iterrows():
        cells[(row["image"], row["layer"])] = row["output"]
        cells[(row["image"], "original")] = row["reference"]
    image_grid(
        images,
        ["original"] + layers,
        cells,
        f"Feature inversion from one layer (seed {first['seed'].iloc[0]}) — {model}",
        out_dir / "inversion_grid.png",
    )

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.6))
    _errorbar_axes(axes[0], frame, "layer", "feature_error", "image", layers)
    metric = "lpips_vgg" if "lpips_vgg" in frame else "psnr"
    _errorbar_axes(axes[1], frame, "layer", metric, "image", layers)
    axes[0].set_title("relative feature error at the inverted layer")
    axes[1].set_title("LPIPS to the original" if metric == "lpips_vgg" else "PSNR")
    fig.suptitle(f"Inversion error vs depth (mean ± std over seeds) — {model}")
    fig.tight_layout(pad=0.4)
    _save(fig, out_dir / "inversion_error.png")


def texture_figures(frame, out_dir: Path) -> None:
    plt = _pyplot()
    model = _model_text(frame)
    first = _first_seed(frame)
    styles = unique(frame["style"])
    layer_sets = sorted(unique(frame["layers"]), key=lambda s: len(str(s).split("-")))
    losses = unique(frame["loss"])
    loss0 = "gram" if "gram" in losses else losses[0]
    deepest = layer_sets[-1]
    refs = {row["style"]: row["reference"] for _, row in first.iterrows()}

    cells = {(style, "style"): refs.get(style) for style in styles}
    labels = {s: layer_set_label(s) for s in layer_sets}
    for _, row in first[first["loss"] == loss0].iterrows():
        cells[(row["style"], labels[row["layers"]])] = row["output"]
    image_grid(
        styles,
        ["style"] + [labels[s] for s in layer_sets],
        cells,
        f"Textures by layer set (loss {loss0}) — {model}",
        out_dir / "texture_layers_grid.png",
    )

    cells = {(style, "style"): refs.get(style) for style in styles}
    for _, row in first[first["layers"] == deepest].iterrows():
        cells[(row["style"], row["loss"])] = row["output"]
    image_grid(
        styles,
        ["style"] + losses,
        cells,
        f"Textures by loss ({layer_set_label(deepest)}) — {model}",
        out_dir / "texture_losses_grid.png",
    )

    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    _errorbar_axes(
        ax, frame, "layers", "gram_dist_mean", "loss", layer_sets, [f"…{str(s).split('-')[-1]}" for s in layer_sets]
    )
    ax.set_xlabel("nested layer set (relu1_1 … deepest)")
    ax.set_title(f"Gram distance vs layer set (mean ± std over styles, seeds)\n{model}")
    fig.tight_layout(pad=0.4)
    _save(fig, out_dir / "texture_gram_vs_layers.png")


def transfer_figures(frame, out_dir: Path) -> None:
    model = _model_text(frame)
    first = _first_seed(frame)
    losses = unique(frame["loss"])
    pairs, cells = [], {}
    for _, row in first.iterrows():
        key = f"{row['content']} × {row['style']}"
        if key not in pairs:
            pairs.append(key)
        cells[(key, "content")] = row["baseline"]
        cells[(key, "style")] = row["reference"]
        cells[(key, row["loss"])] = row["output"]
    image_grid(
        pairs, ["content", "style"] + losses, cells, f"Style transfer by loss — {model}", out_dir / "transfer_grid.png"
    )


def guidance_figures(frame, out_dir: Path) -> None:
    plt = _pyplot()
    for slug in unique(frame["model_slug"]):
        sub = frame[frame["model_slug"] == slug]
        model = _model_text(sub)
        first = _first_seed(sub)
        loss0, layers0 = unique(sub["loss"])[0], unique(sub["layers"])[0]
        window0 = unique(sub["window"])[0] if "window" in sub else None
        grid = first[(first["loss"] == loss0) & (first["layers"] == layers0)]
        if window0 is not None:
            grid = grid[grid["window"] == window0]
        if "normalization" in grid:  # the grids show the default normalisation; the curves compare them
            grid = grid[grid["normalization"] == DEFAULT_NORMALIZATION]
        styles = unique(sub["style"])
        scales = sorted(unique(sub["scale"]))
        labels = {s: ("unguided" if s == 0 else f"scale {s:g}") for s in scales}
        for method in unique(sub["method"]):
            cells = {}
            for _, row in grid[grid["method"] == method].iterrows():
                cells[(row["style"], "style")] = row["reference"]
                cells[(row["style"], labels[row["scale"]])] = row["output"]
            window = "" if window0 is None or sub["window"].nunique() == 1 else f", window {window0}"
            image_grid(
                styles,
                ["style"] + [labels[s] for s in scales],
                cells,
                f"Guided samples, method {method}, loss {loss0} ({layer_set_label(layers0)}){window}\n{model}",
                out_dir / f"guidance_{slug}_{method}_grid.png",
            )
        curves = with_shared_baselines(sub).copy()
        if "window" in curves and curves["window"].nunique() > 1:  # one line per method, window, normalisation
            curves["method"] = curves["method"] + ", window " + curves["window"].astype(str)
        if "normalization" in curves and curves["normalization"].nunique() > 1:
            curves["method"] = curves["method"] + ", " + curves["normalization"].astype(str)
        many = curves["method"].nunique() > 4  # then one legend beside both plots, not over the data
        fig, axes = plt.subplots(1, 2, figsize=(9.6 if many else 6.4, 2.8 if many else 2.6))
        positive = [s for s in scales if s > 0]
        for ax, metric in zip(axes, ("gram_dist_mean", "lpips_vgg")):
            if metric in curves:
                _errorbar_axes(
                    ax,
                    curves,
                    "scale",
                    metric,
                    "method",
                    scales,
                    positions=list(scales),
                    xlabels=[f"{s:g}" for s in scales],
                )
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
            ax.set_xticks(scales)
            ax.set_xticklabels([f"{s:g}" for s in scales], rotation=0, ha="center")
            ax.set_xlabel("guidance scale (symlog; 0 = unguided)")
        axes[0].set_title("Gram distance to the style")
        axes[1].set_title("LPIPS to the unguided sample")
        fig.suptitle(f"Guidance scale sweep (mean ± std over styles, seeds) — {model}")
        if many:
            handles, labels = axes[0].get_legend_handles_labels()
            for ax in axes:
                ax.get_legend().remove()
            fig.legend(handles, labels, loc="center right", fontsize=6, title="method", title_fontsize=6)
            fig.tight_layout(pad=0.4, rect=(0, 0, 0.76, 1))
        else:
            fig.tight_layout(pad=0.4)
        _save(fig, out_dir / f"guidance_{slug}_scale.png")


def guidance_methods_figures(frame, out_dir: Path) -> None:
    """Per model: a sample grid (methods × scales, one style and seed, unguided first) and the Pareto
    figure (style distance against LPIPS to the unguided sample, and against seconds per image); per
    guidance network when the runs were guided on several."""
    from ..workflow.experiments import DEFAULT_NETWORK, methods_figure_stem
    from .comparison import network_groups

    for slug, network, sub in network_groups(frame):
        model = _model_text(sub) + ("" if network == DEFAULT_NETWORK else f", guided on {network}")
        stem = methods_figure_stem(slug, network)
        style0, seed0 = unique(sub["style"])[0], sorted(sub["seed"].unique())[0]
        methods = [m for m in unique(sub["method"]) if m != "unguided"]
        grid = sub[(sub["style"] == style0) & (sub["seed"] == seed0)]
        unguided = grid[grid["method"] == "unguided"]
        ranks = {}
        for method in methods:
            for rank, scale in enumerate(sorted(grid[grid["method"] == method]["scale"].unique()), 1):
                ranks[(method, scale)] = rank
        columns = ["style", "unguided"] + [f"scale {i}" for i in range(1, max(ranks.values(), default=0) + 1)]
        cells = {}
        for method in methods:
            cells[(method, "style")] = grid["reference"].iloc[0] if len(grid) else None
            cells[(method, "unguided")] = unguided["output"].iloc[0] if len(unguided) else None
            for _, row in grid[grid["method"] == method].iterrows():
                cells[(f"{method}", f"scale {ranks[(method, row['scale'])]}")] = row["output"]
        labels = {
            method: f"{method}\n"
            + ", ".join(f"{s:g}" for s in sorted(grid[grid["method"] == method]["scale"].unique()))
            for method in methods
        }
        image_grid(
            [labels[m] for m in methods],
            columns,
            {(labels[m], col): path for (m, col), path in cells.items()},
            f"Guidance methods, style {style0}, seed {seed0}\n(rows: method and its scales, low to high)\n{model}",
            out_dir / f"{stem}_grid.png",
        )

        _save(pareto_figure(sub, methods, model), out_dir / f"{stem}_pareto.png")


def pareto_figure(sub, methods: list[str], model: str):
    """One panel per style metric (the guidance loss, then each held-out one) against LPIPS to the
    unguided sample, and the guidance loss against compute; every point a method × scale cell with its
    95 % crossed-bootstrap interval over styles × seeds on both axes."""
    from .comparison import UNGUIDED, cell_matrix, style_metrics
    from .statistics import mean_interval

    plt = _pyplot()
    metrics = style_metrics(sub)
    guidance = metrics[0]
    styles, seeds = unique(sub["style"]), sorted(sub["seed"].unique())
    panels = [(m, "lpips_vgg") for m in metrics] + [(guidance, "seconds_per_image")]
    panels = [(y, x) for y, x in panels if x in sub]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1.2, 3.0), squeeze=False)
    for ax, (y, x) in zip(axes[0], panels):
        for method in [*methods, UNGUIDED]:
            part = sub[sub["method"] == method]
            points = []
            for scale in sorted(part["scale"].unique()):
                runs = part[part["scale"] == scale]
                points.append(
                    (
                        mean_interval(cell_matrix(runs, x, styles, seeds)),
                        mean_interval(cell_matrix(runs, y, styles, seeds)),
                    )
                )
            if not points:
                continue
            xs, ys = [p[0].value for p in points], [p[1].value for p in points]
            xerr, yerr = (
                [[max(0.0, p[k].value - p[k].low) for p in points], [max(0.0, p[k].high - p[k].value) for p in points]]
                for k in (0, 1)
            )
            style = dict(color="black", marker="x", linestyle="none") if method == UNGUIDED else dict(marker="o")
            ax.errorbar(
                xs,
                ys,
                xerr=xerr,
                yerr=yerr,
                markersize=3,
                capsize=1.5,
                linewidth=0.8,
                elinewidth=0.6,
                label=method,
                **style,
            )
        ax.set_xlabel(recorded_label(sub, x) if x != "seconds_per_image" else "seconds per image")
        ax.set_ylabel(recorded_label(sub, y))
        ax.set_title("the guidance loss" if y == guidance else f"held out: {y}")
        if x == "seconds_per_image":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=6, title="method", title_fontsize=6)
    fig.suptitle(
        f"Guidance methods: style distance against fidelity and compute (points: scales; bars: 95 % "
        f"bootstrap intervals over {len(styles)} styles × {len(seeds)} seeds) — {model}"
    )
    fig.tight_layout(pad=0.4, rect=(0, 0, 1 - 1.1 / (3.4 * len(panels) + 1.2), 1))
    return fig


def make_figures(experiment: str, table: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Draw ``experiment``'s figures (the plan's ``figures`` names) from its table into ``out_dir``."""
    frame = read_table(table)
    if frame.empty:
        raise ConfigError(f"table {table} has no rows")
    draw = {
        "inversion": inversion_figures,
        "texture": texture_figures,
        "transfer": transfer_figures,
        "guidance": guidance_figures,
        "guidance_methods": guidance_methods_figures,
    }
    if experiment not in draw:
        raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(draw)}")
    draw[experiment](frame, Path(out_dir))
