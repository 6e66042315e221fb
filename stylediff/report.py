"""Run ids, tables and figures of the experiment workflow.

* **Run ids** are readable slugs of a run's axes joined by ``__``
  (``starry_night__relu1_1-relu2_1__gram__s0``): :func:`run_id` builds them for the Snakefile and
  :func:`parse_run_id` reads the axes back for the tables, so both sides agree by construction.
* **Tables** (:func:`aggregate`): one tidy row per run (a column per axis and per metric) from the
  ``*.metrics.json`` files, written as CSV, plus a markdown summary (mean ± std over seeds).
* **Figures** (:func:`make_figures`): image grids and curves with error bars, small PNGs with
  fixed size, dpi and no timestamp/version metadata, so the same table gives byte-identical files.

Only the standard library is imported at module level (pandas/matplotlib are imported inside the
functions), so the Snakefile can import this module cheaply.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .datasets import image_slug
from .errors import ConfigError
from .io import atomic_path, read_json, write_text

EXPERIMENTS = ("inversion", "texture", "transfer", "guidance")
AXES: dict[str, tuple[str, ...]] = {
    "inversion": ("image", "layer", "pooling", "seed"),
    "texture": ("style", "layers", "loss", "seed"),
    "transfer": ("content", "style", "loss", "seed"),
    "guidance": ("model", "style", "loss", "layers", "window", "mode", "normalization", "scale", "seed"),
}
"""Each experiment's axes, in run-id order; a run id has one part per axis, except the axes below."""
DEFAULT_PARTS = {"normalization": "per_step"}
"""Axes whose default value is left out of the run id (one such axis per experiment), so that results
written before the axis existed keep their ids. An unguided (scale 0) sample has no gradient to
normalise: it is one run, under the default, for every normalisation."""
IMAGE_AXES = ("image", "style", "content")
SEPARATOR = "__"
TITLES = {"inversion": "Feature inversion", "texture": "Texture synthesis", "transfer": "Style transfer",
          "guidance": "Style-guided diffusion sampling"}
SUMMARY_METRICS = {
    "inversion": ("feature_error", "psnr", "ssim", "lpips_vgg", "lpips_alex", "wall_seconds", "peak_rss_mb"),
    "texture": ("gram_dist_mean", "gram_mean", "mean_std_mean", "sliced_wasserstein_mean", "gaussian_w2_mean",
                "lpips_vgg", "wall_seconds", "peak_rss_mb"),
    "transfer": ("gram_dist_mean", "content_error", "lpips_vgg", "ssim", "wall_seconds", "peak_rss_mb"),
    "guidance": ("gram_dist_mean", "gram_mean", "sliced_wasserstein_mean", "lpips_vgg", "lpips_alex",
                 "wall_seconds", "peak_rss_mb"),
}
METRIC_LABELS = {
    "feature_error": "‖Φ(x)−Φ(x₀)‖ / ‖Φ(x₀)‖",
    "gram_dist_mean": "Gram distance (mean relu1–5_1)",
    "lpips_vgg": "LPIPS (vgg)",
    "lpips_alex": "LPIPS (alex)",
    "content_error": "content feature error",
}
FIGURE_DPI = 100
CELL_INCHES = 1.15


# ---------------------------------------------------------------------------------------- run ids
def model_slug(model: str) -> str:
    """``google/ddpm-cifar10-32`` and ``models/ddpm-cifar10-32`` both -> ``ddpm-cifar10-32``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(model).rstrip("/").split("/")[-1]).strip("_") or "model"


def _clean(text: str) -> str:
    return re.sub(r"_{2,}", "_", text)


def encode_axis(axis: str, value: Any) -> str:
    """One axis value as a run-id part (no dots, no ``__``)."""
    if axis == "seed":
        return f"s{int(value)}"
    if axis == "scale":
        text = f"{float(value):g}".replace("e+", "e").replace("e-", "em").replace(".", "p")
        return f"g{text}"
    if axis == "window":
        return "w" + "-".join(f"{float(v):g}".replace(".", "p") for v in value)
    if axis in ("layers",):
        return "-".join(value) if isinstance(value, (list, tuple)) else str(value)
    if axis in IMAGE_AXES:
        return _clean(image_slug(str(value)))
    if axis == "model":
        return _clean(model_slug(value))
    return _clean(re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)))


def decode_axis(axis: str, text: str) -> Any:
    if axis == "seed":
        return int(text[1:])
    if axis == "scale":
        return float(text[1:].replace("p", ".").replace("em", "e-"))
    if axis == "window":
        return text[1:].replace("p", ".")
    return text


def canonical_values(experiment: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the axes that cannot matter set to their default (normalisation of scale 0)."""
    if experiment == "guidance" and float(values.get("scale", 1)) == 0 and "normalization" in values:
        return {**values, "normalization": DEFAULT_PARTS["normalization"]}
    return values


def run_id(experiment: str, values: dict[str, Any]) -> str:
    """The run id of one combination of ``experiment``'s axes (missing default-valued axes allowed)."""
    try:
        axes = AXES[experiment]
    except KeyError:
        raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}") from None
    values = canonical_values(experiment, {**{a: d for a, d in DEFAULT_PARTS.items() if a in axes}, **values})
    return SEPARATOR.join(encode_axis(axis, values[axis]) for axis in axes
                          if not (axis in DEFAULT_PARTS and values[axis] == DEFAULT_PARTS[axis]))


def parse_run_id(experiment: str, run: str) -> dict[str, Any]:
    """Axis values of a run id (slugs for images/models/layer sets, numbers for seeds/scales)."""
    axes = AXES[experiment]
    parts = run.split(SEPARATOR)
    optional = [axis for axis in axes if axis in DEFAULT_PARTS]
    if len(parts) == len(axes) - len(optional):
        present = [axis for axis in axes if axis not in DEFAULT_PARTS]
        return {**{axis: decode_axis(axis, part) for axis, part in zip(present, parts)},
                **{axis: DEFAULT_PARTS[axis] for axis in optional}}
    if len(parts) != len(axes):
        raise ConfigError(f"run id {run!r} does not have the {len(axes)} parts of a {experiment} run "
                          f"({SEPARATOR.join(axes)})")
    return {axis: decode_axis(axis, part) for axis, part in zip(axes, parts)}


BATCHED_AXIS = {"inversion": "layer", "texture": "layers", "transfer": "loss", "guidance": "scale"}
"""The workflow runs every value of this axis, for one combination of the others, in one job
(`stylediff batch`): start-up and weight loading, most of a small run's cost, are paid once per job."""


def split_run(experiment: str, run: str) -> tuple[str, str, str]:
    """(head, batched part, tail) of a run id; the batch job of the run is named ``head__tail``.
    Guidance's scale is second to last (the normalisation part before it is optional)."""
    parts = run.split(SEPARATOR)
    index = len(parts) - 2 if experiment == "guidance" else AXES[experiment].index(BATCHED_AXIS[experiment])
    return SEPARATOR.join(parts[:index]), parts[index], SEPARATOR.join(parts[index + 1:])


def with_shared_baselines(frame):
    """Guidance rows plus, for every non-default normalisation, a copy of the unguided (scale 0) rows
    labelled with it: each normalisation's curve starts from the one unguided sample they share."""
    import pandas as pd

    if "normalization" not in frame or "scale" not in frame:
        return frame
    default = DEFAULT_PARTS["normalization"]
    unguided = frame[(frame["scale"] == 0) & (frame["normalization"] == default)]
    copies = [unguided.assign(normalization=value) for value in unique(frame["normalization"]) if value != default]
    return pd.concat([frame, *copies], ignore_index=True) if copies else frame


# ----------------------------------------------------------------------------------------- tables
def _run_of(metrics_file: str | os.PathLike) -> str:
    name = Path(metrics_file).name
    return name[: -len(".metrics.json")] if name.endswith(".metrics.json") else Path(name).stem


def _model_label(doc: dict) -> str:
    vgg = ((doc.get("run") or {}).get("weights") or {}).get("vgg19") or {}
    return f"VGG-19 ({vgg.get('source', 'caffe')} weights)"


def table_rows(experiment: str, metrics_files: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    rows = []
    for path in metrics_files:
        doc = read_json(path)
        run = _run_of(path)
        config = (doc.get("run") or {}).get("config") or {}
        row: dict[str, Any] = {"experiment": experiment, "run": run, **parse_run_id(experiment, run)}
        if experiment == "guidance":
            row["model_slug"] = row["model"]
            row["model"] = str(config.get("model") or row["model"])
        else:
            row["model"] = _model_label(doc)
        if "layers" in row:
            row["n_layers"] = len(str(row["layers"]).split("-"))
            row["deepest_layer"] = str(row["layers"]).split("-")[-1]
        for key in ("size", "steps"):
            if key in config:
                row[key] = config[key]
        row.update({"output": doc.get("image"), "reference": doc.get("reference"),
                    "baseline": doc.get("baseline"), "device": (doc.get("run") or {}).get("device"),
                    "final_loss": doc.get("final_loss")})
        row.update(doc.get("metrics") or {})
        row.update(doc.get("timing") or {})
        rows.append(row)
    return rows


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}" if magnitude < 1 else f"{value:.4g}"


def summary_markdown(experiment: str, frame, table: str | os.PathLike | None = None) -> str:
    """Markdown: mean ± std over seeds of the key metrics, one row per combination of the other axes."""
    axes = [axis for axis in AXES[experiment] if axis != "seed"]
    metrics = [m for m in SUMMARY_METRICS[experiment] if m in frame.columns]
    models = ", ".join(dict.fromkeys(frame["model"].astype(str))) if "model" in frame else "?"
    lines = [f"## {TITLES[experiment]}", "",
             f"Model: {models}. {len(frame)} runs; mean ± std over seeds "
             f"(n = seeds per row; no ± when n = 1). Full table: `{table or f'results/tables/{experiment}.csv'}`.", ""]
    header = axes + ["n"] + metrics
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    groups = frame.groupby(axes, sort=False, dropna=False)
    for keys, group in groups:
        keys = keys if isinstance(keys, tuple) else (keys,)
        cells = [str(k) for k in keys] + [str(len(group))]
        for metric in metrics:
            values = group[metric].astype(float)
            mean = values.mean()
            std = values.std(ddof=1) if len(values) > 1 else float("nan")
            cells.append(_fmt(mean) if math.isnan(std) else f"{_fmt(mean)} ± {_fmt(std)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def aggregate(experiment: str, metrics_files: Sequence[str | os.PathLike], out_csv: str | os.PathLike,
              summary: str | os.PathLike | None = None) -> Any:
    """Write the tidy table of ``experiment`` (one row per run) and optionally its markdown summary."""
    import pandas as pd

    if experiment not in AXES:
        raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")
    if not metrics_files:
        raise ConfigError(f"no metrics files given for {experiment}")
    frame = pd.DataFrame(table_rows(experiment, metrics_files))
    write_text(out_csv, frame.to_csv(index=False))
    if summary is not None:
        write_text(summary, summary_markdown(experiment, frame, out_csv))
    return frame


# ---------------------------------------------------------------------------------------- figures
def figure_files(experiment: str, models: Sequence[str] = (), modes: Sequence[str] = ()) -> list[str]:
    """File names (in the report folder) that :func:`make_figures` writes for ``experiment``."""
    if experiment == "inversion":
        return ["inversion_grid.png", "inversion_error.png"]
    if experiment == "texture":
        return ["texture_layers_grid.png", "texture_losses_grid.png", "texture_gram_vs_layers.png"]
    if experiment == "transfer":
        return ["transfer_grid.png"]
    if experiment == "guidance":
        files = []
        for model in models:
            slug = model_slug(model)
            files += [f"guidance_{slug}_{mode}_grid.png" for mode in modes] + [f"guidance_{slug}_scale.png"]
        return files
    raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")


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


def image_grid(rows: list[str], cols: list[str], cells: dict[tuple[str, str], str | None], title: str,
               out: str | os.PathLike) -> None:
    """Grid of images: ``cells[(row, col)]`` is an image path (or None for an empty cell)."""
    plt = _pyplot()
    title_inches = 0.12 + 0.15 * (title.count("\n") + 1)
    height = 0.25 + title_inches + CELL_INCHES * len(rows)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                             figsize=(0.4 + CELL_INCHES * len(cols), height))
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


def _errorbar_axes(ax, frame, x: str, y: str, line: str, xorder: list, xlabels: list[str] | None = None,
                   positions: list[float] | None = None) -> None:
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
    ax.set_ylabel(METRIC_LABELS.get(y, y))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, title=line, title_fontsize=6)


def _model_text(frame) -> str:
    return ", ".join(dict.fromkeys(frame["model"].astype(str)))


def _first_seed(frame):
    return frame[frame["seed"] == sorted(frame["seed"].unique())[0]] if "seed" in frame else frame


def inversion_figures(frame, out_dir: Path) -> None:
    from .vgg import LAYER_INDEX

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
    image_grid(images, ["original"] + layers, cells,
               f"Feature inversion from one layer (seed {first['seed'].iloc[0]}) — {model}",
               out_dir / "inversion_grid.png")

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
    image_grid(styles, ["style"] + [labels[s] for s in layer_sets], cells,
               f"Textures by layer set (loss {loss0}) — {model}", out_dir / "texture_layers_grid.png")

    cells = {(style, "style"): refs.get(style) for style in styles}
    for _, row in first[first["layers"] == deepest].iterrows():
        cells[(row["style"], row["loss"])] = row["output"]
    image_grid(styles, ["style"] + losses, cells,
               f"Textures by loss ({layer_set_label(deepest)}) — {model}", out_dir / "texture_losses_grid.png")

    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    _errorbar_axes(ax, frame, "layers", "gram_dist_mean", "loss", layer_sets,
                   [f"…{str(s).split('-')[-1]}" for s in layer_sets])
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
    image_grid(pairs, ["content", "style"] + losses, cells, f"Style transfer by loss — {model}",
               out_dir / "transfer_grid.png")


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
            grid = grid[grid["normalization"] == DEFAULT_PARTS["normalization"]]
        styles = unique(sub["style"])
        scales = sorted(unique(sub["scale"]))
        labels = {s: ("unguided" if s == 0 else f"scale {s:g}") for s in scales}
        for mode in unique(sub["mode"]):
            cells = {}
            for _, row in grid[grid["mode"] == mode].iterrows():
                cells[(row["style"], "style")] = row["reference"]
                cells[(row["style"], labels[row["scale"]])] = row["output"]
            window = "" if window0 is None or sub["window"].nunique() == 1 else f", window {window0}"
            image_grid(styles, ["style"] + [labels[s] for s in scales], cells,
                       f"Guided samples, mode {mode}, loss {loss0} ({layer_set_label(layers0)}){window}\n{model}",
                       out_dir / f"guidance_{slug}_{mode}_grid.png")
        curves = with_shared_baselines(sub).copy()
        if "window" in curves and curves["window"].nunique() > 1:  # one line per mode, window, normalisation
            curves["mode"] = curves["mode"] + ", window " + curves["window"].astype(str)
        if "normalization" in curves and curves["normalization"].nunique() > 1:
            curves["mode"] = curves["mode"] + ", " + curves["normalization"].astype(str)
        many = curves["mode"].nunique() > 4  # then one legend beside both plots, not over the data
        fig, axes = plt.subplots(1, 2, figsize=(9.6 if many else 6.4, 2.8 if many else 2.6))
        positive = [s for s in scales if s > 0]
        for ax, metric in zip(axes, ("gram_dist_mean", "lpips_vgg")):
            if metric in curves:
                _errorbar_axes(ax, curves, "scale", metric, "mode", scales, positions=list(scales),
                               xlabels=[f"{s:g}" for s in scales])
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
            fig.legend(handles, labels, loc="center right", fontsize=6, title="mode", title_fontsize=6)
            fig.tight_layout(pad=0.4, rect=(0, 0, 0.76, 1))
        else:
            fig.tight_layout(pad=0.4)
        _save(fig, out_dir / f"guidance_{slug}_scale.png")


def make_figures(experiment: str, table: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Draw ``experiment``'s figures from its table into ``out_dir``; returns the files written."""
    import pandas as pd

    frame = pd.read_csv(table)
    if frame.empty:
        raise ConfigError(f"table {table} has no rows")
    out_dir = Path(out_dir)
    draw = {"inversion": inversion_figures, "texture": texture_figures, "transfer": transfer_figures,
            "guidance": guidance_figures}
    if experiment not in draw:
        raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")
    draw[experiment](frame, out_dir)
    models = unique(frame["model_slug"]) if experiment == "guidance" else ()
    modes = unique(frame["mode"]) if experiment == "guidance" else ()
    return [out_dir / name for name in figure_files(experiment, models, modes)]
