"""stylediff.reporting.findings: rank correlations, the claims it states from tables, and the README splice."""

from __future__ import annotations

import itertools
import re

import pandas as pd
import pytest

from stylediff.core.errors import ConfigError
from stylediff.reporting.findings import README_BEGIN, README_END, findings_markdown, spearman, splice_readme

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def cells(text: str) -> str:
    """Markdown tables without their column padding: ``| a | b |``."""
    return re.sub(r" *\| *", " | ", text)


def test_spearman_is_rank_correlation():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [9, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 1], [1, 2, 3]) != spearman([1, 1, 1], [1, 2, 3])  # constant side: NaN


def inversion_table(path, flip_image: str | None = None):
    """PSNR falling with depth for every image, except that ``flip_image`` swaps its last two layers."""
    rows = []
    for image, layer, seed in itertools.product(["a", "b"], LAYERS, [0, 1]):
        depth = LAYERS.index(layer)
        if image == flip_image and depth >= 3:
            depth = 7 - depth
        rows.append(
            {
                "image": image,
                "layer": layer,
                "pooling": "max",
                "seed": seed,
                "model": "VGG-19",
                "size": 64,
                "steps": 10,
                "psnr": 30 - 4 * depth + 0.1 * seed,
                "ssim": 0.9 - 0.1 * depth,
                "lpips_vgg": 0.1 * depth,
                "feature_error": 0.05,
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_inversion_claim_counts_monotone_images(tmp_path):
    text = findings_markdown({"inversion": inversion_table(tmp_path / "a.csv")})
    assert "PSNR falls strictly with depth for 2 and rises strictly for 0 of 2 images" in text
    assert re.search(r"PSNR falls \(ρ = -0\.9\d \[", text)
    text = findings_markdown({"inversion": inversion_table(tmp_path / "b.csv", flip_image="b")})
    assert "PSNR falls strictly with depth for 1 and rises strictly for 0 of 2 images" in text


def texture_table(path, copying_loss: str | None = None):
    """Deep-layer Gram distance falls as the set deepens; `mean_std` is best on every metric; the runs of
    ``copying_loss`` reproduce the style's layout (layout_copy 0.8, the others 0.2)."""
    rows = []
    sets = ["-".join(LAYERS[: k + 1]) for k in range(5)]
    for style, layers, loss, seed in itertools.product(["s1", "s2"], sets, ["gram", "mean_std"], [0, 1]):
        k = layers.count("-")
        row = {
            "style": style,
            "layers": layers,
            "loss": loss,
            "seed": seed,
            "model": "VGG-19",
            "size": 64,
            "steps": 10,
            "lpips_vgg": 0.5 - (loss == "mean_std") * 0.1,
            "wall_seconds": 3.0,
            "layout_copy": 0.8 if loss == copying_loss else 0.2,
        }
        for i, layer in enumerate(LAYERS):
            row[f"gram_dist_{layer}"] = 0.1 if i <= k else 1.0 - 0.1 * k
        for metric in ("gram_mean", "mean_std_mean", "sliced_wasserstein_mean", "gaussian_w2_mean"):
            row[metric] = 0.2 if loss == "mean_std" else 0.3
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_texture_and_loss_claims(tmp_path):
    text = findings_markdown({"texture": texture_table(tmp_path / "t.csv")})
    assert "falls as the set deepens among the 20 of 20 runs that are not copies (ρ(set depth, distance) = -1 [" in text
    assert "lower for 2 and higher for 0 of 2 styles" in text
    for metric in ("gram", "mean_std", "sliced_wasserstein", "gaussian_w2"):  # 0.2 against 0.3 on every cell
        assert f"By {metric}, `mean_std` is lower than every other loss: `gram` (Δ -0.1 [-0.1, -0.1]" in text
    assert "Holm-adjusted over the 4 comparisons" in text
    assert "1 of 4 losses are lower than every other loss on their own metric" in text
    assert "| `mean_std` | **0.2 ± 0** |" in cells(text) and "| `gram` | 0.3 ± 0 |" in cells(text)
    assert "Copy rate per loss: `gram` 0 of 4 (0 %), `mean_std` 0 of 4 (0 %)" in text


def test_loss_claims_count_copies_and_rank_only_textures(tmp_path):
    """A loss whose outputs copy the style's layout is not compared: its copies are left out."""
    text = findings_markdown({"texture": texture_table(tmp_path / "t.csv", copying_loss="mean_std")})
    assert "By gram, only `gram` has outputs that are not copies: no comparison." in text
    table = [line for line in text.split("### Style losses compared")[1].splitlines() if line.startswith("|")]
    assert "`mean_std` is lower" not in text and not any("**" in line for line in table)
    assert "Copy rate per loss: `gram` 0 of 4 (0 %), `mean_std` 4 of 4 (100 %)" in text
    assert "among the 20 of 20 runs that are not copies" in text  # the texture section reads gram's runs


def test_guidance_claims_pick_no_scale_by_its_result(tmp_path):
    """The lowest distance is at the middle scale: the claim states the trend and the largest scale, paired
    against the unguided sample, never "→ the lowest at scale s"."""
    rows = []
    for style, method, scale, seed in itertools.product(["s1", "s2"], ["x0"], [0.0, 0.1, 1.0], [0, 1]):
        rows.append(
            {
                "model_slug": "m",
                "model": "m",
                "style": style,
                "method": method,
                "window": "0-1",
                "scale": scale,
                "seed": seed,
                "size": 32,
                "steps": 5,
                "gram_dist_mean": {0.0: 0.8, 0.1: 0.3, 1.0: 0.5}[scale],
                "lpips_vgg": scale / 2,
            }
        )
    path = tmp_path / "g.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    text = findings_markdown({"guidance": path})
    assert "Gram distance 0.8 unguided; it falls (styles resampled, ρ = -0.5 [" in text
    assert "at the largest scale 1 it is 0.5 (ln ratio to the unguided sample -0.47 [-0.47, -0.47]" in text
    assert "at scale 0.1" not in text and "0.3 at" not in text


def test_guidance_normalisations_share_the_unguided_baseline(tmp_path):
    rows = []
    for norm, scale, seed in itertools.product(["per_step", "first_step"], [0.0, 0.1], [0, 1]):
        if scale == 0 and norm == "first_step":
            continue  # one unguided run serves both, as in the workflow
        rows.append(
            {
                "model_slug": "m",
                "model": "m",
                "style": "s1",
                "method": "x0",
                "window": "0-1",
                "normalization": norm,
                "scale": scale,
                "seed": seed,
                "size": 32,
                "steps": 5,
                "gram_dist_mean": {0.0: 0.8, 0.1: 0.3 if norm == "per_step" else 0.6}[scale],
                "lpips_vgg": scale,
            }
        )
    path = tmp_path / "g.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    text = findings_markdown({"guidance": path})
    assert "| x0 | 0-1 | first_step | 0.8 ± 0 | 0.6 ± 0 |" in cells(text)
    assert "`x0`, window 0-1, `first_step` normalisation: Gram distance 0.8 unguided;" in text
    assert "`first_step` normalisation: Gram distance 0.8 unguided; it rises" not in text
    assert "at the largest scale 0.1 it is 0.6 (" in text and "at the largest scale 0.1 it is 0.3 (" in text


def test_findings_needs_a_table():
    with pytest.raises(ConfigError):
        findings_markdown({"transfer": "x.csv"})


def test_splice_replaces_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{README_BEGIN}\nold text\n{README_END}\nafter\n")
    splice_readme(readme, "new text\n")
    assert readme.read_text() == f"# title\n\nbefore\n{README_BEGIN}\nnew text\n{README_END}\nafter\n"
    splice_readme(readme, "newer\n")
    assert "new text" not in readme.read_text() and "newer" in readme.read_text()
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    with pytest.raises(ConfigError, match="no results markers"):
        splice_readme(plain, "x")
    assert plain.read_text() == "# no markers\n"
