"""Claims the data chooses: every sentence of the results page is fed data where it would be false (a
reversed trend, equal methods, a NaN fidelity, a straddling interval, the halves of the seeds swapped)
and the test checks that the sentence changes with it; nothing on the page states a direction, a rank
or a separation the data does not have."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from stylediff.reporting.findings import findings_markdown
from stylediff.reporting.markdown import FINDING

from .conftest import methods_table

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def trend(direction: int, position: float, jitter: float) -> float:
    """A value that rises (+1), falls (−1) or stays level (0) with ``position``, with small noise."""
    return direction * position + jitter


def write(tmp_path, name, rows):
    path = tmp_path / f"{name}.csv"
    (rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)).to_csv(path, index=False)
    return path


def claims(text: str, heading: str) -> str:
    """The **Claims.** paragraph of the section under ``heading``."""
    section = text.split(f"### {heading}")[1].split("\n### ")[0]
    return next(line for line in section.splitlines() if line.startswith("**Claims.**"))


# ------------------------------------------------------------------------------------------- inversion
def inversion(tmp_path, direction, avg_shift=None, noise=0.0, name="inv"):
    """PSNR against depth for 3 images × 2 seeds; with ``avg_shift`` also average pooling, its PSNR shifted
    by that many dB (with ``noise`` per image and seed: the shift is then not exact)."""
    rows, rng = [], np.random.default_rng(7)
    for pooling in ["max"] + (["avg"] if avg_shift is not None else []):
        for image, layer, seed in itertools.product(["a", "b", "c"], LAYERS, [0, 1]):
            d = LAYERS.index(layer)
            jitter = 0.01 * seed + noise * float(rng.normal())
            shift = avg_shift if pooling == "avg" else 0.0
            rows.append(
                {
                    "image": image,
                    "layer": layer,
                    "pooling": pooling,
                    "seed": seed,
                    "psnr": 30 - trend(direction, 4 * d, jitter) + (shift or 0.0),
                    "lpips_vgg": 0.5 + trend(direction, 0.1 * d, 0.01 * jitter),
                }
            )
    return write(tmp_path, f"{name}{direction}{avg_shift}", rows)


@pytest.mark.parametrize(
    "direction,psnr,lpips",
    [(1, "falls", "rises"), (-1, "rises", "falls"), (0, "shows no clear trend", "shows no clear trend")],
)
def test_inversion_sentence_follows_the_data(tmp_path, direction, psnr, lpips):
    text = findings_markdown({"inversion": inversion(tmp_path, direction)})
    assert f"PSNR {psnr} (ρ = " in text and f"LPIPS {lpips} (ρ = " in text
    assert "worse" not in text and "deeper the layer" not in text


def test_a_trend_whose_interval_spans_zero_is_no_clear_trend(tmp_path):
    """Depth explains part of PSNR for some images and the reverse for another: ρ is away from 0 but its
    interval (images resampled) straddles it, and the sentence says no clear trend."""
    rows = []
    for image, layer, seed in itertools.product(["a", "b", "c", "d"], LAYERS, [0, 1]):
        d = LAYERS.index(layer)
        slope = -1.0 if image != "d" else 3.0
        rows.append({"image": image, "layer": layer, "pooling": "max", "seed": seed, "psnr": 30 + slope * d})
    text = findings_markdown({"inversion": write(tmp_path, "straddle", rows)})
    rho = re.search(r"PSNR (.+?) \(ρ = (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", text)
    assert abs(float(rho.group(2))) > 0.1 and float(rho.group(3)) < 0 < float(rho.group(4))
    assert rho.group(1) == "shows no clear trend"


def test_runs_without_a_psnr_are_counted_not_ranked(tmp_path):
    frame = pd.read_csv(inversion(tmp_path, 1))
    frame.loc[:2, "psnr"] = np.nan
    text = findings_markdown({"inversion": write(tmp_path, "nan", frame)})
    assert "with depth over 27 runs (3 without a PSNR left out)" in text


@pytest.mark.parametrize(
    "shift,noise,word", [(1.0, 0.05, "raises"), (-1.0, 0.05, "lowers"), (0.0, 0.5, "does not change detectably")]
)
def test_the_pooling_sentence_follows_the_paired_difference(tmp_path, shift, noise, word):
    text = findings_markdown({"inversion": inversion(tmp_path, 1, avg_shift=shift, noise=noise)})
    assert (
        f"avg instead of max pooling {word} the PSNR (mean difference over layers, paired over 3 images × 2 seeds"
        in text
    )
    assert "changes the mean PSNR by" not in text


def test_the_pooling_sentence_names_each_poolings_own_trend(tmp_path):
    frame = pd.read_csv(inversion(tmp_path, 1, avg_shift=0.0))
    avg = frame["pooling"] == "avg"
    frame.loc[avg, "psnr"] = 30 + 4 * frame.loc[avg, "layer"].map(LAYERS.index)  # avg: PSNR rises with depth
    text = findings_markdown({"inversion": write(tmp_path, "pool", frame)})
    assert "PSNR falls with depth with max pooling and rises with avg pooling" in text


# --------------------------------------------------------------------------------------------- texture
def texture(tmp_path, direction, shallow=0, opposite=None, copies=0, losses_gap=None, name="tex"):
    """Gram distances of nested layer sets: the deepest layer's falls (direction 1) or rises (−1) as the set
    deepens; relu1_1's moves by ``shallow``; the layer ``opposite`` moves against relu5_1; the first
    ``copies`` styles copy the layout at the deepest set. ``losses_gap``: mean_std's metrics minus gram's."""
    rows = []
    sets = ["-".join(LAYERS[: k + 1]) for k in range(5)]
    rng = np.random.default_rng(11)
    for style, layers, loss, seed in itertools.product(["s1", "s2", "s3"], sets, ["gram", "mean_std"], [0, 1]):
        k = layers.count("-")
        jitter = 0.001 * seed
        row = {"style": style, "layers": layers, "loss": loss, "seed": seed}
        for layer in LAYERS:
            step = {"relu1_1": shallow, opposite: -direction}.get(layer, direction)
            row[f"gram_dist_{layer}"] = 0.5 - trend(step, 0.05 * k, jitter)
        gap = (-0.1 if direction >= 0 else 0.1) if losses_gap is None else losses_gap
        for metric in ("gram_mean", "mean_std_mean"):
            row[metric] = 0.3 + (gap if loss == "mean_std" else 0.0) + 0.01 * float(rng.normal())
        row["layout_copy"] = 0.9 if (k == 4 and int(style[1:]) <= copies) else 0.1
        rows.append(row)
    return write(tmp_path, f"{name}{direction}{shallow}{opposite}{copies}{losses_gap}", rows)


@pytest.mark.parametrize("direction,word,counts", [(1, "falls", (3, 0)), (-1, "rises", (0, 3))])
def test_texture_sentence_follows_the_data(tmp_path, direction, word, counts):
    text = findings_markdown({"texture": texture(tmp_path, direction)})
    assert f"The Gram distance at relu5_1 {word} as the set deepens" in text
    assert f"lower for {counts[0]} and higher for {counts[1]} of 3 styles" in text
    assert "capture more of the style" not in text and "stays between" not in text


@pytest.mark.parametrize("shallow,word", [(0, "shows no clear trend"), (1, "falls"), (-1, "rises")])
def test_the_shallow_layer_gets_its_own_word(tmp_path, shallow, word):
    """Formerly "stays between MIN and MAX for every set" (true of any data): now its own ρ and word."""
    text = findings_markdown({"texture": texture(tmp_path, 1, shallow=shallow)})
    assert f"while the distance at relu1_1 {word} (ρ = " in text


def test_a_layer_moving_against_the_deepest_is_named_so(tmp_path):
    text = findings_markdown({"texture": texture(tmp_path, 1, opposite="relu3_1")})
    assert re.search(r"relu3_1 [\d.]+ \[[\d.]+, [\d.]+\] \(rises\)", text)
    assert re.search(r"relu2_1 -[\d.]+ \[-[\d.]+, -[\d.]+\] \(falls\)", text)


def test_copies_are_counted_and_left_out_of_the_trend(tmp_path):
    none = findings_markdown({"texture": texture(tmp_path, 1)})
    two = findings_markdown({"texture": texture(tmp_path, 1, copies=2)})
    assert "Copies of the style's layout: 0 of 6 (0 %) runs for" in none
    assert "Copies of the style's layout: 4 of 6 (67 %) runs for" in two
    assert "among the 26 of 30 runs that are not copies" in two


# ---------------------------------------------------------------------------------------------- losses
@pytest.mark.parametrize(
    "gap,sentence",
    [
        (-0.1, "By gram, `mean_std` is lower than every other loss: `gram`"),
        (0.1, "By gram, `gram` is lower than every other loss: `mean_std`"),
        (0.0, "is not separated from"),
        (1e-6, "is not separated from"),  # a margin that a point mean would call "best"
    ],
)
def test_the_losses_sentence_follows_the_paired_difference(tmp_path, gap, sentence):
    text = findings_markdown({"texture": texture(tmp_path, 1, losses_gap=gap)})
    paragraph = claims(text, "Style losses compared")
    assert sentence in paragraph and "Holm-adjusted over the 2 comparisons" in paragraph
    assert " is best" not in paragraph
    table = [line for line in text.split("### Style losses compared")[1].splitlines() if line.startswith("|")]
    assert any("**" in line for line in table) == (gap in (-0.1, 0.1))  # bold only for a separated lowest loss
    own = "1 of 2" if gap else "0 of 2"  # the separated lowest loss is lowest on its own metric too
    own = "0 of 2" if gap == 1e-6 else own
    assert f"{own} losses are lower than every other loss on their own metric" in paragraph


# -------------------------------------------------------------------------------------------- guidance
def guidance(tmp_path, direction, noise=0.0, name="g"):
    rows, rng = [], np.random.default_rng(5)
    for style, scale, seed in itertools.product(["s1", "s2", "s3", "s4"], [0.0, 0.1, 0.3, 1.0], [0, 1, 2]):
        jitter = 0.002 * seed + noise * float(rng.normal())
        rows.append(
            {
                "model_slug": "m",
                "model": "m",
                "style": style,
                "method": "x0",
                "window": "0-1",
                "scale": scale,
                "seed": seed,
                "gram_dist_mean": 0.8 - trend(direction, 0.2 * scale, jitter),
                "lpips_vgg": scale / 2,
            }
        )
    return write(tmp_path, f"{name}{direction}{noise}", rows)


@pytest.mark.parametrize(
    "direction,word,sign", [(1, "falls", "-"), (-1, "rises", "+"), (0, "shows no clear trend", "")]
)
def test_guidance_sentence_follows_the_data(tmp_path, direction, word, sign):
    text = findings_markdown({"guidance": guidance(tmp_path, direction)})
    assert f"it {word} (styles resampled, ρ = " in text
    change = re.search(r"ln ratio to the unguided sample ([+-]?[\d.]+) \[([+-]?[\d.]+), ([+-]?[\d.]+)\]", text)
    low, high = float(change.group(2)), float(change.group(3))
    assert {"-": high < 0, "+": low > 0, "": low <= 0 <= high}[sign]
    assert "steers" not in text and " at scale " not in text


def test_a_noisy_guidance_trend_is_no_clear_trend(tmp_path):
    text = findings_markdown({"guidance": guidance(tmp_path, 1, noise=3.0)})
    assert "it shows no clear trend (styles resampled, ρ = " in text


def test_a_missing_unguided_row_gives_no_number(tmp_path):
    frame = pd.read_csv(guidance(tmp_path, 1))
    text = findings_markdown({"guidance": write(tmp_path, "nobase", frame[frame["scale"] > 0])})
    assert "Gram distance – unguided;" in text and "ln ratio to the unguided sample –" in text


# ------------------------------------------------------------------------------------ guidance methods
def methods(tmp_path, gaps, name="gm", **kwargs):
    return write(tmp_path, name, methods_table(gaps, **kwargs))


def verdicts(text: str) -> list[str]:
    return re.findall(
        r"At LPIPS 0\.\d, [^.]*?(?:\.\d+[^.]*?)*\.(?= |$)",
        claims(text, "Guidance methods compared at matched fidelity"),
    )


@pytest.mark.parametrize("gaps,top,other", [({"a": 1.0, "b": 0.0}, "a", "b"), ({"a": 0.0, "b": 1.0}, "b", "a")])
def test_the_matched_fidelity_verdict_names_the_closer_method(tmp_path, gaps, top, other):
    text = findings_markdown({"guidance_methods": methods(tmp_path, gaps)})
    paragraph = claims(text, "Guidance methods compared at matched fidelity")
    for level in ("0.1", "0.2", "0.3"):
        assert (
            f"At LPIPS {level}, `{top}` is closer to the style by the guidance loss (Gram distance (mean relu1–5_1)) "
            "than every other ranked method (Holm-adjusted over the 3 comparisons" in paragraph
        )
    assert f"`{other}` (Δ -" in paragraph and " best" not in paragraph


def test_equal_methods_are_not_separated_and_never_best(tmp_path):
    text = findings_markdown({"guidance_methods": methods(tmp_path, {"a": 0.5, "b": 0.5}, noise=0.05)})
    paragraph = claims(text, "Guidance methods compared at matched fidelity")
    assert paragraph.count("has the lowest mean log ratio") == 6 and paragraph.count("is not separated from") == 6
    assert "closer to the style" not in paragraph and " best" not in paragraph
    frame = methods_table({"a": 0.5, "b": 0.5})
    frame.loc[frame["method"] == "b", "gram_dist_mean"] = frame.loc[frame["method"] == "a", "gram_dist_mean"].to_numpy()
    same = claims(findings_markdown({"guidance_methods": write(tmp_path, "same", frame)}), "Guidance methods")
    assert "`a`, `b` share the lowest mean log ratio" in same


def test_a_nan_fidelity_takes_the_method_out(tmp_path):
    """Formerly NaN > budget was False and the NaN method could win: now it is not ranked, with the reason."""
    frame = methods_table({"a": 1.0, "b": 0.0, "c": 0.3})
    one = (frame["method"] == "a") & (frame["style"] == "s0") & (frame["seed"] == 2) & (frame["scale"] == 2)
    frame.loc[one, "lpips_vgg"] = np.nan
    paragraph = claims(findings_markdown({"guidance_methods": write(tmp_path, "nan", frame)}), "Guidance methods")
    assert "`c` is closer to the style by the guidance loss" in paragraph
    assert "Not ranked: `a` (no value in 1 of 36 curves: nan_fidelity 1)" in paragraph
    assert "`a` (Δ" not in paragraph


def test_over_the_realism_budget_is_not_ranked(tmp_path):
    frame = methods_table({"a": 1.0, "b": 0.0, "c": 0.3})
    frame.loc[frame["method"] == "a", "realism"] = 0.5
    paragraph = claims(findings_markdown({"guidance_methods": write(tmp_path, "real", frame)}), "Guidance methods")
    assert "Not ranked: `a` (realism 0.5 over the budget 0.08)" in paragraph and "`a` (Δ" not in paragraph


def test_a_difference_holm_does_not_separate_is_said_so(tmp_path):
    """a leads b by a little: one unadjusted test would separate them at LPIPS 0.1 and 0.2 (p < 0.05), Holm
    over the family of 30 does not, and the sentence says "not separated" with an interval spanning 0."""
    from stylediff.reporting.comparison import compare

    frame = methods_table({"a": 1.0, "b": 0.8, "c": 0.0, "d": 0.0, "e": 0.5}, noise=0.05, rng=1)
    res = compare(frame).results["gram_dist_mean"]
    paragraph = claims(findings_markdown({"guidance_methods": write(tmp_path, "holm", frame)}), "Guidance methods")
    assert "Holm-adjusted over the 30 comparisons of this metric" in paragraph
    for level in (0.1, 0.2):
        assert res.pair(level, "a", "b").p < 0.05 and not res.pair(level, "a", "b").separated
        found = re.search(
            rf"At LPIPS {level:g}, by the guidance loss [^,]*\), `a` has the lowest mean log ratio \(-[\d.]+\) but is not "
            r"separated from `b` \(Δ ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]",
            paragraph,
        )
        assert found and float(found.group(2)) <= 0 <= float(found.group(3))
    assert "At LPIPS 0.3, `a` is closer to the style by the guidance loss" in paragraph


def test_the_verdict_holds_whichever_half_of_the_seeds_reports(tmp_path):
    frame = methods_table({"a": 1.0, "b": 0.0, "c": 0.5}, noise=0.05, rng=5)
    words = []
    for half in ([0, 2, 4], [1, 3, 5]):
        part = write(tmp_path, f"half{half[0]}", frame[frame["seed"].isin(half)])
        paragraph = claims(findings_markdown({"guidance_methods": part}), "Guidance methods")
        words.append(re.findall(r"At LPIPS 0\.2, (`\w+` is closer|by the guidance loss[^,]*, `\w+` has)", paragraph))
    assert words[0] == words[1] and "`a`" in words[0][0]


@pytest.mark.parametrize(
    "held,word",
    [
        (None, "orders them as the guidance loss does"),
        ({"a": 1.5, "b": 1.0, "c": 0.5, "d": 0.0}, "orders them opposite to the guidance loss"),
        ({"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5}, "is not shown to agree or disagree with the guidance loss's order"),
    ],
)
def test_the_agreement_sentence_follows_tau_and_its_interval(tmp_path, held, word):
    gaps = {"a": 0.0, "b": 0.5, "c": 1.0, "d": 1.5}
    paragraph = claims(
        findings_markdown({"guidance_methods": methods(tmp_path, gaps, held_out=held, noise=0.05)}), "Guidance methods"
    )
    assert paragraph.count(f"`heldout_vgg16_gram` {word} (Kendall τ_b") == 3


def test_the_example_scales_are_chosen_on_one_half_and_reported_both_ways(tmp_path):
    frame = methods_table({"a": 0.0, "b": 0.0})
    frame.loc[(frame["seed"] % 2 == 1) & (frame["method"] == "a"), "lpips_vgg"] *= 2  # a: odd seeds move twice
    paragraph = claims(findings_markdown({"guidance_methods": write(tmp_path, "ex", frame)}), "Guidance methods")
    assert "seeds 0,2,4 → 1,3,5: `a` 3 (LPIPS 0.21 → 0.42); `b` 3 (LPIPS 0.21 → 0.21)" in paragraph
    assert "seeds 1,3,5 → 0,2,4: `a` 1 (LPIPS 0.14 → 0.07); `b` 3 (LPIPS 0.21 → 0.21)" in paragraph
    assert "The two directions choose the same scale for 1 of 2 methods." in paragraph


# ------------------------------------------------------------------------------------- the README rows
def test_every_section_has_a_finding_that_follows_its_data(tmp_path):
    for direction, word in ((1, "falls"), (-1, "rises")):
        text = findings_markdown({"inversion": inversion(tmp_path, direction), "texture": texture(tmp_path, direction)})
        findings = [line for line in text.splitlines() if line.startswith(FINDING)]
        headings = [line for line in text.splitlines() if line.startswith("### ")]
        assert len(findings) == len(headings) == 3
        assert f"PSNR {'falls' if direction == 1 else 'rises'} (ρ = " in findings[0]
        assert f"The Gram distance at relu5_1 {word} as the set deepens" in findings[1]
