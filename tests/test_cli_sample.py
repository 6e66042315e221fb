"""The ``stylediff sample`` verb end to end on a tiny random UNet saved as a diffusers folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylediff.cli import main

from .conftest import DEMO_MODEL, sample_argv, stylediff

pytest.importorskip("diffusers")

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "the_scream.jpg"


@pytest.fixture(scope="module")
def model_dir(tiny_ddpm_dir) -> Path:
    return tiny_ddpm_dir


def sample(model_dir, out, *extra):
    return main(sample_argv(model_dir, out, *extra, style=STYLE))


def test_sample_writes_images_grid_and_sidecar(model_dir, tmp_path):
    out = tmp_path / "run" / "guided.png"
    batch = ("--num-images", 3, "--seed", 4, "--scale", 0.2, "--method", "x0", "--window", "0.0,0.9")
    assert sample(model_dir, out, *batch) == 0
    paths = [tmp_path / "run" / f"guided__s{seed}.png" for seed in (4, 5, 6)]
    for seed, path in zip((4, 5, 6), paths):
        assert Image.open(path).size == (16, 16)
        own = json.loads(path.with_suffix(".json").read_text())  # every image has its sidecar
        assert own["seed"] == seed and own["config"]["seeds"] == [seed] and len(own["final_style_loss"]) == 1
    assert Image.open(out).size[0] > 3 * 16  # the grid
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "sample"
    assert meta["config"]["scale"] == 0.2 and meta["config"]["window"] == [0.0, 0.9]
    assert meta["guidance"]["method"] == "x0" and meta["guidance"]["window"] == [0.0, 0.9]
    assert meta["guidance"]["evaluations"] == {
        "unet_forward": 3,
        "unet_backward": 0,
        "objective_forward": 3,
        "objective_backward": 3,
    }
    weights = meta["weights"]["diffusion"]
    file = model_dir / weights["weights_file"]
    assert weights["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert [image["seed"] for image in meta["images"]] == [4, 5, 6]
    assert len(meta["final_style_loss"]) == 3 and all(v > 0 for v in meta["final_style_loss"])
    assert len(meta["timing"]["step_seconds"]) == 3 and meta["timing"]["seconds_per_step"] > 0
    assert meta["guidance"]["guidance_shape"] == [16, 16]  # max(sample 16, 4 x 2 px that relu2_1 needs)
    assert [step["guided"] for step in meta["history"]] == [True, True, True]

    # a CPU run is bit-reproducible: the same command writes the same pixels
    again = tmp_path / "again" / "guided.png"
    assert sample(model_dir, again, *batch) == 0
    for seed in (4, 5, 6):
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "run" / f"guided__s{seed}.png")),
            np.asarray(Image.open(tmp_path / "again" / f"guided__s{seed}.png")),
        )
    # image i of a batch is the single-image run with seed SEED+i, up to the CPU kernels' rounding: oneDNN's
    # convolutions and the UNet's time-embedding matmul take other code paths for a batch of 3 than of 1
    # (1e-6 apart in the UNet's output, 1e-4 in VGG's relu1_1), which the 8-bit rounding can turn into ±1
    # on a pixel that lies at a rounding boundary (none here on the development machine)
    single = tmp_path / "single.png"
    assert sample(model_dir, single, "--seed", "5", "--scale", "0.2", "--method", "x0", "--window", "0.0,0.9") == 0
    a = np.asarray(Image.open(single), dtype=np.int16)
    b = np.asarray(Image.open(paths[1]), dtype=np.int16)
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.05


@pytest.mark.parametrize(
    "model,expected",
    [("{tmp}/missing-model", "no such folder"), ("stylediff-test/no-such-model", "stylediff weights fetch --models")],
)
def test_missing_model_is_one_line_and_exit_2(tmp_path, capsys, model, expected):
    code = main(
        [
            "sample",
            "--model",
            model.format(tmp=tmp_path),
            "--style",
            str(STYLE),
            "--offline",
            "--out",
            str(tmp_path / "x.png"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and expected in err
    assert not (tmp_path / "x.png").exists()


def test_bad_arguments_exit_before_work(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample(model_dir, tmp_path / "y.png", "--window", "0.9,0.1")
    assert exit_info.value.code == 2 and "START <= END" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sample(model_dir, tmp_path / "y.png", "--loss", "nope")
    assert "valid losses" in capsys.readouterr().err
    assert sample(model_dir, tmp_path / "y.png", "--method", "dps", "--inner-steps", "2") == 2
    assert "method dps has no knob --inner-steps" in capsys.readouterr().err
    assert not (tmp_path / "y.png").exists()


def test_a_normal_sample_run_prints_nothing_that_is_not_the_users_business(tmp_path):
    """The demo model, as the README runs it, in a fresh process: no diffusers "install accelerate"
    notice, no huggingface_hub or torch deprecation warnings on stderr."""
    result = stylediff(
        *("sample", "--model", DEMO_MODEL, "--style", STYLE, "--steps", 2, "--layers", "relu1_1", "--no-progress"),
        *("--out", tmp_path / "s.png"),
    )
    assert not any(word in result.stderr.lower() for word in ("accelerate", "warning", "deprecat")), result.stderr
