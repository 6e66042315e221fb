"""The metrics (stylediff.evaluation: metrics, scorer, lpips, document; stylediff.weights.backbones) and the `stylediff metrics` verb."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylediff.core.errors import ConfigError, WeightsError
from stylediff.core.images import load_image, save_image
from stylediff.core.io import write_json
from stylediff.evaluation.document import image_metrics
from stylediff.evaluation.lpips import LPIPS_NETS
from stylediff.evaluation.scorer import METRIC_LAYERS, Scorer, gram_distances
from stylediff.nst.losses import STYLE_LOSSES
from stylediff.weights.backbones import backbone_path, ensure_backbone

ROOT = Path(__file__).resolve().parents[1]
HAVE_LPIPS = all(backbone_path(net).is_file() for net in LPIPS_NETS)


@pytest.fixture(scope="module")
def scorer():
    return Scorer(lpips=False)


def smooth_image(seed: int, size: int = 48) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


def test_style_distances_zero_for_the_style_itself(scorer):
    image = smooth_image(0)
    distances = scorer.style_distances(image, image)
    for name in ["gram_dist"] + list(STYLE_LOSSES):
        assert set(f"{name}_{layer}" for layer in METRIC_LAYERS) <= set(distances)
        assert abs(distances[f"{name}_mean"]) < 1e-3, (name, distances[f"{name}_mean"])


def test_style_distances_positive_and_deterministic(scorer):
    image, style = smooth_image(1), smooth_image(2)
    first = scorer.style_distances(image, style, ("s", 48))
    second = scorer.style_distances(image, style, ("s", 48))
    assert first == second  # sliced_wasserstein draws the same directions every time
    assert scorer.style_distances(image, style) == first  # the cached style features and targets change nothing
    assert all(value > 0 for key, value in first.items() if key.endswith("_mean"))


def test_gram_distance_is_relative_frobenius(scorer):
    feats = {"relu1_1": torch.ones(1, 2, 3, 3)}
    target = {"relu1_1": 2 * torch.ones(1, 2, 3, 3)}
    out = gram_distances(feats, target, ["relu1_1"])
    assert out["gram_dist_relu1_1"] == pytest.approx(0.75)  # |1 - 4| / 4
    assert out["gram_dist_mean"] == pytest.approx(0.75)


def test_missing_lpips_backbone_is_a_one_line_weights_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        ensure_backbone("vgg", download=False)
    message = str(info.value)
    assert "\n" not in message and "vgg16-397923af.pth" in message and str(tmp_path) in message
    assert "stylediff weights fetch" in message
    with pytest.raises(WeightsError):
        Scorer(lpips=True)


def test_lpips_auto_skips_without_backbones_and_says_so(monkeypatch, tmp_path, capsys):
    """No backbone files and no download (torchvision's URL pointed nowhere): `auto` scores everything
    else, says once why LPIPS is missing and records it; `true` fails; `false` is silent."""
    from stylediff.weights import backbones

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(
        backbones,
        "TORCHVISION_URLS",
        {net: "http://download.pytorch.invalid/x.pth" for net in backbones.TORCHVISION_URLS},
    )
    scorer = Scorer(lpips="auto", heldout=False)
    err = capsys.readouterr().err
    assert not scorer.lpips_on and err.count("\n") == 1 and "LPIPS skipped" in err
    assert "skipped" in scorer.provenance()["lpips"]
    image = _run(tmp_path, "t", smooth_image(11), {"size": 48})
    doc = image_metrics(scorer, "texture", image, image)
    assert "lpips_vgg" not in doc["metrics"] and "gram_dist_mean" in doc["metrics"]
    with pytest.raises(WeightsError):
        Scorer(lpips="true")
    Scorer(lpips="false", heldout=False)
    assert capsys.readouterr().err == ""


def _run(folder: Path, name: str, image: torch.Tensor, config: dict) -> Path:
    path = folder / f"{name}.png"
    save_image(image, path)
    write_json(
        path.with_suffix(".json"),
        {
            "config": config,
            "timing": {"load_seconds": 1.0, "optimize_seconds": 2.0, "peak_rss_mb": 100.0},
            "final": {"loss": 0.5},
        },
    )
    return path


def test_image_metrics_per_kind(scorer, tmp_path):
    original = _run(tmp_path, "original", smooth_image(3), {"layer": "relu2_1"})
    inverted = _run(tmp_path, "inv", smooth_image(4), {"layer": "relu2_1", "size": 48})
    doc = image_metrics(scorer, "inversion", inverted, original)
    assert set(doc["metrics"]) == {"feature_error", "psnr", "ssim"}
    assert doc["timing"]["wall_seconds"] == pytest.approx(3.0) and doc["final_loss"] == 0.5
    same = image_metrics(scorer, "inversion", original, original, reference_size=48)
    assert same["metrics"]["feature_error"] < 1e-3 and same["metrics"]["ssim"] > 0.99

    transfer = _run(tmp_path, "tr", smooth_image(5), {"content_layer": "relu2_1", "size": 48})
    doc = image_metrics(scorer, "transfer", transfer, inverted, baseline_path=original)
    assert {"gram_dist_mean", "content_error", "psnr"} <= set(doc["metrics"])
    assert doc["pixel_reference"] == str(original)
    with pytest.raises(ConfigError):
        image_metrics(scorer, "guidance", transfer, inverted)
    with pytest.raises(ConfigError):
        image_metrics(scorer, "nonsense", transfer, inverted)


@pytest.mark.skipif(not HAVE_LPIPS, reason="LPIPS backbones not in $TORCH_HOME/hub/checkpoints")
def test_lpips_zero_for_identical_images_and_upsamples_small_ones():
    scorer = Scorer(lpips=True)
    image = smooth_image(6, size=32)
    same = scorer.lpips_distances(image, image)
    other = scorer.lpips_distances(image, smooth_image(7, size=32))
    assert set(same) == {"lpips_vgg", "lpips_alex"}
    assert max(same.values()) < 1e-6 and min(other.values()) > 0.01


def test_metrics_verb_batch_and_errors(tmp_path):
    original = _run(tmp_path, "original", smooth_image(8), {})
    a = _run(tmp_path, "a", smooth_image(9), {"layer": "relu1_1"})
    b = _run(tmp_path, "b", smooth_image(10), {"layer": "relu3_1"})
    code = "import sys; from stylediff.cli import main; sys.exit(main())"
    base = [
        sys.executable,
        "-c",
        code,
        "metrics",
        "--kind",
        "inversion",
        "--lpips",
        "false",
        "--image",
        str(a),
        str(b),
        "--reference",
        str(original),
    ]
    result = subprocess.run(
        base + ["--out", str(tmp_path / "a.metrics.json"), str(tmp_path / "b.metrics.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    docs = [json.loads((tmp_path / f"{n}.metrics.json").read_text()) for n in "ab"]
    for doc, path in zip(docs, (a, b)):  # each image scored at its own sidecar's layer, into its own --out
        expected = image_metrics(Scorer(lpips=False), "inversion", path, original)["metrics"]
        assert doc["metrics"] == pytest.approx(expected, rel=1e-6)
    assert docs[0]["metrics"]["feature_error"] != docs[1]["metrics"]["feature_error"]
    assert docs[0]["metric_weights"]["vgg19"]["source"] == "caffe"
    # the direction of each column, for the torch-free report: the similarities PSNR and SSIM, not the distance
    assert set(docs[0]["higher_is_better"]) == {"psnr", "ssim"} and "feature_error" in docs[0]["metrics"]
    result = subprocess.run(base + ["--out", str(tmp_path / "only_one.json")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--out got 1 paths for 2" in result.stderr
    assert load_image(a).shape[-1] == 48
