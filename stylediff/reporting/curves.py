"""Each method's curve read at fixed fidelity levels: the matched-fidelity table the comparison ranks.

For each method, style and seed the runs form a curve over the method's scales: the sample's LPIPS (VGG)
to the unguided sample of the same seed (how far guidance moved it) and its style distances. Each curve
is read at fixed levels (:data:`LEVELS`) by :func:`read_curve` (first crossing, linear between the two
points around it, never extrapolated; a curve with no value says why: :data:`MISSING`). Distances enter as
y = ln(d / d_unguided), so a style whose distances are ten times larger does not outweigh the others.
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

UNGUIDED = "unguided"
REALISM = "realism"
REALISM_BUDGET = 0.08
"""Realism distance (cosine, VGG mean+std features, to the nearest unguided sample) up to which a guided
sample still shows the model's subject: bench/scale_range.py's bound on the faces demo model, 30 % of
the way from its unguided samples (0.0065) to uniform noise (0.26), set by looking at the grids."""

LEVELS = (0.1, 0.2, 0.3)
"""LPIPS (VGG) to the same-seed unguided sample at which the methods are compared."""
FIDELITY = "lpips_vgg"
MAX_GAP = 0.2
"""The largest LPIPS step between two neighbouring points of a curve that an interpolation may bridge: a
wider step is a straight line across an unmeasured stretch (the committed 5-point grid bridged up to
0.6 on the textures), so the curve has no value there ("gap") instead of a guessed one."""
RENOISING = frozenset({"freedom", "ugd"})
"""Methods whose sample at a vanishing scale is not the unguided sample: they re-noise with fresh noise
(FreeDoM's time travel, Universal Guidance's self-recurrence), so their curves get no anchor at LPIPS 0
and a floor above the level is a property of the method ("floor"), not of the grid."""
MISSING = ("nan_fidelity", "not_reached", "floor", "gap")
"""Why a curve has no value at a level: a NaN fidelity on the curve, no point reaches the level, the
first point is already above it (no anchor), or the bracketing points are more than MAX_GAP apart."""


@dataclass(frozen=True)
class Reading:
    """One curve read at one level: the interpolated values (None when missing) and the status
    (``exact``, ``interpolated`` or one of :data:`MISSING`).
    """

    status: str
    values: dict[str, float] | None = None


def read_curve(scales, fidelity, values: dict, level: float, anchor: dict | None = None, max_gap: float = MAX_GAP):
    """The first crossing of ``level`` along the scale order: the first point whose fidelity is at least
    ``level`` and the point before it, each of ``values`` ({column: per-point values}) linear in the
    fidelity between them (the running maximum of the fidelity crosses the level there: "turn the scale
    up until the sample has moved by ``level``"). ``anchor`` ({column: value}) is the scale-0 point at
    fidelity 0 of a method whose vanishing scale is the unguided sample. Never extrapolates.
    """
    import numpy as np

    order = np.argsort(np.asarray(scales, dtype=float), kind="stable")
    lp = np.asarray(fidelity, dtype=float)[order]
    cols = {k: np.asarray(v, dtype=float)[order] for k, v in values.items()}
    if anchor is not None:
        lp = np.concatenate([[0.0], lp])
        cols = {k: np.concatenate([[anchor[k]], v]) for k, v in cols.items()}
    if np.isnan(lp).any():
        return Reading("nan_fidelity")
    above = np.flatnonzero(lp >= level)
    if len(above) == 0:
        return Reading("not_reached")
    j = int(above[0])
    if lp[j] == level:
        return Reading("exact", {k: float(v[j]) for k, v in cols.items()})
    if j == 0:
        return Reading("floor")
    if lp[j] - lp[j - 1] > max_gap:
        return Reading("gap")
    t = (level - lp[j - 1]) / (lp[j] - lp[j - 1])
    return Reading("interpolated", {k: float(v[j - 1] + t * (v[j] - v[j - 1])) for k, v in cols.items()})


def crossings(scales, fidelity, level: float) -> int:
    """How often a curve (in scale order) crosses ``level``: more than 1 means the fidelity is not
    monotone in the scale around it (reported beside the first-crossing value, not hidden).
    """
    import numpy as np

    lp = np.asarray(fidelity, dtype=float)[np.argsort(np.asarray(scales, dtype=float), kind="stable")]
    side = lp >= level
    return int(np.sum(side[1:] != side[:-1]) + bool(side[0])) if len(lp) else 0


# ------------------------------------------------------------------------------- matched table
def _log_ratio(value: float, unguided: float) -> float:
    """ln(d / d_unguided); NaN when either is missing or not positive."""
    if not (value > 0 and unguided > 0):
        return float("nan")
    return math.log(value / unguided)


def _curve_columns(runs, base, metrics: Sequence[str]) -> dict[str, list[float]]:
    """Per point of a curve: the log ratio (``lr_<metric>``) and raw distance (``raw_<metric>``) of every
    style metric, and the realism distance.
    """
    columns = {}
    for metric in metrics:
        raw = runs[metric].astype(float).tolist() if metric in runs else [float("nan")] * len(runs)
        columns[f"raw_{metric}"] = raw
        columns[f"lr_{metric}"] = [_log_ratio(v, float(base.get(metric, float("nan")))) for v in raw]
    columns[REALISM] = runs[REALISM].astype(float).tolist() if REALISM in runs else [float("nan")] * len(runs)
    return columns


def _anchor(method: str, base, metrics: Sequence[str]) -> dict[str, float] | None:
    """The scale-0 point of a method whose vanishing scale is the unguided sample: log ratio 0, the
    unguided sample's own distances and realism.
    """
    if method in RENOISING:
        return None
    anchor = {f"lr_{metric}": 0.0 for metric in metrics}
    anchor.update({f"raw_{metric}": float(base.get(metric, float("nan"))) for metric in metrics})
    anchor[REALISM] = float(base.get(REALISM, float("nan")))
    return anchor


def matched_table(frame, metrics: Sequence[str], levels: Sequence[float] = LEVELS, max_gap: float = MAX_GAP):
    """One row per (method, style, seed, level): the curve's reading there (``status``, how often the
    curve crosses the level), the interpolated log ratios ``lr_<metric>``, raw distances ``raw_<metric>``
    and realism. A curve without an unguided sample of its style and seed is ``no_baseline``.
    """
    import pandas as pd

    unguided = frame[frame["method"] == UNGUIDED].groupby(["style", "seed"]).mean(numeric_only=True)
    rows = []
    for (method, style, seed), runs in frame[frame["method"] != UNGUIDED].groupby(["method", "style", "seed"]):
        base = unguided.loc[(style, seed)] if (style, seed) in unguided.index else None
        fidelity = runs[FIDELITY].astype(float).tolist() if FIDELITY in runs else [float("nan")] * len(runs)
        scales = runs["scale"].astype(float).tolist()
        for level in levels:
            row = {"method": method, "style": style, "seed": int(seed), "level": float(level)}
            row["crossings"] = crossings(scales, fidelity, level)
            if base is None:
                rows.append({**row, "status": "no_baseline"})
                continue
            reading = read_curve(
                scales, fidelity, _curve_columns(runs, base, metrics), level, _anchor(method, base, metrics), max_gap
            )
            rows.append({**row, "status": reading.status, **(reading.values or {})})
    return pd.DataFrame(rows)
