"""Claims the data chooses: every section of the results page fed the same table with its trend as
measured, reversed and flat; the direction word of its sentence follows (falls / rises / no clear
trend), and nothing in the page states a direction the data does not have."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from stylediff.reporting.findings import findings_markdown

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def trend(direction: int, position: float, jitter: float) -> float:
    """A value that rises (+1), falls (−1) or stays level (0) with ``position``, with small noise."""
    return direction * position + jitter


def write(tmp_path, name, rows):
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def inversion(tmp_path, direction):
    rows = []
    for image, layer, seed in itertools.product(["a", "b", "c"], LAYERS, [0, 1]):
        d = LAYERS.index(layer)
        jitter = 0.01 * seed  # level across layers: ρ = 0 exactly when flat
        rows.append(
            {
                "image": image,
                "layer": layer,
                "pooling": "max",
                "seed": seed,
                "psnr": 30 - trend(direction, 4 * d, jitter),
                "lpips_vgg": 0.5 + trend(direction, 0.1 * d, 0.01 * jitter),
            }
        )
    return write(tmp_path, f"inv{direction}", rows)


@pytest.mark.parametrize(
    "direction,psnr,lpips",
    [(1, "falls", "rises"), (-1, "rises", "falls"), (0, "shows no clear trend", "shows no clear trend")],
)
def test_inversion_sentence_follows_the_data(tmp_path, direction, psnr, lpips):
    text = findings_markdown({"inversion": inversion(tmp_path, direction)})
    assert f"PSNR {psnr} (ρ = " in text and f"LPIPS {lpips} (ρ = " in text
    assert "worse" not in text and "deeper the layer" not in text


def texture(tmp_path, direction):
    rows = []
    sets = ["-".join(LAYERS[: k + 1]) for k in range(5)]
    for style, layers, loss, seed in itertools.product(["s1", "s2", "s3"], sets, ["gram", "mean_std"], [0, 1]):
        k = layers.count("-")
        jitter = 0.001 * seed
        row = {"style": style, "layers": layers, "loss": loss, "seed": seed}
        for layer in LAYERS:
            row[f"gram_dist_{layer}"] = 0.5 - trend(direction, 0.05 * k, jitter)
        good = (loss == "mean_std") == (direction >= 0)  # reversed: gram is the better loss
        for metric in ("gram_mean", "mean_std_mean"):
            row[metric] = (0.2 if good else 0.3) + (0.1 * jitter if direction else 0.0)
        rows.append(row)
    return write(tmp_path, f"tex{direction}", rows)


@pytest.mark.parametrize(
    "direction,word,best", [(1, "falls", "mean_std"), (-1, "rises", "gram"), (0, "shows no clear trend", None)]
)
def test_texture_and_losses_sentences_follow_the_data(tmp_path, direction, word, best):
    text = findings_markdown({"texture": texture(tmp_path, direction)})
    assert f"The Gram distance at relu5_1 {word} as the set deepens" in text
    assert "capture more of the style" not in text
    if best:
        assert f"`{best}` is best on gram, mean_std" in text


def guidance(tmp_path, direction):
    rows = []
    for style, scale, seed in itertools.product(["s1", "s2", "s3"], [0.0, 0.1, 0.3, 1.0], [0, 1, 2]):
        jitter = 0.002 * seed
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
    return write(tmp_path, f"g{direction}", rows)


@pytest.mark.parametrize("direction,word", [(1, "falls"), (-1, "rises"), (0, "shows no clear trend")])
def test_guidance_sentence_follows_the_data(tmp_path, direction, word):
    text = findings_markdown({"guidance": guidance(tmp_path, direction)})
    assert f"it {word} (styles resampled, ρ = " in text
    assert "steers" not in text


def methods(tmp_path, direction):
    """Methods a and b, two scales each; a steers further than b (direction 1), less far (−1), or the
    same within noise (0); a held-out metric ranks them the other way round when direction is 1."""
    rows, noise_of = [], np.random.default_rng(10 + direction)
    for style, seed in itertools.product(["s1", "s2", "s3", "s4", "s5"], [0, 1, 2, 3]):
        common = {"model_slug": "m", "model": "m", "style": style, "seed": seed}
        noise = 0.05 * float(noise_of.normal())
        rows.append(
            {
                **common,
                "method": "unguided",
                "scale": 0.0,
                "gram_dist_mean": 2.0 + noise,
                "lpips_vgg": 0.0,
                "heldout_vgg16_gram": 2.0,
            }
        )
        for method, scale in itertools.product(["a", "b"], [1.0, 2.0]):
            gap = {1: 0.5, -1: -0.5, 0: 0.0}[direction] * (method == "a")
            jitter = (0.01 if direction else 0.2) * float(noise_of.normal())
            gram = 1.5 - 0.1 * scale - gap + jitter
            rows.append(
                {
                    **common,
                    "method": method,
                    "scale": scale,
                    "gram_dist_mean": gram,
                    "lpips_vgg": 0.1 * scale,
                    "heldout_vgg16_gram": 1.0 + gap + 0.1 * jitter,
                }
            )
    return write(tmp_path, f"gm{direction}", rows)


def test_guidance_methods_sentences_follow_the_data(tmp_path):
    ahead = findings_markdown({"guidance_methods": methods(tmp_path, 1)})
    assert "the method chosen best on the selection seeds is `a`" in ahead
    assert "the intervals support a difference from it for `b` higher (+0.5" in ahead
    assert "ranking changes with `heldout_vgg16_gram` for 1 pair(s): `a` ahead of `b` by the guidance loss" in ahead
    assert re.search(r"`heldout_vgg16_gram` over 4 method × scale cells: -?[\d.]+ \(\d+ of 6 cell pairs", ahead)
    behind = findings_markdown({"guidance_methods": methods(tmp_path, -1)})
    assert (
        "By the guidance loss (Gram distance (mean relu1–5_1)), the method chosen best on the selection seeds is `b`"
        in behind
    )
    assert "support a difference from it for `a` higher (+0.5" in behind
    flat = findings_markdown({"guidance_methods": methods(tmp_path, 0)})
    assert "the intervals support a difference from it for no method; they do not for `" in flat
