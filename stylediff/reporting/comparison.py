"""The guidance-methods comparison at matched fidelity: no scale is chosen and every seed reports.

For each method, style and seed the runs form a curve: over the method's scales, the sample's LPIPS (VGG)
to the unguided sample of the same seed (how far guidance moved it) and its style distances. Each curve is
read at fixed fidelity levels (:data:`LEVELS`) by :func:`read_curve` (first crossing, linear between the
two points around it, never extrapolated; a curve with no value says why: :data:`MISSING`). Distances are
normalised per style and seed as y = ln(d / d_unguided), so a style whose distances are ten times larger
does not outweigh the others and y < 0 means closer to the style than the unguided sample; the raw
distances stay in the tables.

A method is *ranked* at a level only when every (style, seed) curve has a value there and its mean
interpolated realism is within :data:`REALISM_BUDGET` (a NaN fails): otherwise it is listed with the
reason and enters no comparison. Ranked methods are compared in pairs by the paired difference of their
mean y, with one crossed bootstrap of styles × seeds shared by every method, level and metric
(:class:`~stylediff.reporting.statistics.CrossedDraws`); each style metric's family is every pair of ranked
methods at every level, adjusted by Holm (:func:`~stylediff.reporting.statistics.holm`), and the interval
shown with a difference is the one at its Holm step's level, so "excludes 0" is "separated". Kendall's
τ-b between the guidance loss and each held-out metric is taken over the ranked methods' means, with an
interval from the same draws.

A split half survives only where one setting must be chosen (:func:`split_half_examples`: the scale of
each method's example images), and then in both directions.

Style metrics are columns named by :func:`style_metrics`: the guidance loss (:func:`guidance_metric`) and
every column starting with ``HELDOUT_PREFIX`` (the held-out networks' distances), lower is better. Runs
guided on different feature networks are compared separately (:func:`network_groups`). Torch-free.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.errors import ConfigError
from ..workflow.experiments import DEFAULT_NETWORK
from .curves import FIDELITY, LEVELS, MAX_GAP, REALISM, REALISM_BUDGET, UNGUIDED, matched_table
from .statistics import (
    ALPHA,
    SEED,
    CrossedDraws,
    Interval,
    bootstrap_p,
    cell_matrix,
    holm,
    kendall,
    percentile_interval,
)

GUIDANCE_METRIC = "gram_dist_mean"
"""The guidance loss as a metric of runs guided on VGG-19 (the VGG-19 Gram distance)."""
RECORDED_LOSS = "final_loss"
"""The guidance loss of runs guided on another network: the loss the sampler recorded on its own output
(no metric column re-measures a CLIP-Gram loss)."""
HELDOUT_PREFIX = "heldout_"
"""Columns of style distances on networks the run did not optimise (e.g. ``heldout_vgg16_gram``)."""
RESAMPLES = 20000
"""Crossed-bootstrap draws of a comparison: the smallest bootstrap p is 2 / (B + 1) = 1e-4, below the
smallest Holm threshold of a family of up to 100 tests (0.05 / 100 = 5e-4)."""
SWEEP = tuple(round(0.05 + 0.025 * k, 3) for k in range(15))
"""The fidelity levels of the budget sweep (LPIPS 0.05 … 0.4): the figure of distance at matched LPIPS."""
EXAMPLE_LEVEL = 0.2
"""The LPIPS the example images of each method are chosen at (split half, both directions)."""


def network_groups(frame):
    """(model slug, guidance network, rows) for each model and feature network the runs were guided on."""
    networks = frame["network"] if "network" in frame else None
    for slug in dict.fromkeys(frame["model_slug"]):
        sub = frame[frame["model_slug"] == slug]
        for network in dict.fromkeys(networks[sub.index]) if networks is not None else [DEFAULT_NETWORK]:
            yield slug, network, sub if networks is None else sub[sub["network"] == network]


def guidance_metric(frame) -> str:
    """The column that measures the loss ``frame``'s runs were guided by (one network's runs)."""
    networks = set(frame["network"]) if "network" in frame else {DEFAULT_NETWORK}
    if len(networks) > 1:
        raise ConfigError(f"runs guided on several networks ({', '.join(sorted(networks))}) compared as one")
    return GUIDANCE_METRIC if networks == {DEFAULT_NETWORK} else RECORDED_LOSS


def style_metrics(frame) -> list[str]:
    """The guidance loss, then every held-out style metric the table fills (for runs guided on another
    network than VGG-19, the VGG-19 Gram distance is one of them)."""
    guidance = guidance_metric(frame)
    held = sorted(c for c in frame.columns if c.startswith(HELDOUT_PREFIX) and frame[c].notna().any())
    vgg19 = [GUIDANCE_METRIC] if guidance != GUIDANCE_METRIC and GUIDANCE_METRIC in frame else []
    return [guidance] + held + vgg19


# ------------------------------------------------------------------------------- one metric
@dataclass
class MethodLevel:
    """One method read at one level by one metric."""

    method: str
    level: float
    value: Interval
    """Mean log ratio over the (style, seed) cells with a value, with its 95 % crossed-bootstrap interval."""
    raw: float
    """Mean interpolated raw distance over the same cells."""
    realism: float
    filled: int
    cells: int
    reasons: dict[str, int]
    """Why cells have no value: {reason of MISSING (or nan_metric, no_baseline): count}."""
    ranked: bool
    why: str = ""
    """Why the method is not ranked ("" when it is)."""


@dataclass
class PairTest:
    """a − b at one level: the paired mean difference of log ratios, its interval at the Holm step's level,
    the bootstrap p and the Holm-adjusted p of its family."""

    level: float
    a: str
    b: str
    difference: Interval
    p: float
    p_holm: float
    separated: bool
    interval_level: float

    def oriented(self, a: str) -> PairTest:
        """The same test as ``a`` − the other."""
        if a == self.a:
            return self
        d = self.difference
        return PairTest(
            self.level,
            self.b,
            self.a,
            Interval(-d.value, -d.high, -d.low),
            self.p,
            self.p_holm,
            self.separated,
            self.interval_level,
        )


@dataclass
class MetricResult:
    """Every method at every level by one style metric, and the Holm family of its pairwise tests."""

    metric: str
    levels: tuple[float, ...]
    rows: dict[tuple[str, float], MethodLevel]
    pairs: list[PairTest]

    @property
    def family(self) -> int:
        return len(self.pairs)

    def ranked(self, level: float) -> list[str]:
        """The ranked methods at ``level``, lowest mean log ratio first (then by name)."""
        ranked = [row for (_, lv), row in self.rows.items() if lv == level and row.ranked]
        return [row.method for row in sorted(ranked, key=lambda row: (row.value.value, row.method))]

    def unranked(self, level: float) -> dict[str, str]:
        return {row.method: row.why for (_, lv), row in self.rows.items() if lv == level and not row.ranked}

    def pair(self, level: float, a: str, b: str) -> PairTest:
        """The test of a − b at ``level``."""
        for test in self.pairs:
            if test.level == level and {test.a, test.b} == {a, b}:
                return test.oriented(a)
        raise KeyError((level, a, b))

    def leaders(self, level: float) -> tuple[list[str], list[str], list[str]]:
        """(the ranked methods sharing the lowest mean, those not separated from the first of them, those
        separated from it): what a verdict may say, chosen by the Holm decisions only."""
        ranked = self.ranked(level)
        if not ranked:
            return [], [], []
        low = self.rows[(ranked[0], level)].value.value
        lowest = [m for m in ranked if self.rows[(m, level)].value.value == low]
        others = [m for m in ranked if m != ranked[0]]
        tied = [m for m in others if not self.pair(level, ranked[0], m).separated]
        return lowest, tied, [m for m in others if m not in tied]


def _reasons(cells, filled_values) -> dict[str, int]:
    """Why cells have no value: their curves' statuses, and ``nan_metric`` for a read curve whose metric
    is missing or not positive."""
    import numpy as np

    reasons = {k: int(v) for k, v in cells["status"].value_counts().items() if k not in ("interpolated", "exact")}
    read = cells["status"].isin(["interpolated", "exact"]).to_numpy()
    missing = int(np.sum(read & ~np.isfinite(filled_values)))
    return {**reasons, **({"nan_metric": missing} if missing else {})}


def _why(filled: int, cells: int, reasons: dict[str, int], realism: float, realism_checked: bool) -> str:
    if filled < cells:
        return f"no value in {cells - filled} of {cells} curves: " + ", ".join(
            f"{reason} {count}" for reason, count in sorted(reasons.items())
        )
    if realism_checked and not realism <= REALISM_BUDGET:  # a NaN fails
        return f"realism {realism:.3g} over the budget {REALISM_BUDGET:g}" if realism == realism else "realism missing"
    return ""


def _method_level(cells, metric: str, draws: CrossedDraws, level: float, realism_checked: bool):
    """(MethodLevel, its log-ratio matrix) of one method's cells at one level."""
    import numpy as np

    matrix = cell_matrix(cells, f"lr_{metric}", draws.styles, draws.seeds)
    realism = cell_matrix(cells, REALISM, draws.styles, draws.seeds)
    values = cells[f"lr_{metric}"].to_numpy(dtype=float) if f"lr_{metric}" in cells else np.full(len(cells), np.nan)
    filled, total = int(np.isfinite(matrix).sum()), matrix.size
    reasons = _reasons(cells, values)
    mean_realism = float(np.nanmean(realism)) if np.isfinite(realism).any() else float("nan")
    why = _why(filled, total, reasons, mean_realism, realism_checked)
    raw = cell_matrix(cells, f"raw_{metric}", draws.styles, draws.seeds)
    row = MethodLevel(
        method=str(cells["method"].iloc[0]),
        level=level,
        value=draws.interval(matrix) if filled else Interval(float("nan"), float("nan"), float("nan")),
        raw=float(np.nanmean(raw)) if np.isfinite(raw).any() else float("nan"),
        realism=mean_realism,
        filled=filled,
        cells=total,
        reasons=reasons,
        ranked=not why,
        why=why,
    )
    return row, matrix


def _pair_tests(matrices: dict[tuple[str, float], object], draws: CrossedDraws, alpha: float) -> list[PairTest]:
    """Every pair of ranked methods at every level, Holm-adjusted as one family."""
    levels = dict.fromkeys(level for _, level in matrices)
    raw = []
    for level in levels:
        methods = sorted(m for m, lv in matrices if lv == level)
        for a, b in itertools.combinations(methods, 2):
            diff = matrices[(a, level)] - matrices[(b, level)]
            samples = draws.means(diff)
            raw.append((level, a, b, float(diff.mean()), samples, bootstrap_p(samples)))
    decisions = holm([p for *_, p in raw], alpha)
    return [
        PairTest(
            level, a, b, Interval(value, *percentile_interval(samples, d.level)), p, d.adjusted, d.rejected, d.level
        )
        for (level, a, b, value, samples, p), d in zip(raw, decisions)
    ]


def _metric_result(table, metric: str, draws: CrossedDraws, levels, realism_checked: bool, alpha: float):
    rows, matrices = {}, {}
    for level in levels:
        at = table[table["level"] == level]
        for method, cells in at.groupby("method"):
            row, matrix = _method_level(cells, metric, draws, level, realism_checked)
            rows[(method, level)] = row
            if row.ranked:
                matrices[(method, level)] = matrix
    return MetricResult(metric, tuple(levels), rows, _pair_tests(matrices, draws, alpha)), matrices


# ------------------------------------------------------------------------------- agreement
@dataclass(frozen=True)
class Agreement:
    """Kendall's τ-b between the guidance loss and a held-out metric over the methods ranked by both at
    one level (their mean log ratios), with its crossed-bootstrap interval."""

    metric: str
    level: float
    methods: tuple[str, ...]
    tau: Interval


def kendall_draws(x, y):
    """Kendall's τ-b of the columns of x and y (methods × draws) for every draw (NaN where undefined)."""
    import numpy as np

    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    pairs = len(i)
    denominator = np.sqrt((pairs - np.sum(dx == 0, axis=0)) * (pairs - np.sum(dy == 0, axis=0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.sum(dx * dy, axis=0) / np.where(denominator > 0, denominator, 1), np.nan)


def _agreements(results: dict[str, MetricResult], matrices: dict, draws: CrossedDraws, levels) -> list[Agreement]:
    import numpy as np

    guidance, *held = list(results)
    out = []
    for metric, level in itertools.product(held, levels):
        methods = sorted(set(results[guidance].ranked(level)) & set(results[metric].ranked(level)))
        if len(methods) < 3:
            continue
        g = np.stack([draws.means(matrices[guidance][(m, level)]) for m in methods])
        h = np.stack([draws.means(matrices[metric][(m, level)]) for m in methods])
        point = kendall(
            [results[guidance].rows[(m, level)].value.value for m in methods],
            [results[metric].rows[(m, level)].value.value for m in methods],
        )
        out.append(Agreement(metric, level, tuple(methods), Interval(point, *percentile_interval(kendall_draws(g, h)))))
    return out


# ------------------------------------------------------------------------------- the comparison
@dataclass
class MatchedComparison:
    """What :func:`compare` found for one model and guidance network."""

    styles: list
    seeds: list
    levels: tuple[float, ...]
    metrics: list[str]
    results: dict[str, MetricResult]
    agreement: list[Agreement]
    table: object  # the matched table (pandas.DataFrame), one row per (method, style, seed, level)
    resamples: int
    realism_checked: bool
    max_gap: float = MAX_GAP
    methods: list[str] = field(default_factory=list)


def compare(
    frame,
    levels: Sequence[float] = LEVELS,
    resamples: int = RESAMPLES,
    max_gap: float = MAX_GAP,
    seed: int = SEED,
    alpha: float = ALPHA,
) -> MatchedComparison:
    """The matched-fidelity comparison of every method in a guidance-methods table (one model, one
    network): the module docstring says what it does."""
    metrics = style_metrics(frame)
    guided = frame[frame["method"] != UNGUIDED]
    if guided.empty:
        raise ConfigError("the guidance-methods table has no guided runs to compare")
    table = matched_table(frame, metrics, levels, max_gap)
    styles, seeds = list(dict.fromkeys(frame["style"])), sorted(int(s) for s in frame["seed"].unique())
    draws = CrossedDraws.draw(styles, seeds, resamples, seed)
    realism_checked = REALISM in frame
    results, matrices = {}, {}
    for metric in metrics:
        results[metric], matrices[metric] = _metric_result(table, metric, draws, levels, realism_checked, alpha)
    return MatchedComparison(
        styles,
        seeds,
        tuple(levels),
        metrics,
        results,
        _agreements(results, matrices, draws, levels),
        table,
        resamples,
        realism_checked,
        max_gap,
        list(dict.fromkeys(guided["method"])),
    )


# ------------------------------------------------------------------------------- for the figures
def sweep(frame, levels: Sequence[float] = SWEEP, resamples: int = RESAMPLES, max_gap: float = MAX_GAP, seed=SEED):
    """The budget sweep as a tidy DataFrame for the figure "distance at matched LPIPS vs LPIPS": one row
    per (method, metric, level) with the mean log ratio ``mean`` and its pointwise 95 % crossed-bootstrap
    band ``lo``–``hi`` (NaN without a value), ``coverage`` (share of (style, seed) curves with a value) and
    ``ranked`` (every curve has a value and realism is within budget: draw the line solid only there)."""
    import pandas as pd

    result = compare(frame, levels, resamples, max_gap, seed)
    rows = []
    for metric, res in result.results.items():
        for (method, level), row in res.rows.items():
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    "level": level,
                    "mean": row.value.value,
                    "lo": row.value.low,
                    "hi": row.value.high,
                    "coverage": row.filled / row.cells if row.cells else 0.0,
                    "ranked": row.ranked,
                }
            )
    return pd.DataFrame(rows, columns=["method", "metric", "level", "mean", "lo", "hi", "coverage", "ranked"])


@dataclass(frozen=True)
class SplitHalf:
    """Seeds that choose a setting and the disjoint seeds that show or report it."""

    selection: tuple[int, ...]
    report: tuple[int, ...]

    def __post_init__(self):
        if set(self.selection) & set(self.report):
            raise ConfigError(f"selection and report seeds overlap: {sorted(set(self.selection) & set(self.report))}")

    def swapped(self) -> SplitHalf:
        return SplitHalf(self.report, self.selection)


def split_seeds(seeds: Sequence[int]) -> SplitHalf:
    """Sorted seeds alternately to selection (1st, 3rd, …) and report (2nd, 4th, …)."""
    ordered = sorted({int(s) for s in seeds})
    if len(ordered) < 2:
        raise ConfigError(f"split-half selection needs at least 2 seeds, got {ordered}")
    return SplitHalf(tuple(ordered[0::2]), tuple(ordered[1::2]))


def _choose_scale(runs, split: SplitHalf, target: float) -> tuple[float, float, float]:
    """(scale, its mean LPIPS on the selection seeds, on the report seeds): the scale whose mean LPIPS on
    the selection seeds is nearest ``target`` (ties: the smaller scale)."""
    by_half = {}
    for name, seeds in (("selection", split.selection), ("report", split.report)):
        by_half[name] = runs[runs["seed"].isin(seeds)].groupby("scale")[FIDELITY].mean()
    selection = by_half["selection"].dropna()
    if selection.empty:
        return float("nan"), float("nan"), float("nan")
    scale = min(selection.index, key=lambda s: (abs(selection[s] - target), s))
    return float(scale), float(selection[scale]), float(by_half["report"].get(scale, float("nan")))


def split_half_examples(frame, target: float = EXAMPLE_LEVEL, split: SplitHalf | None = None):
    """The example images of each method "at LPIPS ≈ ``target``": the scale is chosen on one half of the
    seeds (mean LPIPS nearest ``target``) and its images shown from the other half, in both directions.
    A tidy DataFrame, one row per (direction, method, style, shown seed): ``direction`` ("0,2,4→1,3,5"),
    ``method``, ``scale``, ``selection_lpips``, ``report_lpips`` (the chosen scale's mean LPIPS on each
    half), ``style``, ``seed``, ``output`` (the image) and ``lpips_vgg`` (that image's)."""
    import pandas as pd

    split = split or split_seeds(frame["seed"].unique())
    rows = []
    for half in (split, split.swapped()):
        direction = f"{','.join(map(str, half.selection))}→{','.join(map(str, half.report))}"
        for method in dict.fromkeys(frame.loc[frame["method"] != UNGUIDED, "method"]):
            runs = frame[frame["method"] == method]
            scale, chosen, shown = _choose_scale(runs, half, target)
            picked = runs[(runs["scale"] == scale) & runs["seed"].isin(half.report)]
            for _, run in picked.sort_values(["style", "seed"]).iterrows():
                rows.append(
                    {
                        "direction": direction,
                        "method": method,
                        "scale": scale,
                        "selection_lpips": chosen,
                        "report_lpips": shown,
                        "style": run["style"],
                        "seed": int(run["seed"]),
                        "output": run.get("output"),
                        "lpips_vgg": run.get(FIDELITY),
                    }
                )
    columns = ["direction", "method", "scale", "selection_lpips", "report_lpips", "style", "seed", "output"]
    return pd.DataFrame(rows, columns=columns + ["lpips_vgg"])
