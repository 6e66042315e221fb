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
