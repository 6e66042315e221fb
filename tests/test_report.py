"""Run ids, tables and figures (stylediff.report) and image specs (stylediff.datasets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylediff.datasets import check_spec, image_slug, materialise, resolve_image
from stylediff.errors import ConfigError, ImageError
from stylediff.io import write_json
from stylediff.report import (AXES, aggregate, figure_files, make_figures, model_slug, parse_run_id, run_id)


@pytest.mark.parametrize("normalization", ["per_step", "first_step"])
@pytest.mark.parametrize("scale", [0, 0.5, 1, 3, 1e-3, 1e6, 2.25])
def test_run_id_round_trip(scale, normalization):
    values = {"model": "google/ddpm-cifar10-32", "style": "data/styles/starry night.jpg", "loss": "gram",
              "layers": ["relu1_1", "relu2_1"], "window": [0.25, 1.0], "mode": "x0", "normalization": normalization,
              "scale": scale, "seed": 3}
    run = run_id("guidance", values)
    assert "." not in run and "/" not in run and " " not in run
    parsed = parse_run_id("guidance", run)
    # an unguided sample has nothing to normalise: it is the default-normalisation run for every one
    expected_norm = "per_step" if scale == 0 else normalization
    assert parsed == {"model": "ddpm-cifar10-32", "style": "starry_night", "loss": "gram",
                      "layers": "relu1_1-relu2_1", "window": "0.25-1", "mode": "x0", "normalization": expected_norm,
                      "scale": pytest.approx(scale), "seed": 3}


def test_default_normalisation_keeps_the_run_ids_of_older_grids():
    values = {"model": "m", "style": "s.png", "loss": "gram", "layers": ["relu1_1"], "window": [0, 1],
              "mode": "x0", "scale": 0.1, "seed": 0}
    older = "m__s__gram__relu1_1__w0-1__x0__g0p1__s0"
    assert run_id("guidance", values) == older == run_id("guidance", {**values, "normalization": "per_step"})
    assert run_id("guidance", {**values, "normalization": "first_step"}) == "m__s__gram__relu1_1__w0-1__x0__first_step__g0p1__s0"
    assert run_id("guidance", {**values, "scale": 0, "normalization": "first_step"}).endswith("__x0__g0__s0")


def test_run_id_matches_design_example_and_rejects_bad_ids():
    run = run_id("texture", {"style": "data/styles/starry_night.jpg", "layers": ["relu1_1", "relu2_1"],
                             "loss": "gram", "seed": 0})
    assert run == "starry_night__relu1_1-relu2_1__gram__s0"
    with pytest.raises(ConfigError):
        parse_run_id("texture", "starry_night__gram__s0")
    with pytest.raises(ConfigError):
        run_id("nonsense", {})
    assert model_slug("models/ddpm-emoji-32/") == "ddpm-emoji-32"


def test_image_specs(tmp_path):
    assert image_slug("skimage:brick") == "brick" and image_slug("a/b c.jpg") == "b_c"
    assert resolve_image("skimage:brick", "imgs") == "imgs/brick.png"
    assert resolve_image("data/x.jpg") == "data/x.jpg"
    with pytest.raises(ConfigError):
        check_spec("skimage:nonsense")
    with pytest.raises(ImageError):
        check_spec("missing.png", tmp_path)
    out = materialise("skimage:brick", tmp_path / "brick.png")  # a grey image becomes RGB
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (512, 512)


def _png(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


def _fake_experiment(tmp_path, experiment, runs):
    """Write a PNG, sidecar-derived metrics JSON per run, as `stylediff metrics` would."""
    files = []
    for i, values in enumerate(runs):
        run = run_id(experiment, values)
        out = _png(tmp_path / f"{run}.png", i)
        ref = _png(tmp_path / f"ref{i}.png", 100 + i)
        doc = {"image": out, "reference": ref, "baseline": ref if experiment in ("transfer", "guidance") else None,
               "metrics": {"gram_dist_mean": 0.1 * (i + 1), "feature_error": 0.01 * (i + 1),
                           "lpips_vgg": 0.05 * i, "psnr": 20.0, "ssim": 0.5},
               "timing": {"wall_seconds": 1.0 + i, "peak_rss_mb": 800.0}, "final_loss": 0.1,
               "run": {"config": {"size": 16, "steps": 5, **({"model": values["model"]} if "model" in values else {})},
                       "weights": {"vgg19": {"source": "caffe"}}, "device": "cpu"}}
        path = tmp_path / f"{run}.metrics.json"
        write_json(path, doc)
        files.append(path)
    return files


def test_aggregate_table_and_summary(tmp_path):
    runs = [{"image": "skimage:chelsea", "layer": layer, "pooling": "max", "seed": seed}
            for layer in ("relu1_1", "relu4_2") for seed in (0, 1)]
    files = _fake_experiment(tmp_path, "inversion", runs)
    frame = aggregate("inversion", files, tmp_path / "t.csv", tmp_path / "s.md")
    table = pd.read_csv(tmp_path / "t.csv")
    assert len(table) == 4 and list(table["seed"]) == [0, 1, 0, 1]
    assert {"image", "layer", "seed", "model", "feature_error", "wall_seconds", "output"} <= set(table.columns)
    assert (table["model"] == "VGG-19 (caffe weights)").all()
    summary = (tmp_path / "s.md").read_text()
    assert "VGG-19 (caffe weights)" in summary and "±" in summary and "| chelsea | relu4_2 | max | 2 |" in summary
    assert len(frame) == 4


@pytest.mark.parametrize("experiment", ["inversion", "texture", "transfer", "guidance"])
def test_figures_written_and_byte_identical(tmp_path, experiment):
    if experiment == "inversion":
        runs = [{"image": img, "layer": layer, "pooling": pooling, "seed": 0} for img in ("skimage:a", "skimage:b")
                for layer in ("relu1_1", "relu5_1") for pooling in ("max", "avg")]
    elif experiment == "texture":
        runs = [{"style": "s.jpg", "layers": layers, "loss": loss, "seed": 0}
                for layers in (["relu1_1"], ["relu1_1", "relu2_1"]) for loss in ("gram", "mean_std")]
    elif experiment == "transfer":
        runs = [{"content": "c.png", "style": "s.jpg", "loss": loss, "seed": 0} for loss in ("gram", "mean_std")]
    else:
        runs = [{"model": "models/tiny", "style": "s.jpg", "loss": "gram", "layers": ["relu1_1"], "window": window,
                 "mode": mode, "scale": scale, "seed": seed} for mode in ("x0", "through_unet") for scale in (0, 0.3, 1)
                for seed in (0, 1) for window in ([0, 1], [0, 0.5])]
    files = _fake_experiment(tmp_path, experiment, runs)
    aggregate(experiment, files, tmp_path / "t.csv")
    written = make_figures(experiment, tmp_path / "t.csv", tmp_path / "fig1")
    expected = figure_files(experiment, ["models/tiny"], ["x0", "through_unet"])
    assert [p.name for p in written] == expected
    make_figures(experiment, tmp_path / "t.csv", tmp_path / "fig2")
    for name in expected:
        first, second = (tmp_path / "fig1" / name).read_bytes(), (tmp_path / "fig2" / name).read_bytes()
        assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == second, name


def test_axes_cover_every_experiment():
    assert set(AXES) == {"inversion", "texture", "transfer", "guidance"}
    assert all(axes[-1] == "seed" for axes in AXES.values())
