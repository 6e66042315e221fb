"""The results page's guidance-methods section: every cell of the grid (mean ± std), then the split-half
comparison of :mod:`.comparison` (settings chosen on one half of the seeds, reported on the other with
95 % bootstrap intervals over styles × seeds), paired differences against the best method, and where
the held-out style metrics agree with the guidance loss."""

from __future__ import annotations

from collections.abc import Callable

from ..workflow.experiments import DEFAULT_NETWORK, methods_figure_stem
from .comparison import UNGUIDED, Budget, Comparison, compare, guidance_metric, network_groups
from .figures import unique
from .markdown import fmt, label, mean_std, setup, table, with_interval
from .statistics import trend_word


def _metric_name(result: Comparison, metric: str) -> str:
    return "the guidance loss (" + label(metric) + ")" if metric == result.metrics[0] else f"`{metric}`"


def _paired_claim(result: Comparison, metric: str) -> str:
    best = result.best[metric]
    rows = result.rows
    supported, unsupported = [], []
    for method, row in rows.items():
        if method in (best, UNGUIDED) or metric not in row.difference:
            continue
        diff = row.difference[metric]
        word = trend_word(diff, rises="higher", falls="lower", flat="")
        if word:
            supported.append(f"`{method}` {word} ({with_interval(diff, 2, signed=True)})")
        else:
            unsupported.append(f"`{method}` ({with_interval(diff, 2, signed=True)})")
    text = (
        f"By {_metric_name(result, metric)}, the method chosen best on the selection seeds is `{best}` "
        f"({with_interval(rows[best].metrics[metric])} on the report seeds). Paired over the same styles and "
        "report seeds, the intervals support a difference from it for "
        + (", ".join(supported) if supported else "no method")
    )
    if unsupported:
        text += "; they do not for " + ", ".join(unsupported)
    return text + "."


def _agreement_claims(result: Comparison) -> list[str]:
    claims = []
    for metric, (tau, cells, opposite) in result.agreement.items():
        swaps = result.swaps[metric]
        text = (
            f"Kendall τ between the guidance loss and `{metric}` over {cells} method × scale cells: {fmt(tau, 2)} "
            f"({opposite} of {cells * (cells - 1) // 2} cell pairs ordered oppositely). "
        )
        if swaps:
            text += (
                f"At the chosen settings the ranking changes with `{metric}` for {len(swaps)} pair(s): "
                + "; ".join(f"`{a}` ahead of `{b}` by the guidance loss, behind by `{metric}`" for a, b in swaps)
                + "."
            )
        else:
            text += f"At the chosen settings `{metric}` ranks the methods as the guidance loss does."
        claims.append(text)
    return claims


def guidance_methods_section(frame, figure: Callable[[str], str]) -> list[str]:
    lines = ["### Guidance methods compared on one task", ""]
    for slug, network, sub in network_groups(frame):
        stem = methods_figure_stem(slug, network)
        fidelity = "lpips_vgg" if "lpips_vgg" in sub and sub["lpips_vgg"].notna().any() else "ssim"
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
        guided_on = "" if network == DEFAULT_NETWORK else f", guided by the style loss on `{network}`"
        lines += [
            f"Model `{slug}`{guided_on}. Every method at scales across its scale range, all seeds; mean ± std over styles "
            f"and seeds; {label(fidelity)} is to the unguided sample of the same seed:",
            "",
        ]
        lines += table(["method", "scale"] + [label(m) for m in cells], rows)
        result = compare(sub, Budget())
        split = result.split
        header = ["method", "chosen scale", "within budget"] + [label(m) for m in result.metrics]
        header += ["LPIPS (VGG)"] if "lpips_vgg" in sub else []
        header += [f"Δ {label(m)} vs best" for m in result.metrics]
        rows = []
        for method, row in result.rows.items():
            rows.append(
                [f"`{method}`", f"{row.choice.scale:g}", "yes" if row.choice.within_budget else "**no**"]
                + [with_interval(row.metrics[m]) for m in result.metrics]
                + ([with_interval(row.fidelity)] if "lpips_vgg" in sub else [])
                + [
                    with_interval(row.difference.get(m), 2, signed=True)
                    if m in row.difference
                    else "best"
                    if result.best.get(m) == method
                    else "–"
                    for m in result.metrics
                ]
            )
        lines += [
            f"Split-half comparison: each method's scale chosen on seeds {', '.join(map(str, split.selection))} "
            f"(lowest guidance loss with {result.budget.describe(sub)}), reported on seeds "
            f"{', '.join(map(str, split.report))} only; mean [95 % bootstrap interval over "
            f"{len(result.styles)} styles × {len(split.report)} seeds, styles and seeds resampled]; Δ is "
            "the paired difference from the best method (same styles and seeds):",
            "",
        ]
        lines += table(header, rows)
        claims = [_paired_claim(result, metric) for metric in result.metrics if metric in result.best]
        claims += _agreement_claims(result)
        over = [m for m, row in result.rows.items() if not row.choice.within_budget]
        if over:
            claims.append(
                "No scale of " + ", ".join(f"`{m}`" for m in over) + " met the budget on the selection "
                "seeds (its least-changing scale is reported)."
            )
        claims.append(
            "The budget and the scales come from one demo model; another model needs its own (`bench/scale_range.py`)."
        )
        lines += [
            f"![guidance methods]({figure(f'{stem}_grid.png')})",
            f"![guidance methods at matched fidelity]({figure(f'{stem}_matched.png')})",
            "",
        ]
        lines += ["**Claims.** " + " ".join(claims) + f" *Grid: {setup(sub, 'style')}.*", ""]
    return lines
