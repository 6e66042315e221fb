"""The figures of guided sampling: the guidance experiment (scale curves, grids per method) and the
guidance methods compared (the example grid at matched LPIPS, the matched-fidelity figure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...core.errors import ConfigError
from ..tables import recorded_label, with_shared_baselines
from .grids import labelled_grid
from .style import (
    DEFAULT_NORMALIZATION,
    FIDELITY_LEVELS,
    FIGURE_DPI,
    MATCH_TOLERANCE,
    PAGE_WIDTH_PX,
    Figure,
    _coincide_text,
    _count,
    _draw_errorbars,
    _errorbar_lines,
    _first_seed,
    _legend_below,
    _listing,
    _lookup,
    _model_text,
    _pyplot,
    _save,
    _scale_text,
    coinciding,
    layer_set_label,
    line_styles,
    unique,
)


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
    figure (:func:`matched_fidelity_figure`).
    """
    from ...workflow.experiments import DEFAULT_NETWORK, methods_figure_stem
    from ..comparison import network_groups

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
    nearest (so no image shows twice); without one: each method's scales, low to high.
    """
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
    the matched LPIPS levels (:func:`grid_columns`), each cell noting its scale and mean LPIPS.
    """
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


SWEEP_RESAMPLES = 2000
"""Crossed-bootstrap draws of the figure's pointwise bands: 2000 put a 95 % percentile bound within about
a tenth of its standard error; the comparison's tests draw :data:`~stylediff.reporting.comparison.RESAMPLES`."""
MATCHED_COLUMNS = ("method", "metric", "level", "mean", "lo", "hi", "coverage", "ranked")
"""The matched-fidelity frame :func:`matched_fidelity_figure` draws: one row per method, style metric and
LPIPS level: the mean log ratio of the distance to the unguided sample's (``mean``) with its pointwise
95 % interval (``lo``, ``hi``), the share of (style, seed) curves that reach the level (``coverage``) and
whether the method is ranked there (``ranked``)."""


def matched_figure(sub, model: str, name: str) -> Figure:
    """The matched-fidelity figure of one model and network's rows (:func:`matched_fidelity_figure` of the
    comparison's budget sweep, :func:`stylediff.reporting.comparison.sweep`).
    """
    import pandas as pd

    from ..comparison import SWEEP, style_metrics, sweep

    metrics = style_metrics(sub)
    labels = {m: recorded_label(sub, m) for m in metrics}
    n_styles, n_seeds = sub["style"].nunique(), sub["seed"].nunique()

    no_fidelity = "lpips_vgg" not in sub or sub["lpips_vgg"].isna().all()

    def draw(path):
        curves = pd.DataFrame(columns=list(MATCHED_COLUMNS)) if no_fidelity else sweep(sub, SWEEP, SWEEP_RESAMPLES)
        _save(matched_fidelity_figure(curves, labels, model), path)

    levels = f"{SWEEP[0]:g}…{SWEEP[-1]:g}"
    if no_fidelity:
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
        "bootstrap band. Below 0: closer to the style than the unguided sample. Solid, with its band, where a "
        "method is ranked (every curve has a value within the realism budget); dashed, with open markers and no "
        "band, where it is not: there the line is the mean of the curves that reach the level. "
        f"Model {model}.",
        draw,
    )


def matched_fidelity_figure(curves, labels: dict[str, str] | None = None, model: str = ""):
    """One panel per metric (stacked, sharing the LPIPS axis) of a matched-fidelity frame
    (:data:`MATCHED_COLUMNS`): per method a line through every level where some of its curves have a value;
    solid, with filled markers and its band, where it is ranked; dashed, with open markers and no band,
    where it is not (a mean over the curves that reach the level, or realism over budget). Returns the
    matplotlib figure.
    """
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
            part = part[part["mean"].notna()]
            style = styles[method]
            label = method if method in ranked else f"{method} (not ranked)"
            if part.empty:
                ax.plot([], [], linestyle="-", label=label, **style)
                continue
            x, mean = part["level"].to_numpy(float), part["mean"].to_numpy(float)
            full = part["ranked"].to_numpy(bool)
            levels = sorted(curves["level"].unique())
            index = [levels.index(v) for v in x]
            if full.any():
                ax.fill_between(
                    x,
                    part["lo"].to_numpy(float),
                    part["hi"].to_numpy(float),
                    where=full,
                    color=style["color"],
                    alpha=0.13,
                    linewidth=0,
                )
            for k in range(len(x) - 1):
                if index[k + 1] != index[k] + 1:  # no curve reaches a level between them: no line across it
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
    _legend_below(fig, axes, ncol=3, title_lines=1 if model else 0)
    return fig
