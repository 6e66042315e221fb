"""The statistics the results page states: rank correlations with bootstrap intervals, Kendall's τ,
seeded bootstrap means over styles × seeds (crossed resampling, paired when two methods share their
styles and seeds), and the word a claim takes from an interval.

Every resampling draws from ``numpy.random.default_rng(seed)``: the same table gives the same page.
A claim's direction word comes from here and nowhere else (:func:`trend_word`): "falls" when the
whole interval is below zero, "rises" when above, "shows no clear trend" when it spans zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of every bootstrap interval (percentile method, 95 %)."""
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided 95 % interval (NaN bounds when it cannot be resampled)."""

    value: float
    low: float
    high: float

    @property
    def sign(self) -> int:
        """+1 when the interval lies above zero, −1 below, 0 when it spans (or touches) zero or is NaN."""
        if self.low > 0:
            return 1
        if self.high < 0:
            return -1
        return 0


def trend_word(
    interval: Interval, rises: str = "rises", falls: str = "falls", flat: str = "shows no clear trend"
) -> str:
    """The direction word the interval supports."""
    return {1: rises, -1: falls, 0: flat}[interval.sign]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (the Pearson correlation of scipy's average ranks, ties shared);
    NaN when either side is constant or fewer than two pairs; pairs with a NaN are left out."""
    import numpy as np
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (scipy); NaN when either side is constant or fewer than two pairs."""
    import numpy as np
    from scipy.stats import kendalltau

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(kendalltau(x, y).statistic)


def _percentiles(samples) -> tuple[float, float]:
    import numpy as np

    samples = np.asarray(samples, dtype=float)
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - LEVEL) / 2
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def spearman_interval(
    x: Sequence[float],
    y: Sequence[float],
    groups: Sequence | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Spearman's ρ with a bootstrap interval: the pairs resampled with replacement, or whole
    ``groups`` (e.g. the image or style each pair belongs to) when given."""
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    value = spearman(x, y)
    if math.isnan(value):
        return Interval(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    keys = np.asarray(groups) if groups is not None else np.arange(len(x))
    members = {key: np.flatnonzero(keys == key) for key in dict.fromkeys(keys.tolist())}
    names = list(members)
    samples = []
    for _ in range(resamples):
        picked = np.concatenate([members[names[i]] for i in rng.integers(0, len(names), len(names))])
        samples.append(spearman(x[picked], y[picked]))
    return Interval(value, *_percentiles(samples))


def crossed_means(matrix, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED):
    """Bootstrap means of a (styles × seeds) matrix, styles and seeds resampled independently with
    replacement (a crossed two-way bootstrap); NaN cells are left out of each mean. Returns the
    ``resamples`` means (the same draws for every matrix of the same shape and seed, so two methods'
    draws are paired)."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=float)
    rng = np.random.default_rng(seed)
    rows, cols = matrix.shape
    means = np.empty(resamples)
    for k in range(resamples):
        picked = matrix[np.ix_(rng.integers(0, rows, rows), rng.integers(0, cols, cols))]
        means[k] = np.nanmean(picked) if np.isfinite(picked).any() else np.nan
    return means


def mean_interval(matrix, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED) -> Interval:
    """The mean of a (styles × seeds) matrix with its crossed-bootstrap interval."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=float)
    value = float(np.nanmean(matrix)) if np.isfinite(matrix).any() else float("nan")
    if matrix.size < 2:
        return Interval(value, float("nan"), float("nan"))
    return Interval(value, *_percentiles(crossed_means(matrix, resamples, seed)))


def paired_difference(a, b, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED) -> Interval:
    """mean(a − b) over the cells both matrices (same styles × seeds) fill, with the crossed-bootstrap
    interval of the paired difference."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired matrices differ in shape: {a.shape} vs {b.shape}")
    return mean_interval(a - b, resamples, seed)
