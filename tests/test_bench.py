"""The GPU check script runs end to end on the CPU with --smoke (what a GPU machine runs full size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stylediff.diffusion import METHODS
from stylediff.nst.losses import STYLE_LOSSES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke(tmp_path):
    """Tiny networks, one step: every section, every method and decoder, every style loss, no errors, both files."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = report["rows"]
    assert not [row for row in rows if "error" in row or "skipped" in row]
    assert {row["method"] for row in rows if row["section"] == "nst"} == set(STYLE_LOSSES)
    latent = [row for row in rows if row["section"] == "latent"]
    for decoder in ("vae", "vae_checkpointing", "tiny"):
        assert {row["method"] for row in latent if row["setting"] == decoder} == set(METHODS), decoder
    assert {row["batch"] for row in latent} == {1, 2}
    pixel = [row for row in rows if row["section"] == "pixel"]
    assert {row["method"] for row in pixel} == set(METHODS)
    assert {row["precision"] for row in pixel} == {"fp32", "bf16"}
    assert all(row["seconds_per_image"] > 0 for row in latent + pixel)
    assert all(row["seconds_per_step"] > 0 for row in rows if row["section"] == "nst")
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.count("\n| latent |") == len(latent) and "AutoencoderTiny" in table
    assert (tmp_path / "texture_gram.png").is_file() and (tmp_path / "latent_tiny_x0.png").is_file()


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
