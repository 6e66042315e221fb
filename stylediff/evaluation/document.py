"""The document ``stylediff metrics`` writes for one output.

Every registered metric of its kind, with its run's timing, final loss and command read from the
output's sidecar.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.images import load_image
from ..core.io import read_json
from ..workflow.experiments import METRIC_KINDS
from .metrics import METRICS, PIXEL_TARGET, Item
from .scorer import Scorer


def _timing(sidecar: dict) -> dict[str, float]:
    timing = {k: v for k, v in (sidecar.get("timing") or {}).items() if isinstance(v, (int, float))}
    seconds = [v for k, v in timing.items() if k.endswith("_seconds")]
    if seconds:
        timing["wall_seconds"] = float(sum(seconds))
    evaluations = (sidecar.get("guidance") or {}).get("evaluations") or {}
    if evaluations:
        timing["unet_evaluations"] = evaluations.get("unet_forward", 0) + evaluations.get("unet_backward", 0)
        timing["objective_evaluations"] = evaluations.get("objective_forward", 0) + evaluations.get(
            "objective_backward", 0
        )
    return timing


def image_metrics(
    scorer: Scorer,
    kind: str,
    image_path: str | os.PathLike,
    reference_path: str | os.PathLike,
    baseline_path: str | os.PathLike | None = None,
    reference_size: int | None = None,
    reference_set: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Every registered metric of ``kind`` for one output.

    Args:
        scorer: the networks that grade (:class:`~stylediff.evaluation.scorer.Scorer`).
        kind: the output's kind (:data:`~stylediff.evaluation.metrics.METRIC_KINDS`: inversion, texture,
            transfer, guidance…).
        image_path: the output PNG (its JSON sidecar beside it is read).
        reference_path: the style (or content, for inversion) image it is graded against.
        baseline_path: the content image (transfer) or the unguided sample (guidance), for the kinds whose
            pixel metrics compare with one.
        reference_size: the longest side the reference is read at (default: the run's style size from the
            sidecar, else the output's side).
        reference_set: a batch sidecar of the model's own unguided samples (``stylediff sample --seeds …``),
            for the realism metric of guidance outputs.

    Returns:
        The document ``stylediff metrics`` writes: the metric values, the run's timing, final loss and
        command.

    Raises:
        ConfigError: an unknown kind, or a kind that needs ``baseline_path`` without one.
    """
    if kind not in METRIC_KINDS:
        raise ConfigError(f"unknown metrics kind {kind!r}; choose one of {', '.join(METRIC_KINDS)}")
    if PIXEL_TARGET[kind] == "baseline" and baseline_path is None:
        raise ConfigError(
            f"--kind {kind} needs --baseline (the {'content image' if kind == 'transfer' else 'unguided sample'})"
        )
    start = time.perf_counter()
    image_path = Path(image_path)
    sidecar_file = image_path.with_suffix(".json")
    sidecar = read_json(sidecar_file) if sidecar_file.is_file() else {}
    config = sidecar.get("config") or {}
    device = next(scorer.vgg.parameters()).device
    item = Item(
        kind=kind,
        image=load_image(image_path).to(device),
        config=config,
        reference_path=str(reference_path),
        baseline_path=None if baseline_path is None else str(baseline_path),
        reference_size=reference_size,
        reference_set=None if reference_set is None else str(reference_set),
    )
    metrics: dict[str, float] = {}
    for metric in METRICS.values():
        if kind in metric.kinds:
            metrics.update(metric().compute(scorer, item))
    final = sidecar.get("final")
    if isinstance(final, dict):
        final_loss = final.get("loss")
    else:  # `stylediff sample`: one final style loss per image
        losses = sidecar.get("final_style_loss") or [None]
        final_loss = losses[0] if isinstance(losses, list) else losses
    return {
        "kind": kind,
        "image": str(image_path),
        "reference": str(reference_path),
        "baseline": None if baseline_path is None else str(baseline_path),
        "pixel_reference": str(baseline_path if PIXEL_TARGET[kind] == "baseline" else reference_path),
        "shape": list(item.image.shape[-2:]),
        "metrics": metrics,
        "timing": _timing(sidecar),
        "final_loss": final_loss,
        "run": {
            "command": sidecar.get("command"),
            "config": config,
            "device": sidecar.get("device"),
            "weights": sidecar.get("weights"),
        },
        "metric_seconds": time.perf_counter() - start,
    }
