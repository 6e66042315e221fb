"""Tables of the experiment workflow: one tidy row per run (the plan's axis columns joined with the
run's metrics on its output path, so nothing parses file names), written as CSV, and a markdown
summary (mean ± std over seeds). pandas is imported inside the functions (the CLI's help needs none)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.io import read_json, write_json, write_text
from ..core.provenance import TIMING_LABELS

SUMMARY_METRICS = {
    "inversion": ("feature_error", "psnr", "ssim", "lpips_vgg", "lpips_alex", "wall_seconds", "peak_rss_mb"),
    "texture": (
        "gram_dist_mean",
        "heldout_*",
        "{loss}_mean",
        "layout_copy",
        "lpips_vgg",
        "wall_seconds",
        "peak_rss_mb",
    ),
    "transfer": (
        "gram_dist_mean",
        "heldout_*",
        "content_error",
        "layout_copy",
        "lpips_vgg",
        "ssim",
        "wall_seconds",
        "peak_rss_mb",
    ),
    "guidance": (
        "gram_dist_mean",
        "heldout_*",
        "gram_mean",
        "sliced_wasserstein_mean",
        "lpips_vgg",
        "lpips_alex",
        "wall_seconds",
        "peak_rss_mb",
    ),
    "guidance_methods": (
        "gram_dist_mean",
        "heldout_*",
        "clip_text_score",
        "lpips_vgg",
        "ssim",
        "realism",
        "layout_copy",
        "seconds_per_image",
        "unet_evaluations",
        "objective_evaluations",
    ),
}
"""Columns of each summary; ``{loss}_mean`` stands for every registered style loss, ``heldout_*`` for the
held-out style metrics the runs report (:mod:`stylediff.evaluation.heldout`)."""
"""Labels of the timing columns (from the runs' sidecars, not from a metric)."""


def summary_metrics(experiment: str, style_losses: Sequence[str], columns: Sequence[str] = ()) -> list[str]:
    """The summary's columns; ``style_losses`` as the metrics job recorded them (the registry is not
    imported here: it needs torch, which would double this job's start-up); ``heldout_*`` expands to the
    table's ``columns`` of that prefix."""
    out = []
    for name in SUMMARY_METRICS[experiment]:
        if name.endswith("*"):
            out += [column for column in columns if column.startswith(name[:-1])]
        else:
            out += [name.format(loss=loss) for loss in style_losses] if "{loss}" in name else [name]
    return out


def _model_label(doc: dict) -> str:
    weights = (doc.get("run") or {}).get("weights") or {}
    if "network" in weights:  # a run on another feature network (`--network`)
        return str(weights["network"].get("name"))
    vgg = weights.get("vgg19") or {}
    return f"VGG-19 ({vgg.get('source', 'caffe')} weights)"


def _run_row(experiment: str, run, doc: dict, axes: list[str]) -> dict[str, Any]:
    """One run's row: its plan axes, what its sidecar says about the model, size and steps, and its
    metrics and timings."""
    config = (doc.get("run") or {}).get("config") or {}
    row: dict[str, Any] = {"experiment": experiment, "run": run["run"], **{axis: run[axis] for axis in axes}}
    if "model" in row:
        row["model_slug"] = row["model"]
        row["model"] = str(config.get("model") or row["model"])
    else:
        row["model"] = _model_label(doc)
    if "layers" in row:
        row["n_layers"] = len(str(row["layers"]).split("-"))
        row["deepest_layer"] = str(row["layers"]).split("-")[-1]
    row.update({key: config[key] for key in ("size", "steps") if key in config})
    row.update(
        {
            "output": doc.get("image"),
            "reference": doc.get("reference"),
            "baseline": doc.get("baseline"),
            "device": (doc.get("run") or {}).get("device"),
            "final_loss": doc.get("final_loss"),
        }
    )
    row.update(doc.get("metrics") or {})
    row.update(doc.get("timing") or {})
    return row


def table(experiment: str, plan, metrics_files: Sequence[str | os.PathLike]):
    """The tidy table: the plan's rows of ``experiment`` (a DataFrame, or a CSV written by
    ``stylediff plan``), each joined with the metrics document of its output."""
    import pandas as pd

    runs = pd.read_csv(plan) if isinstance(plan, (str, os.PathLike)) else plan
    runs = runs[runs["experiment"] == experiment].dropna(axis=1, how="all")
    docs = {}
    for path in metrics_files:
        doc = read_json(path)
        docs[str(doc.get("image"))] = doc
    axes = [column for column in runs.columns if column not in ("experiment", "run", "job", "output")]
    rows = []
    for _, run in runs.iterrows():
        doc = docs.get(str(run["output"]))
        if doc is None:
            raise ConfigError(f"no metrics file scores {run['output']} (run {run['run']})")
        rows.append(_run_row(experiment, run, doc, axes))
    frame = pd.DataFrame(rows)
    for column in ("seed", "scale"):
        if column in frame:
            frame[column] = frame[column].astype(int if column == "seed" else float)
    labels: dict[str, str] = {}
    for doc in docs.values():
        labels.update(doc.get("metric_labels") or {})
    style_losses = next((doc["style_losses"] for doc in docs.values() if doc.get("style_losses")), [])
    frame.attrs.update(labels=labels, style_losses=list(style_losses))
    return frame


def table_sidecar(table_path: str | os.PathLike) -> str:
    """The JSON beside a table: what made it and its columns' labels (``stylediff figures`` reads them)."""
    return os.fspath(Path(table_path).with_suffix(".json"))


def read_table(table_path: str | os.PathLike):
    """A table written by :func:`aggregate`, with its sidecar's labels and style losses as ``frame.attrs``."""
    import pandas as pd

    frame = pd.read_csv(table_path)
    sidecar = Path(table_sidecar(table_path))
    if sidecar.is_file():
        doc = read_json(sidecar)
        frame.attrs.update(labels=doc.get("labels") or {}, style_losses=doc.get("style_losses") or [])
    return frame


def recorded_label(frame, column: str) -> str:
    """The label the metrics job recorded for ``column`` in the table (from
    :func:`stylediff.evaluation.metrics.column_label`, which needs torch); a timing column's label, or the
    column's name, when there is none."""
    return (frame.attrs.get("labels") or {}).get(column) or TIMING_LABELS.get(column, column)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) >= 1000 or abs(value) < 1e-3 else f"{value:.4g}"


def summary_markdown(experiment: str, frame, table_path: str | os.PathLike | None = None) -> str:
    """Markdown: mean ± std over seeds of the key metrics, one row per combination of the other axes."""
    from ..workflow.experiments import lookup

    spec = lookup(experiment)
    axes = [axis.name for axis in spec.axes if axis.name != "seed" and axis.name in frame]
    metrics = [
        m
        for m in summary_metrics(experiment, frame.attrs.get("style_losses", ()), list(frame.columns))
        if m in frame.columns
    ]
    models = ", ".join(dict.fromkeys(frame["model"].astype(str))) if "model" in frame else "?"
    notes = []
    if "lpips_vgg" not in frame:
        notes.append("LPIPS was skipped (no backbone files; see docs/weights.md, LPIPS backbones).")
    grouped = frame.groupby(axes, sort=False, dropna=False)
    means = grouped[metrics].mean()
    stds = grouped[metrics].std(ddof=1)
    counts = grouped.size()
    cells = means.copy().astype(object)
    for metric in metrics:
        cells[metric] = [
            _fmt(m) if math.isnan(s) else f"{_fmt(m)} ± {_fmt(s)}" for m, s in zip(means[metric], stds[metric])
        ]
    cells.insert(0, "n", counts)
    lines = [
        f"## {spec.title}",
        "",
        f"Model: {models}. {len(frame)} runs; mean ± std over seeds (n = seeds per row; no ± when n = 1). "
        f"Full table: `{table_path or f'results/tables/{experiment}.csv'}`.",
        "",
        *notes,
        *([""] if notes else []),
    ]
    return "\n".join(lines) + cells.reset_index().to_markdown(index=False, disable_numparse=True) + "\n"


def with_shared_baselines(frame):
    """Guidance rows plus, for every non-default normalisation, a copy of the unguided (scale 0) rows
    labelled with it: each normalisation's curve starts from the one unguided sample they share."""
    import pandas as pd

    if "normalization" not in frame or "scale" not in frame:
        return frame
    default = "per_step"
    unguided = frame[(frame["scale"] == 0) & (frame["normalization"] == default)]
    copies = [
        unguided.assign(normalization=value) for value in dict.fromkeys(frame["normalization"]) if value != default
    ]
    return pd.concat([frame, *copies], ignore_index=True) if copies else frame


def aggregate(
    experiment: str,
    plan,
    metrics_files: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    summary: str | os.PathLike | None = None,
):
    """Write the tidy table of ``experiment`` (one row per run) and optionally its markdown summary."""
    if not metrics_files:
        raise ConfigError(f"no metrics files given for {experiment}")
    frame = table(experiment, plan, metrics_files)
    write_text(out_csv, frame.to_csv(index=False))
    write_json(
        table_sidecar(out_csv),
        {
            "experiment": experiment,
            "plan": str(plan) if isinstance(plan, (str, os.PathLike)) else None,
            "metrics_files": len(metrics_files),
            **frame.attrs,
        },
    )
    if summary is not None:
        write_text(summary, summary_markdown(experiment, frame, out_csv))
    return frame
