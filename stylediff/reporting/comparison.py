"""The guidance-methods comparison as a reviewer accepts it: each method's setting chosen on one half of
the seeds at a stated fidelity budget and reported on the other half, with bootstrap intervals over
styles × seeds, paired differences against the best method, and the agreement of the guidance loss
with every held-out style metric (Kendall τ over method × scale cells, and each pair of methods whose
order changes with the metric).

Style metrics are columns named by :func:`style_metrics`: the guidance loss (:func:`guidance_metric`) and
every column starting with ``HELDOUT_PREFIX`` (the held-out networks' distances), lower is better. Runs
guided on different feature networks are compared separately (:func:`network_groups`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.errors import ConfigError
from ..workflow.experiments import DEFAULT_NETWORK
from .statistics import Interval, kendall, mean_interval, paired_difference

GUIDANCE_METRIC = "gram_dist_mean"
"""The guidance loss as a metric of runs guided on VGG-19 (the VGG-19 Gram distance)."""
RECORDED_LOSS = "final_loss"
"""The guidance loss of runs guided on another network: the loss the sampler recorded on its own output
(no metric column re-measures a CLIP-Gram loss)."""
HELDOUT_PREFIX = "heldout_"
"""Columns of style distances on networks the run did not optimise (e.g. ``heldout_vgg16_gram``)."""
LPIPS_BUDGET = 0.3
"""The fidelity budget: mean LPIPS (VGG) to the same-seed unguided sample on the selection seeds."""
REALISM_BUDGET = 0.08
"""Realism distance (cosine, VGG mean+std features, to the nearest unguided sample) up to which a guided
sample still shows the model's subject: bench/scale_range.py's bound on the faces demo model, 30 % of
the way from its unguided samples (0.0065) to uniform noise (0.26), set by looking at the grids."""
UNGUIDED = "unguided"


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


@dataclass(frozen=True)
class SplitHalf:
    """Seeds that choose each method's setting and the disjoint seeds that report it."""

    selection: tuple[int, ...]
    report: tuple[int, ...]

    def __post_init__(self):
        if set(self.selection) & set(self.report):
            raise ConfigError(f"selection and report seeds overlap: {sorted(set(self.selection) & set(self.report))}")


def split_seeds(seeds: Sequence[int]) -> SplitHalf:
    """Sorted seeds alternately to selection (1st, 3rd, …) and report (2nd, 4th, …)."""
    ordered = sorted({int(s) for s in seeds})
    if len(ordered) < 2:
        raise ConfigError(f"split-half selection needs at least 2 seeds, got {ordered}")
    return SplitHalf(tuple(ordered[0::2]), tuple(ordered[1::2]))


@dataclass(frozen=True)
class Budget:
    """The fidelity budget a setting must meet on the selection seeds (means over styles × seeds)."""

    lpips: float | None = LPIPS_BUDGET
    realism: float | None = REALISM_BUDGET

    def describe(self, frame) -> str:
        parts = []
        if self.lpips is not None and "lpips_vgg" in frame:
            parts.append(f"LPIPS to the unguided sample ≤ {self.lpips:g}")
        if self.realism is not None and "realism" in frame:
            parts.append(f"realism distance ≤ {self.realism:g}")
        return " and ".join(parts) or "no fidelity budget (no fidelity column)"

    def met(self, runs) -> bool:
        if self.lpips is not None and "lpips_vgg" in runs and runs["lpips_vgg"].mean() > self.lpips:
            return False
        return not (self.realism is not None and "realism" in runs and runs["realism"].mean() > self.realism)


@dataclass(frozen=True)
class Choice:
    """One method's setting, chosen on the selection seeds."""

    method: str
    scale: float
    selection_mean: float  # the guidance loss on the selection seeds at that scale
    within_budget: bool


def select_settings(frame, split: SplitHalf, budget: Budget = Budget()) -> dict[str, Choice]:
    """Per method: the scale with the lowest mean guidance loss among those within ``budget``, both
    measured on the selection seeds only (if none is within it: the scale with the lowest LPIPS,
    flagged). The unguided rows are the scale-0 choice of ``unguided``."""
    chosen, guidance = {}, guidance_metric(frame)
    selection = frame[frame["seed"].isin(split.selection)]
    for method in dict.fromkeys(selection["method"]):
        part = selection[selection["method"] == method]
        scores = []
        for scale in sorted(part["scale"].unique()):
            runs = part[part["scale"] == scale]
            fidelity = runs["lpips_vgg"].mean() if "lpips_vgg" in runs else 0.0
            scores.append((budget.met(runs), runs[guidance].mean(), fidelity, float(scale)))
        within = [s for s in scores if s[0]]
        best = min(within, key=lambda s: s[1]) if within else min(scores, key=lambda s: s[2])
        chosen[method] = Choice(method, best[3], float(best[1]), bool(best[0]))
    return chosen


def cell_matrix(runs, metric: str, styles: Sequence[str], seeds: Sequence[int]):
    """(styles × seeds) of ``metric``, NaN where a run is missing."""
    import numpy as np

    means = runs.groupby(["style", "seed"])[metric].mean()
    return np.array([[means.get((style, seed), np.nan) for seed in seeds] for style in styles], dtype=float)


@dataclass
class Reported:
    """One method at its chosen setting, measured on the report seeds only."""

    choice: Choice
    seeds: tuple[int, ...]
    metrics: dict[str, Interval]
    fidelity: Interval | None
    difference: dict[str, Interval] = field(default_factory=dict)
    """metric -> this method minus the best method, paired over the same styles × report seeds."""


@dataclass
class Comparison:
    """What :func:`compare` found: the split, the budget, the style metrics, each method's reported row."""

    split: SplitHalf
    budget: Budget
    metrics: list[str]
    styles: list[str]
    rows: dict[str, Reported]
    best: dict[str, str]
    """metric -> the guided method with the lowest mean on the *selection* seeds at its chosen setting,
    among those within the budget (all guided methods when none is)."""
    agreement: dict[str, tuple[float, int, int]]
    """held-out metric -> (Kendall τ with the guidance loss over method × scale cells, number of cells,
    number of cell pairs the two metrics order oppositely)."""
    swaps: dict[str, list[tuple[str, str]]]
    """held-out metric -> pairs (a, b): a ahead of b by the guidance loss, behind by the held-out metric."""


def compare(frame, budget: Budget = Budget()) -> Comparison:
    """The split-half comparison of every method in a guidance-methods table (one model, one network)."""
    split = split_seeds(frame["seed"].unique())
    metrics = style_metrics(frame)
    styles = list(dict.fromkeys(frame["style"]))
    choices = select_settings(frame, split, budget)
    report = frame[frame["seed"].isin(split.report)]
    selection = frame[frame["seed"].isin(split.selection)]
    rows, matrices = {}, {}
    for method, choice in choices.items():
        runs = report[(report["method"] == method) & (report["scale"] == choice.scale)]
        matrices[method] = {m: cell_matrix(runs, m, styles, split.report) for m in metrics}
        fidelity = mean_interval(cell_matrix(runs, "lpips_vgg", styles, split.report)) if "lpips_vgg" in runs else None
        rows[method] = Reported(
            choice,
            tuple(sorted(runs["seed"].unique())),
            {m: mean_interval(matrices[method][m]) for m in metrics},
            fidelity,
        )
    guided = [m for m in rows if m != UNGUIDED]
    eligible = [m for m in guided if rows[m].choice.within_budget] or guided
    best = {}
    for metric in metrics:
        chosen = {
            m: selection[(selection["method"] == m) & (selection["scale"] == rows[m].choice.scale)][metric].mean()
            for m in eligible
        }
        chosen = {m: v for m, v in chosen.items() if not math.isnan(v)}
        if chosen:
            best[metric] = min(chosen, key=chosen.get)
            for method in rows:
                if method != best[metric]:
                    rows[method].difference[metric] = paired_difference(
                        matrices[method][metric], matrices[best[metric]][metric]
                    )
    cells = frame[frame["method"] != UNGUIDED].groupby(["method", "scale"])[metrics].mean()
    agreement, swaps = {}, {}
    guidance = metrics[0]
    for metric in metrics[1:]:
        g, h = cells[guidance].to_numpy(), cells[metric].to_numpy()
        opposite = int(sum((g[i] - g[j]) * (h[i] - h[j]) < 0 for i in range(len(g)) for j in range(i + 1, len(g))))
        agreement[metric] = (kendall(g, h), len(cells), opposite)
        means = {m: rows[m].metrics for m in guided}
        swaps[metric] = [
            (a, b)
            for a in guided
            for b in guided
            if means[a][guidance].value < means[b][guidance].value and means[a][metric].value > means[b][metric].value
        ]
    return Comparison(split, budget, metrics, styles, rows, best, agreement, swaps)
