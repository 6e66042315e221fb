"""Timing helpers shared by the benchmarks: CUDA work is asynchronous, so every timer
synchronises the device before reading the clock."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def mean_seconds(fn: Callable[[], object], calls: int, device: torch.device | None) -> float:
    """Mean wall time of one call over ``calls`` back-to-back calls."""
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return (time.perf_counter() - start) / calls


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device | None, warmup: int = 2) -> float:
    """Median wall time of one call over ``repeats`` separately timed calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(mean_seconds(fn, 1, device) for _ in range(repeats))
