"""stylediff.reporting.statistics and the matched-fidelity comparison (stylediff.reporting.comparison) on
synthetic tables: the interval decides the word, the bootstrap is seeded, crossed and paired, Holm
decides "separated", a curve without a value at a level is never extrapolated, and a method without a
value on every curve, or over the realism budget, is never ranked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stylediff.core.errors import ConfigError
from stylediff.reporting.comparison import (
    SplitHalf,
    compare,
    split_half_examples,
    split_seeds,
    style_metrics,
    sweep,
)
from stylediff.reporting.curves import crossings, read_curve
from stylediff.reporting.statistics import (
    CrossedDraws,
    Interval,
    bootstrap_p,
    holm,
    kendall,
    mean_interval,
    paired_difference,
    spearman,
    spearman_interval,
    trend_word,
)

from .conftest import methods_table

FAST = 2000
"""Resamples in these tests: enough for families of a few dozen tests (smallest p 1e-3)."""


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
    (zero width), although each method's own interval is wide; the shared draws do the same."""
    base = np.random.default_rng(2).normal(1.0, 0.5, (5, 4))
    own = mean_interval(base)
    assert own.high - own.low > 0.2 and own.low < base.mean() < own.high
    diff = paired_difference(base + 0.1, base)
    assert diff.value == pytest.approx(0.1) and diff.low == pytest.approx(0.1) and diff.high == pytest.approx(0.1)
    draws = CrossedDraws.draw(range(5), range(4), FAST)
    assert np.allclose(draws.means(base + 0.1) - draws.means(base), 0.1)
    assert draws.interval(base) == CrossedDraws.draw(range(5), range(4), FAST).interval(base)  # seeded


def test_crossed_draws_resample_styles_and_seeds_and_leave_out_missing_cells():
    matrix = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    draws = CrossedDraws.draw(["a", "b", "c"], [0, 1], 500)
    means = draws.means(matrix)
    # a draw is the count-weighted mean of the cells it picks, NaN when it picks only the empty one
    for k in range(100):
        rows, cols = draws.style_weights[k].astype(int), draws.seed_weights[k].astype(int)
        picked = np.repeat(np.repeat(matrix, rows, 0), cols, 1)
        expected = np.nanmean(picked) if np.isfinite(picked).any() else np.nan
        assert means[k] == pytest.approx(expected, nan_ok=True)
    only_row = np.full((3, 2), np.nan)
    only_row[0] = 1.0  # a draw without style a has no value
    assert np.isnan(draws.means(only_row)[draws.style_weights[:, 0] == 0]).all()


def test_bootstrap_p_and_holm():
    assert bootstrap_p(np.ones(999)) == pytest.approx(2 / 1000)  # never 0
    assert bootstrap_p(np.r_[-np.ones(500), np.ones(500)]) == 1.0
    decisions = holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005 (×4 = 0.02, rejected at 0.0125), 0.01 (×3 = 0.03, rejected at 0.0167), 0.03 (×2 = 0.06, stops)
    assert [d.rejected for d in decisions] == [True, False, False, True]
    assert [d.adjusted for d in decisions] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [d.level for d in decisions] == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2, 1 - 0.05 / 4])
    unadjusted = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert sum(p < 0.05 for p in [0.01, 0.04, 0.03, 0.005]) == 4 > sum(d.rejected for d in unadjusted)


def test_holm_interval_excludes_zero_exactly_when_rejected():
    """Over a family of paired differences of mixed sizes, the interval at the Holm step's level excludes 0
    for the rejected ones and contains it for the others."""
    from stylediff.reporting.statistics import percentile_interval

    rng = np.random.default_rng(3)
    draws = CrossedDraws.draw(range(6), range(6), 4000)
    samples = [draws.means(rng.normal(effect, 0.3, (6, 6))) for effect in (0.0, 0.05, 0.1, 0.15, 0.3, 0.5, -0.2)]
    decisions = holm([bootstrap_p(s) for s in samples])
    assert 0 < sum(d.rejected for d in decisions) < len(decisions)
    for s, d in zip(samples, decisions):
        low, high = percentile_interval(s, d.level)
        assert (low > 0 or high < 0) == d.rejected


@pytest.mark.parametrize(
    "fidelity, status, value",
    [
        ([0.05, 0.15, 0.4], "interpolated", 1.5),  # between the 1st and 2nd point
        ([0.1, 0.15, 0.4], "exact", 1.0),
        ([0.02, 0.05, 0.08], "not_reached", None),  # never extrapolated beyond the last point
        ([0.05, 0.45, 0.6], "gap", None),  # 0.05 -> 0.45: too wide to interpolate
        ([0.05, float("nan"), 0.4], "nan_fidelity", None),
    ],
)
def test_a_curve_is_read_at_its_first_crossing_never_extrapolated(fidelity, status, value):
    reading = read_curve([1, 2, 3], fidelity, {"y": [1.0, 2.0, 3.0]}, 0.1, anchor={"y": 0.0})
    assert reading.status == status
    assert (reading.values or {}).get("y") == (pytest.approx(value) if value is not None else None)


def test_the_anchor_and_the_floor():
    """A method that reaches the unguided sample at scale 0 is read between LPIPS 0 and its first point; one
    that re-noises has no anchor: a first point above the level is its floor."""
    assert read_curve([1, 2], [0.15, 0.3], {"y": [-1.0, -2.0]}, 0.1, anchor={"y": 0.0}).values == {
        "y": pytest.approx(-2 / 3)
    }
    assert read_curve([1, 2], [0.15, 0.3], {"y": [-1.0, -2.0]}, 0.1).status == "floor"
    # first crossing along the scale order (the curve dips back below 0.2 later): read at the first one,
    # whatever order the points come in, and the crossings are counted
    reading = read_curve([3, 1, 2, 4], [0.15, 0.1, 0.25, 0.3], {"y": [3.0, 1.0, 2.0, 4.0]}, 0.2, {"y": 0.0})
    assert reading.values == {"y": pytest.approx(1 + 2 / 3)}  # between scales 1 (0.1) and 2 (0.25)
    assert crossings([1, 2, 3, 4], [0.1, 0.25, 0.15, 0.3], 0.2) == 3


@pytest.mark.parametrize("gaps, top", [({"a": 1.0, "b": 0.0}, "a"), ({"a": 0.0, "b": 1.0}, "b")])
def test_the_method_closer_to_the_style_leads_and_is_separated(gaps, top):
    result = compare(methods_table(gaps), resamples=FAST)
    assert style_metrics(methods_table(gaps)) == ["gram_dist_mean", "heldout_vgg16_gram"]
    for level in result.levels:
        res = result.results["gram_dist_mean"]
        assert res.ranked(level)[0] == top
        lowest, tied, separated = res.leaders(level)
        assert lowest == [top] and not tied and separated == [m for m in gaps if m != top]
        assert res.pair(level, top, separated[0]).difference.high < 0


def test_equal_methods_are_not_separated():
    table = methods_table({"a": 0.5, "b": 0.5}, noise=0.05)
    result = compare(table, resamples=FAST)
    for level in result.levels:
        lowest, tied, separated = result.results["gram_dist_mean"].leaders(level)
        assert tied and not separated
    same = table.copy()
    same.loc[same["method"] == "b", "gram_dist_mean"] = same.loc[same["method"] == "a", "gram_dist_mean"].to_numpy()
    lowest, tied, _ = compare(same, resamples=FAST).results["gram_dist_mean"].leaders(0.2)
    assert lowest == ["a", "b"] and tied == ["b"]  # identical: a shared lowest mean, never "best"


def test_log_ratios_keep_the_high_loss_styles_from_deciding():
    """b is closer on the paintings by a lot, a closer on the textures by a little: by raw distances (the
    textures' ten times larger numbers) a would lead; by the per-style log ratio b does."""
    table = methods_table({"a": 0.3, "b": 0.3}, noise=0.0)
    paintings = table["style"].isin(["s0", "s1", "s2"])
    table.loc[paintings & (table["method"] == "b"), "gram_dist_mean"] *= 0.7
    table.loc[~paintings & (table["method"] == "a"), "gram_dist_mean"] *= 0.95
    result = compare(table, resamples=FAST)
    assert result.results["gram_dist_mean"].ranked(0.2)[0] == "b"
    raw = {m: result.results["gram_dist_mean"].rows[(m, 0.2)].raw for m in "ab"}
    assert raw["a"] < raw["b"]  # the raw numbers, kept for the tables, say the opposite


def test_a_missing_fidelity_is_never_within_budget():
    """One NaN LPIPS on a's best curve: a is not ranked at any level and enters no comparison."""
    table = methods_table({"a": 1.0, "b": 0.0, "c": 0.2})
    table.loc[
        (table["method"] == "a") & (table["style"] == "s0") & (table["seed"] == 0) & (table["scale"] == 3), "lpips_vgg"
    ] = np.nan
    result = compare(table, resamples=FAST)
    res = result.results["gram_dist_mean"]
    for level in result.levels:
        assert "a" not in res.ranked(level) and "nan_fidelity 1" in res.unranked(level)["a"]
        assert not [p for p in res.pairs if "a" in (p.a, p.b)]
    assert all("a" not in agreement.methods for agreement in result.agreement)


def test_curves_that_stop_short_or_start_too_high_are_not_ranked():
    table = methods_table({"a": 1.0, "b": 0.0, "c": 0.2})
    short = (table["method"] == "a") & (table["scale"] >= 4)
    table = table[~short]  # a's curves end at LPIPS 0.21: no value at 0.3
    table.loc[(table["method"] == "c") & (table["scale"] == 1) & (table["style"] == "s1"), "lpips_vgg"] = 0.35
    result = compare(table, resamples=FAST)
    res = result.results["gram_dist_mean"]
    assert "a" in res.ranked(0.2) and "a" not in res.ranked(0.3) and "not_reached 36" in res.unranked(0.3)["a"]
    assert "gap" in res.unranked(0.1)["c"]  # LPIPS 0 -> 0.35 at its first point: too wide a step


def test_renoising_methods_have_no_anchor():
    """freedom's first point at LPIPS 0.14 is its floor: no value at 0.1 (the same curve of a deterministic
    method is read from the anchor)."""
    table = methods_table({"x0": 0.0, "freedom": 0.0, "dps": 0.0})
    table = table[~((table["method"] != "unguided") & (table["scale"] == 1))]  # first points at 0.14
    res = compare(table, resamples=FAST).results["gram_dist_mean"]
    assert "floor 36" in res.unranked(0.1)["freedom"] and "x0" in res.ranked(0.1)
    assert "freedom" in res.ranked(0.2)


@pytest.mark.parametrize("realism", [0.5, np.nan])
def test_realism_over_the_budget_or_missing_is_not_ranked(realism):
    table = methods_table({"a": 1.0, "b": 0.0, "c": 0.5})
    table.loc[table["method"] == "a", "realism"] = realism
    res = compare(table, resamples=FAST).results["gram_dist_mean"]
    assert "a" not in res.ranked(0.2) and "realism" in res.unranked(0.2)["a"]
    assert res.ranked(0.2) == ["c", "b"]


def test_holm_can_take_back_what_a_single_test_would_claim():
    """A small difference that one unadjusted 95 % interval would separate is not separated within its
    family (every pair at every level), and the sentence's interval, at the Holm level, spans 0."""
    table = methods_table({"a": 0.1, "b": 0.0, "c": 1.0, "d": 1.0, "e": 2.0}, noise=0.05, rng=4)
    result = compare(table, resamples=FAST)
    res = result.results["gram_dist_mean"]
    assert res.family == 3 * 10
    single = [p for p in res.pairs if p.p < 0.05 and not p.separated]
    assert single, [(p.a, p.b, p.p) for p in res.pairs]
    for test in single:
        assert test.difference.low <= 0 <= test.difference.high and test.interval_level > 0.95


def test_kendall_tau_with_its_interval_follows_the_held_out_order():
    gaps = {"a": 0.0, "b": 0.5, "c": 1.0, "d": 1.5}
    same = compare(methods_table(gaps), resamples=FAST).agreement
    assert same and all(a.tau.low > 0 for a in same)
    reversed_ = compare(methods_table(gaps, held_out={"a": 1.5, "b": 1.0, "c": 0.5, "d": 0.0}), resamples=FAST)
    assert all(a.tau.high < 0 for a in reversed_.agreement)
    flat = compare(methods_table(gaps, held_out=dict.fromkeys(gaps, 0.5), noise=0.05), resamples=FAST)
    assert all(a.tau.low <= 0 <= a.tau.high for a in flat.agreement)


def test_the_verdict_holds_whichever_half_of_the_seeds_reports():
    table = methods_table({"a": 1.0, "b": 0.0, "c": 0.5}, noise=0.05, rng=5)
    split = split_seeds(table["seed"])
    for half in (split.selection, split.report):
        res = compare(table[table["seed"].isin(half)], resamples=FAST).results["gram_dist_mean"]
        assert res.ranked(0.2)[0] == "a"


def test_sweep_is_a_tidy_frame_for_the_figure():
    table = methods_table({"a": 1.0, "b": 0.0})
    frame = sweep(table, levels=(0.05, 0.2, 0.34, 0.4), resamples=FAST)
    assert list(frame.columns) == ["method", "metric", "level", "mean", "lo", "hi", "coverage", "ranked"]
    assert len(frame) == 2 * 2 * 4
    row = frame[(frame["method"] == "a") & (frame["metric"] == "gram_dist_mean") & (frame["level"] == 0.2)].iloc[0]
    assert row["ranked"] and row["coverage"] == 1 and row["lo"] <= row["mean"] <= row["hi"] < 0
    beyond = frame[frame["level"] == 0.4]  # the curves end at 0.35
    assert not beyond["ranked"].any() and (beyond["coverage"] == 0).all() and beyond["mean"].isna().all()


def test_split_half_examples_choose_on_one_half_and_show_the_other_both_ways():
    table = methods_table({"a": 0.0})
    table.loc[table["seed"] % 2 == 1, "lpips_vgg"] *= 2  # the odd seeds move twice as far at every scale
    examples = split_half_examples(table, target=0.2)
    assert set(examples["direction"]) == {"0,2,4→1,3,5", "1,3,5→0,2,4"}
    even = examples[examples["direction"] == "0,2,4→1,3,5"]
    odd = examples[examples["direction"] == "1,3,5→0,2,4"]
    assert set(even["seed"]) == {1, 3, 5} and set(odd["seed"]) == {0, 2, 4}  # shown from the other half
    assert even["scale"].iloc[0] == 3.0 and odd["scale"].iloc[0] == 1.0  # 0.21 and 0.14 nearest 0.2
    assert even["report_lpips"].iloc[0] == pytest.approx(0.42)
    with pytest.raises(ConfigError):
        SplitHalf((0, 1), (1, 2))
    with pytest.raises(ConfigError):
        split_seeds([5])


def test_runs_guided_on_another_network_are_compared_apart_by_the_loss_they_recorded():
    """A CLIP-guided run's guidance loss is the loss it recorded (final_loss); VGG-19 Gram is held out for it."""
    import pandas as pd

    from stylediff.reporting.comparison import guidance_metric, network_groups

    vgg, clip = methods_table({"a": 1.0, "b": 0.0}), methods_table({"a": 0.0, "b": 1.0})
    vgg["network"], clip["network"] = "vgg19", "clip-vit-b16"
    clip["final_loss"], clip["gram_dist_mean"] = clip["gram_dist_mean"], 1.0
    frame = pd.concat([vgg, clip], ignore_index=True)
    groups = {network: sub for _, network, sub in network_groups(frame)}
    assert list(groups) == ["vgg19", "clip-vit-b16"] and len(groups["clip-vit-b16"]) == len(clip)
    assert guidance_metric(groups["vgg19"]) == "gram_dist_mean"
    assert style_metrics(groups["clip-vit-b16"]) == ["final_loss", "heldout_vgg16_gram", "gram_dist_mean"]
    assert compare(groups["clip-vit-b16"], resamples=FAST).results["final_loss"].ranked(0.2)[0] == "b"
    with pytest.raises(ConfigError, match="several networks"):
        compare(frame)
