"""The results page's guidance-methods section: every cell of the grid (mean ± std, the raw numbers), then
the matched-fidelity comparison of :mod:`.comparison` (each method's curves read at LPIPS 0.1, 0.2, 0.3;
log ratios to the unguided sample; crossed bootstrap over styles × seeds; Holm over each metric's
family), and the sentences it supports. Every word that ranks a method comes from a Holm decision or an
interval's sign, never from a point mean: "closer than" only for separated pairs, "not separated from"
otherwise, "not ranked" (with the reason) for a method without a value on every curve or over the
realism budget."""

from __future__ import annotations

from collections.abc import Callable

from ..workflow.experiments import DEFAULT_NETWORK, methods_figure_stem
from .comparison import (
    MatchedComparison,
    MetricResult,
    compare,
    guidance_metric,
    network_groups,
    split_half_examples,
)
from .curves import REALISM_BUDGET
from .figures import unique
from .markdown import fmt, label, mean_std, setup, table, with_interval
from .statistics import trend_word


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _interval(interval) -> str:
    return f"{_signed(interval.value)} [{_signed(interval.low)}, {_signed(interval.high)}]"


def metric_name(result: MatchedComparison, metric: str) -> str:
    return f"the guidance loss ({label(metric)})" if metric == result.metrics[0] else f"`{metric}` (held out)"


def _difference(res: MetricResult, level: float, top: str, other: str) -> str:
    test = res.pair(level, top, other)
    return f"`{other}` (Δ {_interval(test.difference)}, p_Holm {fmt(test.p_holm, 2)})"


def _not_ranked(result: MatchedComparison, metric: str, level: float) -> str:
    """The methods not ranked at ``level`` and why; a held-out metric's sentence names only those whose
    reason differs from the guidance loss's (said in its sentence just before)."""
    skipped = result.results[metric].unranked(level)
    prefix = " Not ranked: "
    if metric != result.metrics[0]:
        said = result.results[result.metrics[0]].unranked(level)
        skipped = {m: why for m, why in skipped.items() if said.get(m) != why}
        prefix = " Not ranked for this metric alone: "
    if not skipped:
        return ""
    return prefix + "; ".join(f"`{m}` ({why})" for m, why in sorted(skipped.items())) + "."


def _lead(res: MetricResult, level: float, lowest: list[str]) -> str:
    value = _signed(res.rows[(lowest[0], level)].value.value)
    if len(lowest) == 1:
        return f"`{lowest[0]}` has the lowest mean log ratio ({value}) but"
    return ", ".join(f"`{m}`" for m in lowest) + f" share the lowest mean log ratio ({value}); `{lowest[0]}`"


def verdict(result: MatchedComparison, metric: str, level: float) -> str:
    """The sentence for one metric at one level; only the Holm decisions choose its words."""
    res = result.results[metric]
    name = metric_name(result, metric)
    ranked = res.ranked(level)
    tail = _not_ranked(result, metric, level)
    if len(ranked) < 2:
        names = ", ".join(f"`{m}`" for m in ranked) or "none"
        return (
            f"At LPIPS {level:g}, {len(ranked)} method(s) ({names}) have a value on every curve within the realism "
            f"budget: no comparison by {name}.{tail}"
        )
    lowest, tied, separated = res.leaders(level)
    top = ranked[0]
    family = (
        f"Holm-adjusted over the {res.family} comparisons of this metric (every pair of ranked methods at every "
        f"level), 95 %; Δ = `{top}` − the other, log ratio"
    )
    if not tied:
        return (
            f"At LPIPS {level:g}, `{top}` is closer to the style by {name} than every other ranked method ({family}): "
            + ", ".join(_difference(res, level, top, m) for m in separated)
            + f".{tail}"
        )
    text = (
        f"At LPIPS {level:g}, by {name}, {_lead(res, level, lowest)} is not separated from "
        + ", ".join(_difference(res, level, top, m) for m in tied)
        + f" ({family})"
    )
    if separated:
        text += "; it is closer to the style than " + ", ".join(_difference(res, level, top, m) for m in separated)
    return text + f".{tail}"


def agreement_claims(result: MatchedComparison) -> list[str]:
    """Kendall τ-b of the ranked methods' means by the guidance loss and by each held-out metric."""
    claims = []
    for agreement in result.agreement:
        word = trend_word(
            agreement.tau,
            rises="orders them as the guidance loss does",
            falls="orders them opposite to the guidance loss",
            flat="is not shown to agree or disagree with the guidance loss's order",
        )
        claims.append(
            f"At LPIPS {agreement.level:g}, over the {len(agreement.methods)} methods ranked by both, "
            f"`{agreement.metric}` {word} (Kendall τ_b of the mean log ratios {_interval(agreement.tau)}, styles "
            "and seeds resampled)."
        )
    return claims


def examples_claim(frame) -> str:
    """Which scale shows each method "at LPIPS ≈ 0.2": chosen on one half of the seeds, shown on the
    other, both directions."""
    examples = split_half_examples(frame)
    if examples.empty:
        return ""
    parts, chosen = [], {}
    for direction, rows in examples.groupby("direction", sort=False):
        first = rows.drop_duplicates("method")
        chosen[direction] = dict(zip(first["method"], first["scale"]))
        shown = "; ".join(
            f"`{r.method}` {fmt(r.scale)} (LPIPS {fmt(r.selection_lpips, 2)} → {fmt(r.report_lpips, 2)})"
            for r in first.itertuples()
        )
        parts.append(f"seeds {direction.replace('→', ' → ')}: {shown}")
    first, second = list(chosen.values())  # a split has two halves: two directions
    same = sum(first[m] == second.get(m) for m in first)
    return (
        "Example images at LPIPS ≈ 0.2 (the scale whose mean LPIPS is nearest 0.2 on one half of the seeds, its "
        "images and LPIPS from the other half, both directions): "
        + "; ".join(parts)
        + f". The two directions choose the same scale for {same} of {len(first)} methods."
    )


def finding(result: MatchedComparison, level: float = 0.2) -> str:
    """The section's one-line finding (the README's row): the guidance loss's verdict at ``level``."""
    return verdict(result, result.metrics[0], level if level in result.levels else result.levels[0])


def _grid_table(sub, fidelity: str) -> list[str]:
    cells = [
        m
        for m in (guidance_metric(sub), fidelity, "realism", "clip_text_score", "layout_copy", "seconds_per_image")
        if m in sub
    ]
    rows = []
    for method in unique(sub["method"]):
        part = sub[sub["method"] == method]
        for scale in sorted(part["scale"].unique()):
            rows.append([f"`{method}`", f"{scale:g}"] + [mean_std(part[part["scale"] == scale][m]) for m in cells])
    return table(["method", "scale"] + [label(m) for m in cells], rows)


def _cell(res: MetricResult, method: str, level: float) -> str:
    row = res.rows.get((method, level))
    if row is None:
        return "–"
    values = "no value" if row.filled == 0 else with_interval(row.value, 3, signed=True)
    text = f"{values}; raw {fmt(row.raw)}; realism {fmt(row.realism, 2)}; {row.filled}/{row.cells}"
    return text if row.ranked else f"{text}; **not ranked**"


def _matched_tables(result: MatchedComparison) -> list[str]:
    lines = []
    for metric, res in result.results.items():
        lines += [
            f"At matched LPIPS, by {metric_name(result, metric)}: mean ln(d / d_unguided) [95 % crossed bootstrap "
            "over styles and seeds]; raw: mean interpolated distance; realism at that LPIPS; curves with a value:",
            "",
        ]
        header = ["method"] + [f"LPIPS {level:g}" for level in result.levels]
        lines += table(header, [[f"`{m}`"] + [_cell(res, m, lv) for lv in result.levels] for m in result.methods])
    return lines


def _setup_sentence(result: MatchedComparison) -> str:
    realism = (
        f"realism distance at most {REALISM_BUDGET:g} at that LPIPS (a missing value fails)"
        if result.realism_checked
        else "no realism column: the realism budget is not checked"
    )
    return (
        f"Matched-fidelity comparison: every method's curve per style and seed (LPIPS (VGG) to the unguided sample "
        f"of the same seed against the scale) is read at LPIPS {', '.join(f'{lv:g}' for lv in result.levels)} by "
        f"linear interpolation between the two points around its first crossing (no scale is chosen, every seed "
        f"reports; a step wider than {result.max_gap:g} LPIPS, a first point already above the level for a method "
        f"that re-noises, or a curve that never reaches it leaves the curve without a value, never extrapolated). "
        f"Distances are ln(d / d_unguided) per style and seed. A method is ranked at a level when every one of the "
        f"{len(result.styles)} styles × {len(result.seeds)} seeds has a value and its mean {realism}. "
        f"{result.resamples} crossed-bootstrap draws (styles and seeds resampled independently, the same draws for "
        "every method, level and metric)."
    )


def guidance_methods_section(frame, figure: Callable[[str], str]) -> list[str]:
    lines = ["### Guidance methods compared at matched fidelity", ""]
    findings = []
    for slug, network, sub in network_groups(frame):
        stem = methods_figure_stem(slug, network)
        fidelity = "lpips_vgg" if "lpips_vgg" in sub and sub["lpips_vgg"].notna().any() else "ssim"
        guided_on = "" if network == DEFAULT_NETWORK else f", guided by the style loss on `{network}`"
        lines += [
            f"Model `{slug}`{guided_on}. Every method at every scale of its grid, all seeds; mean ± std over styles "
            f"and seeds; {label(fidelity)} is to the unguided sample of the same seed:",
            "",
        ]
        lines += _grid_table(sub, fidelity)
        result = compare(sub)
        findings.append(finding(result))
        lines += [_setup_sentence(result), ""]
        lines += _matched_tables(result)
        claims = [verdict(result, metric, level) for metric in result.metrics for level in result.levels]
        claims += agreement_claims(result)
        claims.append(examples_claim(sub))
        claims.append(
            "The realism budget and the grids come from one demo model; another model needs its own "
            "(`bench/scale_range.py`, `bench/calibrate_grid.py`)."
        )
        lines += [
            f"![guidance methods]({figure(f'{stem}_grid.png')})",
            f"![guidance methods at matched fidelity]({figure(f'{stem}_matched.png')})",
            "",
        ]
        lines += ["**Claims.** " + " ".join(c for c in claims if c) + f" *Grid: {setup(sub, 'style')}.*", ""]
    return lines[:2] + [f"**Finding.** {findings[0]}", ""] + lines[2:]
