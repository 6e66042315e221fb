"""Each guidance method's style distances at matched fidelity: the frame the matched-fidelity figure draws
(:data:`stylediff.reporting.figures.MATCHED_COLUMNS`).

A curve is one (method, style, seed): its runs ordered by scale, each a point (LPIPS (VGG) to the unguided
sample of the same seed, ln(distance / the unguided sample's distance) per style metric). Its value at an
LPIPS level is read at the first crossing along the scale order (linear between the last point below the
level and the first at or above it), never extrapolated: a curve whose first point is already above the
level, or that never reaches it, has no value there. A method's mean at a level is over the curves that
have one, with its crossed-bootstrap interval over styles × seeds (:func:`stylediff.reporting.statistics.mean_interval`);
``coverage`` is the share of its curves that have a value, and it is ``ranked`` where every curve has one.

This is the figure's reading of the curves; issue 37's comparison (gap limits, realism budget, Holm) lives
in :mod:`stylediff.reporting.comparison`, and where it provides the same frame the figure takes that one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FIGURE_LEVELS = tuple(round(0.05 + 0.025 * i, 3) for i in range(15))
"""LPIPS 0.05, 0.075, …, 0.4: the budget sweep issue 37 asks for, at a spacing finer than the grid's."""
FIDELITY = "lpips_vgg"
UNGUIDED = "unguided"


def crossing(points: Sequence[tuple[float, float, dict[str, float]]], level: float) -> dict[str, float] | None:
    """The values of one curve at ``level``: ``points`` are (scale, lpips, {metric: value}); None when the
    curve has a NaN LPIPS, starts above the level, or never reaches it."""
    curve = sorted(points, key=lambda p: p[0])
    if any(math.isnan(p[1]) for p in curve):
        return None
    j = next((i for i, p in enumerate(curve) if p[1] >= level), None)
    if j is None or (j == 0 and curve[0][1] > level):
        return None
    if curve[j][1] == level:
        return dict(curve[j][2])
    (_, l0, v0), (_, l1, v1) = curve[j - 1], curve[j]
    t = (level - l0) / (l1 - l0)
    return {k: v0[k] + t * (v1[k] - v0[k]) for k in v0}


def matched_fidelity(frame, levels: Sequence[float] = FIGURE_LEVELS, metrics: Sequence[str] | None = None):
    """The matched-fidelity frame (method, metric, level, mean, lo, hi, coverage, ranked) of one model and
    network's guidance-methods rows; empty without an LPIPS column."""
    import numpy as np
    import pandas as pd

    from .comparison import style_metrics
    from .statistics import mean_interval

    columns = ["method", "metric", "level", "mean", "lo", "hi", "coverage", "ranked"]
    if FIDELITY not in frame or frame[FIDELITY].isna().all():
        return pd.DataFrame(columns=columns)
    metrics = list(metrics or style_metrics(frame))
    styles, seeds = list(dict.fromkeys(frame["style"])), sorted(frame["seed"].unique())
    base = frame[frame["method"] == UNGUIDED].groupby(["style", "seed"])[metrics].mean()
    rows = []
    for method in dict.fromkeys(frame["method"]):
        if method == UNGUIDED:
            continue
        part = frame[frame["method"] == method]
        curves = {}
        for (style, seed), runs in part.groupby(["style", "seed"]):
            ref = base.loc[(style, seed)] if (style, seed) in base.index else None
            curves[(style, seed)] = [
                (
                    float(r["scale"]),
                    float(r[FIDELITY]),
                    {
                        m: math.log(r[m] / ref[m]) if ref is not None and r[m] > 0 and ref[m] > 0 else math.nan
                        for m in metrics
                    },
                )
                for _, r in runs.iterrows()
            ]
        for level in levels:
            values = {key: crossing(points, level) for key, points in curves.items()}
            coverage = sum(v is not None for v in values.values()) / (len(styles) * len(seeds))
            for metric in metrics:
                matrix = np.array(
                    [[(values.get((s, t)) or {}).get(metric, math.nan) for t in seeds] for s in styles], dtype=float
                )
                ranked = coverage >= 1.0 and bool(np.isfinite(matrix).all())
                if ranked:
                    interval = mean_interval(matrix)
                    mean, lo, hi = interval.value, interval.low, interval.high
                else:
                    mean = float(np.nanmean(matrix)) if np.isfinite(matrix).any() else math.nan
                    lo = hi = math.nan
                rows.append([method, metric, float(level), mean, lo, hi, coverage, ranked])
    return pd.DataFrame(rows, columns=columns)
