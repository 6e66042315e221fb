"""stylediff.reporting.statistics and the split-half comparison (stylediff.reporting.comparison) on synthetic
tables: the interval decides the word, the bootstrap is seeded and paired, and no reported number comes
from a seed that chose the setting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from stylediff.core.errors import ConfigError
from stylediff.reporting.comparison import Budget, SplitHalf, compare, select_settings, split_seeds, style_metrics
from stylediff.reporting.statistics import (
    Interval,
    kendall,
    mean_interval,
    paired_difference,
    spearman,
    spearman_interval,
    trend_word,
)


def test_the_interval_chooses_the_word():
    assert trend_word(Interval(-0.9, -0.95, -0.8)) == "falls"
    assert trend_word(Interval(0.9, 0.8, 0.95)) == "rises"
    assert trend_word(Interval(-0.4, -0.9, 0.2)) == "shows no clear trend"
    assert trend_word(Interval(math.nan, math.nan, math.nan)) == "shows no clear trend"


def test_rank_statistics_and_their_intervals():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert math.isnan(kendall([1, 1, 1], [1, 2, 3]))
    x = np.tile(np.arange(5), 6)
    y = -x + np.random.default_rng(0).normal(0, 0.3, x.size)
    groups = np.repeat(np.arange(6), 5)
    first = spearman_interval(x, y, groups=groups)
    assert first == spearman_interval(x, y, groups=groups)  # seeded
    assert first.low < first.high < 0  # (a percentile interval need not contain the estimate)
    noise = spearman_interval(x, np.random.default_rng(1).normal(size=x.size), groups=groups)
    assert noise.low < 0 < noise.high


def test_crossed_bootstrap_is_paired():
    """Two methods that differ by a constant on every style × seed: the paired interval is that constant
    (zero width), although each method's own interval is wide."""
    base = np.random.default_rng(2).normal(1.0, 0.5, (5, 4))
    own = mean_interval(base)
    assert own.high - own.low > 0.2 and own.low < base.mean() < own.high
    diff = paired_difference(base + 0.1, base)
    assert diff.value == pytest.approx(0.1) and diff.low == pytest.approx(0.1) and diff.high == pytest.approx(0.1)


def table(selection_best: str) -> pd.DataFrame:
    """Methods a, b at scales 1 and 2 on 5 styles × 4 seeds. On the selection seeds (0, 2) scale 1 of
    ``selection_best`` is lowest; on the report seeds (1, 3) every value is marked by its seed so a
    reported mean can be traced to the seeds it came from."""
    rows = []
    for style, seed, method, scale in itertools.product(range(5), range(4), ["a", "b"], [1.0, 2.0]):
        if seed % 2 == 0:  # selection seeds
            gram = 0.1 if (method == selection_best and scale == 1.0) else 0.5
        else:
            gram = 10.0 * seed + scale + (method == "b")
        rows.append(
            {
                "style": f"s{style}",
                "seed": seed,
                "method": method,
                "scale": scale,
                "gram_dist_mean": gram,
                "lpips_vgg": 0.1 * scale,
                "heldout_vgg16_gram": -gram,
            }
        )
    return pd.DataFrame(rows)


def test_split_half_never_reports_a_selection_seed():
    frame = table("a")
    split = split_seeds(frame["seed"])
    assert split == SplitHalf((0, 2), (1, 3))
    with pytest.raises(ConfigError):
        SplitHalf((0, 1), (1, 2))
    with pytest.raises(ConfigError):
        split_seeds([5])
    result = compare(frame)
    for method, row in result.rows.items():
        assert set(row.seeds) == {1, 3} and not set(row.seeds) & set(split.selection)
        report = frame[(frame["method"] == method) & (frame["scale"] == row.choice.scale) & frame["seed"].isin([1, 3])]
        assert row.metrics["gram_dist_mean"].value == pytest.approx(report["gram_dist_mean"].mean())
    assert result.rows["a"].choice.scale == 1.0 and result.best["gram_dist_mean"] == "a"  # chosen on seeds 0, 2
    # changing only the selection seeds' values changes the choice, never a reported number of a setting
    flipped = compare(table("b"))
    assert flipped.best["gram_dist_mean"] == "b"
    assert flipped.rows["a"].metrics["gram_dist_mean"] == result.rows["a"].metrics["gram_dist_mean"]


def test_budget_limits_the_choice_and_heldout_metrics_plug_in_by_name():
    frame = table("a")
    assert style_metrics(frame) == ["gram_dist_mean", "heldout_vgg16_gram"]
    split = split_seeds(frame["seed"])
    assert select_settings(frame, split, Budget(lpips=0.15, realism=None))["b"].scale == 1.0
    frame.loc[frame["scale"] == 1.0, "lpips_vgg"] = 0.9  # scale 1 now over the budget
    choices = select_settings(frame, split, Budget(lpips=0.3, realism=None))
    assert choices["a"].scale == 2.0 and choices["a"].within_budget
    result = compare(table("a"))
    tau, cells, opposite = result.agreement["heldout_vgg16_gram"]
    assert cells == 4 and tau == pytest.approx(-1.0)  # the held-out metric reverses every order
    assert opposite == 5  # of 6 pairs: (a, 2) and (b, 1) tie (the same values on every seed)
    assert result.swaps["heldout_vgg16_gram"] == [("a", "b")]


def test_the_findings_preset_plans_a_split_half_comparison():
    """The findings preset's guidance-methods grid: ≥ 5 styles × ≥ 4 seeds, two disjoint halves of ≥ 2
    seeds each (every run is sampled for both), and every method's scales span its scale_range."""
    from stylediff.diffusion import METHODS
    from stylediff.workflow import plan
    from stylediff.workflow.spec import method_entries

    from .conftest import preset_config

    config = preset_config("findings")
    section = config["guidance_methods"]
    assert len(section["styles"]) >= 5 and len(section["seeds"]) >= 4
    split = split_seeds(section["seeds"])
    assert len(split.selection) >= 2 and len(split.report) >= 2
    assert set(split.selection) | set(split.report) == set(section["seeds"])
    runs = plan.build(config).runs
    runs = runs[runs["experiment"] == "guidance_methods"]
    seeds = runs.groupby(["style", "method", "scale"])["seed"].apply(lambda s: tuple(sorted(s)))
    assert set(seeds) == {tuple(sorted(section["seeds"]))}  # every setting is sampled on both halves
    for name, entry in method_entries(section).items():
        low, high = METHODS[name].scale_range
        assert min(entry["scales"]) <= low and max(entry["scales"]) >= high, name


def test_a_method_over_the_budget_is_never_the_best():
    """b reaches the lowest distance only at a scale over the LPIPS budget: a, within it, is the best
    the others are compared with, and b's row says it missed the budget."""
    frame = table("a")
    frame.loc[frame["method"] == "b", "lpips_vgg"] = 0.9
    frame.loc[frame["method"] == "b", "gram_dist_mean"] -= 5
    result = compare(frame, Budget(lpips=0.3, realism=None))
    assert not result.rows["b"].choice.within_budget and result.rows["a"].choice.within_budget
    assert result.best["gram_dist_mean"] == "a"


def test_runs_guided_on_another_network_are_compared_apart_by_the_loss_they_recorded():
    """A CLIP-guided run's guidance loss is the loss it recorded (final_loss); VGG-19 Gram is held out for it."""
    from stylediff.reporting.comparison import guidance_metric, network_groups

    vgg, clip = table("a"), table("b")
    vgg["network"], clip["network"] = "vgg19", "clip-vit-b16"
    clip["final_loss"], clip["gram_dist_mean"] = clip["gram_dist_mean"], 1.0  # chosen by its own loss only
    frame = pd.concat([vgg, clip], ignore_index=True)
    frame["model_slug"] = "m"
    groups = {network: sub for _, network, sub in network_groups(frame)}
    assert list(groups) == ["vgg19", "clip-vit-b16"] and len(groups["clip-vit-b16"]) == len(clip)
    assert guidance_metric(groups["vgg19"]) == "gram_dist_mean"
    assert style_metrics(groups["clip-vit-b16"]) == ["final_loss", "heldout_vgg16_gram", "gram_dist_mean"]
    assert compare(groups["clip-vit-b16"]).best["final_loss"] == "b"
    assert compare(groups["vgg19"]).best["gram_dist_mean"] == "a"
    with pytest.raises(ConfigError, match="several networks"):
        compare(frame.drop(columns="model_slug"))
