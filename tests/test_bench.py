"""The GPU check script runs end to end on the CPU with --smoke (what a GPU machine runs full size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stylediff.diffusion import METHODS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert {row["method"] for row in report["sampling"]} == set(METHODS)
    assert {row["precision"] for row in report["sampling"]} == {"fp32", "bf16"}
    assert all(row["seconds_per_image"] > 0 for row in report["sampling"])
    assert report["texture"]["steps"] == 5 and (tmp_path / "texture.png").is_file()
    assert all((tmp_path / f"sample_{name}.png").is_file() for name in METHODS)


def _calibrate_grid():
    import importlib.util

    spec = importlib.util.spec_from_file_location("calibrate_grid", ROOT / "bench" / "calibrate_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibrate_grid_overrides_the_preset_and_judges_each_curve():
    """The calibration's config: the command line's methods, styles, scales per group and groups over the
    findings preset; its verdict: a curve is ok with a value at every level and >= 2 points inside."""
    import argparse

    import pandas as pd

    from .conftest import preset_config

    calibrate = _calibrate_grid()
    args = argparse.Namespace(
        methods="dps,x0",
        styles="starry_night,brick,hubble_deep_field",
        seeds="0,1",
        steps=None,
        scales=["dps@high_loss=0.1,0.2", "x0=0.01,0.02"],
        group=["hubble_deep_field=none"],
        out=Path("/tmp/unused"),
    )
    config = calibrate.overridden(preset_config("findings"), args)
    section = config["guidance_methods"]
    assert [m["name"] for m in section["methods"]] == ["dps", "x0"] and section["seeds"] == [0, 1]
    assert section["methods"][0]["scales_by_group"]["high_loss"] == [0.1, 0.2]
    assert section["methods"][1]["scales"] == [0.01, 0.02] and section["reference_samples"] == 0
    assert "skimage:hubble_deep_field" not in section["style_groups"]["high_loss"]
    assert section["styles"] == ["data/styles/starry_night.jpg", "skimage:brick", "skimage:hubble_deep_field"]
    rows = [("dps", "s", 0, s, lp) for s, lp in ((1, 0.05), (2, 0.15), (3, 0.25), (4, 0.35))]
    rows += [("ugd", "s", 0, s, lp) for s, lp in ((1, 0.39), (2, 0.4))]  # a floor above every level
    rows += [("x0", "s", 0, s, lp) for s, lp in ((1, 0.05), (2, 0.45))]  # one step across all three levels
    frame = pd.DataFrame(rows, columns=["method", "style", "seed", "scale", "lpips_vgg"])
    frame = frame.assign(group="-", guidance_loss=float("nan"), seconds_per_image=1.0)
    text = calibrate.report(frame, min_inside=2)
    assert "dps          -         1 of 1 curves ok; points inside min 2" in text
    assert "ugd          -         0 of 1 curves ok" in text and "0.1:floor 0.2:floor 0.3:floor" in text
    assert "x0           -         0 of 1 curves ok" in text and "0.1:gap 0.2:gap 0.3:gap" in text
