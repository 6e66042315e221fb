"""The texture claims of the seed report: how a texture's layer set changes its statistics, whether a
texture copies its exemplar, and which style loss makes the closest textures by every other loss.

Each section reads the ``texture`` table and returns markdown lines with its finding (the sentence the
README's row carries); every direction word comes from the sign of an interval
(:func:`stylediff.reporting.statistics.trend_word`). Only pandas and scipy are needed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from .figures import layer_set_label, unique
from .markdown import fmt as _fmt
from .markdown import label as _label
from .markdown import mean_std as _mean_std
from .markdown import setup as _setup
from .markdown import table as _table
from .markdown import with_finding, with_interval
from .statistics import (
    CrossedDraws,
    Interval,
    bootstrap_p,
    cell_matrix,
    holm,
    percentile_interval,
    spearman_interval,
    trend_word,
)

STYLE_METRICS = ("gram_mean", "mean_std_mean", "sliced_wasserstein_mean", "gaussian_w2_mean")
"""Each style loss used as a metric: its own normalised distance at relu1_1…relu5_1, averaged."""
DEPTH_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
RESAMPLES = 20000
"""Crossed-bootstrap draws of the paired loss comparisons: enough for the smallest Holm threshold of a
family of 24 (0.05 / 24 = 2e-3 against a smallest p of 1e-4)."""


def _set_label(layers: str) -> str:
    return "{" + layer_set_label(layers) + "}"


def _copy_rate(frame) -> str:
    """ "k of n (p %)" of runs whose ``layout_copy`` is above the copy threshold."""
    from ..evaluation.layout_copy import COPY_THRESHOLD

    copies = int((frame["layout_copy"] > COPY_THRESHOLD).sum())
    return f"{copies} of {len(frame)} ({100 * copies / max(1, len(frame)):.0f} %)"


def _not_copies(frame):
    """The runs that do not reproduce the style's layout (all runs without a layout_copy column)."""
    from ..evaluation.layout_copy import COPY_THRESHOLD

    return frame[frame["layout_copy"] <= COPY_THRESHOLD] if "layout_copy" in frame else frame


def _texture_table(sub, sets, columns, extra) -> list[str]:
    rows = [
        [_set_label(s)]
        + [_mean_std(sub[sub["layers"] == s][c]) for c in columns + extra]
        + ([_copy_rate(sub[sub["layers"] == s])] if "layout_copy" in sub else [])
        for s in sets
    ]
    return _table(
        ["layer set"]
        + [c.replace("gram_dist_", "") for c in columns]
        + [_label(m) for m in extra]
        + (["copies"] if "layout_copy" in sub else []),
        rows,
    )


def _depth_claims(sub, sets, columns) -> list[str]:
    """The deepest layer's distance against the set's depth (ρ, styles resampled, runs that are not copies),
    per style from the shallowest to the deepest set, and the same ρ at every other layer.
    """
    set_rank = {s: rank for rank, s in enumerate(sets)}
    textures = _not_copies(sub)
    rho = {
        c: spearman_interval(textures["layers"].map(set_rank), textures[c], groups=textures["style"]) for c in columns
    }
    first, last, deepest, shallow = sets[0], sets[-1], columns[-1], columns[0]
    means = sub.groupby(["style", "layers"])[deepest].mean()
    styles = unique(sub["style"])
    lower = sum(means.get((style, last), math.nan) < means.get((style, first), math.nan) for style in styles)
    higher = sum(means.get((style, last), math.nan) > means.get((style, first), math.nan) for style in styles)
    only = f" among the {len(textures)} of {len(sub)} runs that are not copies" if "layout_copy" in sub else ""
    name = lambda c: c.replace("gram_dist_", "")  # noqa: E731
    claims = [
        f"The Gram distance at {name(deepest)} {trend_word(rho[deepest])} as the set deepens{only} "
        f"(ρ(set depth, distance) = {with_interval(rho[deepest], 2)}, styles resampled; "
        f"{_fmt(sub[sub['layers'] == first][deepest].mean())} for {_set_label(first)} → "
        f"{_fmt(sub[sub['layers'] == last][deepest].mean())} for {_set_label(last)}; lower for {lower} and higher "
        f"for {higher} of {len(styles)} styles), while the distance at {name(shallow)} {trend_word(rho[shallow])} "
        f"(ρ = {with_interval(rho[shallow], 2)})."
    ]
    if len(columns) > 2:
        claims.append(
            "ρ at the other layers: "
            + ", ".join(f"{name(c)} {with_interval(rho[c], 2)} ({trend_word(rho[c])})" for c in columns[1:-1])
            + "."
        )
    return claims


def texture_section(frame, figure: Callable[[str], str]) -> list[str]:
    from ..evaluation.layout_copy import COPY_THRESHOLD

    loss0 = "gram" if "gram" in set(frame["loss"]) else unique(frame["loss"])[0]
    sub = frame[frame["loss"] == loss0]
    sets = sorted(unique(sub["layers"]), key=lambda s: len(str(s).split("-")))
    columns = [f"gram_dist_{layer}" for layer in DEPTH_LAYERS if f"gram_dist_{layer}" in sub]
    extra = [m for m in ("sliced_wasserstein_mean", "layout_copy") if m in sub]
    lines = [
        "### Texture synthesis: style distance by layer set",
        "",
        f"Loss `{loss0}`, nested layer sets (Gatys et al. 2015). Gram distance ‖G(x) − G(s)‖/‖G(s)‖ to the "
        "style at every layer, whether optimised or not, and `layout_copy` (how much of the style image's "
        f"layout the texture reproduces; above {COPY_THRESHOLD} it is a copy); mean ± std over styles and seeds:",
        "",
    ]
    lines += _texture_table(sub, sets, columns, extra)
    claims = _depth_claims(sub, sets, columns)
    if "layout_copy" in sub:
        last = sets[-1]
        claims.append(
            f"Copies of the style's layout: {_copy_rate(sub[sub['layers'] == last])} runs for "
            f"{_set_label(last)} (mean layout_copy {_fmt(sub[sub['layers'] == last]['layout_copy'].mean())}"
            f"), {_copy_rate(sub)} over all sets."
        )
    lines += [
        f"![texture by layer set]({figure('texture_layers_grid.png')})",
        f"![Gram distance vs layer set]({figure('texture_gram_vs_layers.png')})",
        "",
    ]
    lines += ["**Claims.** " + " ".join(claims) + f" *Grid: {_setup(frame, 'style')}.*", ""]
    return with_finding(lines, claims[0])


# ----------------------------------------------------------------------------------------- losses
@dataclass
class LossComparison:
    """Every loss graded by every style metric: per metric the losses' means over (style, seed) cells of
    outputs that are not copies, and every pair of losses tested (paired crossed bootstrap, Holm over all
    metrics × pairs).
    """

    losses: list[str]
    metrics: list[str]
    means: dict[tuple[str, str], Interval]
    """(loss, metric) -> mean [95 % interval]."""
    pairs: dict[tuple[str, str, str], tuple[Interval, float, bool]]
    """(metric, a, b) -> (a − b at the Holm step's level, adjusted p, separated)."""

    @property
    def family(self) -> int:
        return len(self.pairs)

    def test(self, metric: str, a: str, b: str) -> tuple[Interval, float, bool]:
        if (metric, a, b) in self.pairs:
            return self.pairs[(metric, a, b)]
        d, p, separated = self.pairs[(metric, b, a)]
        return Interval(-d.value, -d.high, -d.low), p, separated

    def order(self, metric: str) -> list[str]:
        """The losses with a value, lowest mean first (then by name)."""
        valued = [loss for loss in self.losses if not math.isnan(self.means[(loss, metric)].value)]
        return sorted(valued, key=lambda loss: (self.means[(loss, metric)].value, loss))

    def lowest(self, metric: str) -> str | None:
        """The loss lower than every other on ``metric`` with Holm's separation from each, or None."""
        order = self.order(metric)
        if len(order) < 2 or order[1:] and self.means[(order[0], metric)].value == self.means[(order[1], metric)].value:
            return None
        return order[0] if all(self.test(metric, order[0], other)[2] for other in order[1:]) else None


def compare_losses(textures, losses: list[str], metrics: list[str], resamples: int = RESAMPLES) -> LossComparison:
    """Every pair of ``losses`` by every metric, paired over (style, seed) cells (a copy's cell is empty),
    one crossed bootstrap for all, Holm over the whole family.
    """
    import numpy as np

    styles, seeds = unique(textures["style"]), sorted(textures["seed"].unique())
    draws = CrossedDraws.draw(styles, seeds, resamples)
    matrices = {
        (loss, m): cell_matrix(textures[textures["loss"] == loss], m, styles, seeds) for loss in losses for m in metrics
    }
    means = {key: draws.interval(matrix) for key, matrix in matrices.items()}
    raw = []
    for m in metrics:
        for a, b in itertools.combinations([loss for loss in losses if not math.isnan(means[(loss, m)].value)], 2):
            samples = draws.means(matrices[(a, m)] - matrices[(b, m)])
            raw.append(((m, a, b), samples, float(np.nanmean(matrices[(a, m)] - matrices[(b, m)]))))
    decisions = holm([bootstrap_p(samples) for _, samples, _ in raw])
    pairs = {
        key: (Interval(value, *percentile_interval(samples, d.level)), d.adjusted, d.rejected)
        for (key, samples, value), d in zip(raw, decisions)
    }
    return LossComparison(losses, metrics, means, pairs)


def _loss_claim(result: LossComparison, metric: str) -> str:
    order = result.order(metric)
    name = _label(metric)
    if len(order) < 2:
        which = f"only `{order[0]}` has" if order else "no loss has"
        return f"By {name}, {which} outputs that are not copies: no comparison."
    top = order[0]
    diffs = lambda others: ", ".join(  # noqa: E731
        f"`{o}` (Δ {with_interval(result.test(metric, top, o)[0], 2, signed=True)}, p_Holm {_fmt(result.test(metric, top, o)[1], 2)})"
        for o in others
    )
    separated = [o for o in order[1:] if result.test(metric, top, o)[2]]
    tied = [o for o in order[1:] if o not in separated]
    if not tied:
        return f"By {name}, `{top}` is lower than every other loss: " + diffs(separated) + "."
    lead = (
        "has the lowest mean"
        if result.means[(top, metric)].value < result.means[(tied[0], metric)].value
        else "shares the lowest mean"
    )
    text = f"By {name}, `{top}` {lead} but is not separated from " + diffs(tied)
    return text + ("; it is lower than " + diffs(separated) if separated else "") + "."


def _losses_table(sub, textures, losses, metrics, result: LossComparison) -> list[str]:
    has_copy = "layout_copy" in sub
    rows = []
    for loss in losses:
        cells = [f"`{loss}`"]
        for m in metrics:
            text = _mean_std(textures[textures["loss"] == loss][m])
            cells.append(f"**{text}**" if m in result.metrics and result.lowest(m) == loss else text)
        if has_copy:
            part = sub[sub["loss"] == loss]
            cells += [_mean_std(part["layout_copy"]), _copy_rate(part)]
        if "lpips_vgg" in sub:
            cells.append(_mean_std(sub[sub["loss"] == loss]["lpips_vgg"]))
        rows.append(cells)
    return _table(
        ["optimised with"]
        + [_label(m) for m in metrics]
        + (["layout copy", "copies"] if has_copy else [])
        + (["LPIPS to the style (copy indicator)"] if "lpips_vgg" in sub else []),
        rows,
    )


def losses_section(frame, figure: Callable[[str], str]) -> list[str]:
    """Which loss matches the style best among outputs that are not copies (paired, Holm); the copy rate
    per loss.
    """
    from ..evaluation.layout_copy import COPY_THRESHOLD

    deepest = max(unique(frame["layers"]), key=lambda s: len(str(s).split("-")))
    sub = frame[frame["layers"] == deepest]
    losses, textures = unique(sub["loss"]), _not_copies(sub)
    metrics = [m for m in STYLE_METRICS + ("wall_seconds",) if m in sub]
    graded = [m for m in STYLE_METRICS if m in sub and sub[m].notna().any()]
    result = compare_losses(textures, losses, graded)
    where = (
        f"the outputs that are not copies (layout_copy ≤ {COPY_THRESHOLD}; {len(textures)} of {len(sub)})"
        if "layout_copy" in sub
        else "all outputs"
    )
    lines = [
        "### Style losses compared",
        "",
        f"Textures optimised with each loss on {_set_label(deepest)}, graded by every loss's own normalised "
        f"distance (columns; mean ± std over {where}; bold: lower than every other loss, Holm-separated), the "
        "job's wall time, layout_copy and the copy rate over all outputs, and LPIPS to the style image as a second "
        "copy indicator (lowest for a copy: not a measure of style):",
        "",
    ]
    lines += _losses_table(sub, textures, losses, metrics, result)
    own = [m for m in graded if result.lowest(m) == m.replace("_mean", "")]
    claims = [
        f"Among {where}, paired over styles × seeds (Holm-adjusted over the {result.family} comparisons of every pair "
        "of losses by every metric, 95 %; Δ = the lowest loss − the other): "
        + " ".join(_loss_claim(result, m) for m in graded)
        + f" {len(own)} of {len(graded)} losses are lower than every other loss on their own metric."
    ]
    if "layout_copy" in sub:
        claims.append(
            "Copy rate per loss: "
            + ", ".join(f"`{loss}` {_copy_rate(sub[sub['loss'] == loss])}" for loss in losses)
            + "."
        )
    lines += [f"![texture by loss]({figure('texture_losses_grid.png')})", ""]
    lines += ["**Claims.** " + " ".join(claims) + f" *Grid: {_setup(sub, 'style')}.*", ""]
    return with_finding(lines, claims[0])


# --------------------------------------------------------------------------------------- guidance
