"""The statistics the results page states: rank correlations with bootstrap intervals, Kendall's τ,
seeded bootstrap means over styles × seeds (crossed resampling, paired when two methods share their
styles and seeds), bootstrap p-values with Holm's step-down adjustment over a family of comparisons,
and the word a claim takes from an interval.

Every resampling draws from ``numpy.random.default_rng(seed)``: the same table gives the same page.
A claim's direction word comes from here and nowhere else (:func:`trend_word`): "falls" when the
whole interval is below zero, "rises" when above, "shows no clear trend" when it spans zero.

:class:`CrossedDraws` is the one crossed bootstrap of a comparison: B draws of the styles and,
independently, of the seeds (the same seed is the same initial noise for every style, so seeds are
crossed with styles, not nested in them), shared by every matrix it resamples, so that differences of
two methods are paired and a statistic of several methods (Kendall's τ of their means) is resampled
coherently. It is conservative (it counts the style × seed interaction twice) and coarse with few
levels of either factor: with 2 seeds it has only 3 distinct seed resamples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of every bootstrap interval (percentile method, 95 %)."""
LEVEL = 0.95
ALPHA = 1 - LEVEL
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


def percentile_interval(samples, level: float = LEVEL) -> tuple[float, float]:
    """The two-sided percentile interval of the finite ``samples`` at ``level`` (NaNs without any)."""
    import numpy as np

    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def bootstrap_p(samples) -> float:
    """Two-sided bootstrap p-value of "the mean difference is 0": twice the smaller share of resampled
    differences on either side of 0, counted as (k + 1) / (B + 1) so that no p is 0 (the smallest is
    2 / (B + 1): B must be large enough for the family's smallest Holm threshold). NaN without samples."""
    import numpy as np

    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return float("nan")
    below = (np.sum(samples <= 0) + 1) / (len(samples) + 1)
    above = (np.sum(samples >= 0) + 1) / (len(samples) + 1)
    return float(min(1.0, 2 * min(below, above)))


@dataclass(frozen=True)
class HolmDecision:
    """One hypothesis of a Holm family: the adjusted p, whether it is rejected, and the confidence level
    of the interval shown with it (the level of the Holm step that decided it)."""

    adjusted: float
    rejected: bool
    level: float


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[HolmDecision]:
    """Holm's step-down adjustment of ``pvalues`` (one family), in their order.

    The i-th smallest p (from 0) is rejected when it and every smaller one are at most α / (m − i). The
    interval level 1 − α / (m − i) of a rejected hypothesis, and for the others the level of the step at
    which the procedure stopped, make "the percentile interval excludes 0" agree with "rejected" (exactly
    so for the bootstrap p of :func:`bootstrap_p`, up to its (k + 1) / (B + 1) convention). A NaN p is
    never rejected and sorts last."""
    import numpy as np

    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (math.isnan(pvalues[i]), pvalues[i]))
    out: list[HolmDecision | None] = [None] * m
    running, stopped = 0.0, None
    for rank, i in enumerate(order):
        p = pvalues[i]
        running = max(running, min(1.0, (m - rank) * p)) if not math.isnan(p) else float("nan")
        if stopped is None and not math.isnan(p) and p <= alpha / (m - rank):
            out[i] = HolmDecision(float(running), True, 1 - alpha / (m - rank))
            continue
        stopped = rank if stopped is None else stopped
        out[i] = HolmDecision(
            float(running) if np.isfinite(running) else float("nan"), False, 1 - alpha / (m - stopped)
        )
    return [decision for decision in out if decision is not None]


def cell_matrix(runs, metric: str, styles, seeds):
    """(styles × seeds) means of ``metric`` over ``runs`` (a frame): the matrix a crossed bootstrap draws
    from, NaN where no run is."""
    import numpy as np

    means = runs.groupby(["style", "seed"])[metric].mean() if metric in runs else {}
    return np.array([[means.get((style, seed), np.nan) for seed in seeds] for style in styles], dtype=float)


@dataclass
class CrossedDraws:
    """Crossed-bootstrap count weights of ``styles`` (B × S) and ``seeds`` (B × T), drawn once and shared
    by every (styles × seeds) matrix of a comparison (see the module docstring)."""

    styles: list
    seeds: list
    style_weights: object  # numpy (B, S)
    seed_weights: object  # numpy (B, T)

    @classmethod
    def draw(cls, styles: Sequence, seeds: Sequence, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED):
        import numpy as np

        rng = np.random.default_rng(seed)
        s, t = len(styles), len(seeds)
        style_weights = np.stack([np.bincount(rng.integers(0, s, s), minlength=s) for _ in range(resamples)])
        seed_weights = np.stack([np.bincount(rng.integers(0, t, t), minlength=t) for _ in range(resamples)])
        return cls(list(styles), list(seeds), style_weights.astype(float), seed_weights.astype(float))

    @property
    def resamples(self) -> int:
        return len(self.style_weights)

    def means(self, matrix):
        """Each draw's mean of a (styles × seeds) matrix, its NaN cells left out (NaN for a draw that picks
        none of the filled cells): Σ w_s w_t y_st / Σ w_s w_t [y_st filled]."""
        import numpy as np

        matrix = np.asarray(matrix, dtype=float)
        filled = np.isfinite(matrix)
        num = np.einsum("bs,st,bt->b", self.style_weights, np.where(filled, matrix, 0.0), self.seed_weights)
        den = np.einsum("bs,st,bt->b", self.style_weights, filled.astype(float), self.seed_weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    def interval(self, matrix, level: float = LEVEL) -> Interval:
        """The matrix's mean with its crossed-bootstrap percentile interval."""
        import numpy as np

        matrix = np.asarray(matrix, dtype=float)
        value = float(np.nanmean(matrix)) if np.isfinite(matrix).any() else float("nan")
        return Interval(value, *percentile_interval(self.means(matrix), level))
