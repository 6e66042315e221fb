"""Calibrate the guidance-methods scale grids for the matched-fidelity comparison: does every (method,
style, seed) curve of LPIPS-to-the-unguided-sample over the method's scales cross LPIPS 0.1, 0.2 and 0.3,
with at least ``--min-inside`` points inside [0.1, 0.3] and no step wider than the comparison's MAX_GAP
where it crosses them?

It samples exactly what the workflow would (the findings preset's ``guidance_methods`` section, with the
overrides below, planned by :mod:`stylediff.workflow.plan`; each job's commands run by ``stylediff batch
sample``, split into ``--jobs`` processes), measures LPIPS (VGG) to the same-seed unguided sample as the
metrics job does (:meth:`stylediff.evaluation.scorer.Scorer.lpips_distances`), reads every curve at the
levels with :func:`stylediff.reporting.curves.read_curve` (the comparison's own rule) and prints one
line per curve and a verdict per method and style group. Samples already on disk are reused, so a second
call with another grid only samples the new scales.

    python bench/calibrate_grid.py                                   # the preset's grids, seed 0, 8 styles
    python bench/calibrate_grid.py --methods tfg,lgd --seeds 0,1     # one method after a change
    python bench/calibrate_grid.py --methods dps --scales dps=0.3,0.6,1.2 --scales dps@high_loss=0.03,0.06
    python bench/calibrate_grid.py --styles skimage:hubble_deep_field --group skimage:hubble_deep_field=none

Writes OUT/calibration.csv (one row per sample: method, group, style, seed, scale, lpips_vgg, seconds per
image) beside the samples; the unguided guidance loss per style (which style group it belongs in) is
printed first.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.io import read_json, write_text  # noqa: E402
from stylediff.reporting.curves import LEVELS, MAX_GAP, RENOISING, crossings, read_curve  # noqa: E402
from stylediff.workflow import plan as planning  # noqa: E402
from stylediff.workflow.experiments import lookup, method_entries, style_group  # noqa: E402
from stylediff.workflow.image_specs import is_skimage, materialise  # noqa: E402

EXPERIMENT = "guidance_methods"
INSIDE = (0.1, 0.3)
"""The LPIPS range the levels span: the grid should put points inside it on every curve."""


def preset(path: Path) -> dict:
    """config.yaml with the preset laid over it by Snakemake's own merge (what the Snakefile does)."""
    import yaml
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(config, yaml.safe_load(path.read_text()))
    return config


def style_spec(name: str, styles: list[str]) -> str:
    """A style given by its spec or by its short name (``brick`` for ``skimage:brick``)."""
    for spec in styles:
        if name in (spec, Path(spec).stem, spec.removeprefix("skimage:")):
            return spec
    return name


def overridden(config: dict, args) -> dict:
    """The preset's guidance_methods section with the command line's methods, styles, seeds, steps, scales
    and groups; no reference set (realism is not calibrated here)."""
    section = dict(config[EXPERIMENT])
    entries = method_entries(section)
    if args.methods:
        entries = {name: dict(entries.get(name) or {"name": name, "scales": []}) for name in args.methods.split(",")}
    for item in args.scales:
        key, _, values = item.partition("=")
        name, _, group = key.partition("@")
        scales = [float(v) for v in values.split(",")]
        entry = entries.setdefault(name, {"name": name, "scales": scales})
        if group:
            entry["scales_by_group"] = {**(entry.get("scales_by_group") or {}), group: scales}
        else:
            entry["scales"] = scales
    section["methods"] = list(entries.values())
    if args.styles:
        section["styles"] = [style_spec(s, section["styles"]) for s in args.styles.split(",")]
    groups = {name: list(styles) for name, styles in (section.get("style_groups") or {}).items()}
    for item in args.group:
        spec, _, group = item.partition("=")
        spec = style_spec(spec, section["styles"])
        groups = {name: [s for s in styles if s != spec] for name, styles in groups.items()}
        if group != "none":
            groups.setdefault(group, []).append(spec)
    section["style_groups"] = {name: styles for name, styles in groups.items() if styles}
    section["seeds"] = [int(s) for s in args.seeds.split(",")]
    section["steps"] = args.steps or section["steps"]
    section["reference_samples"] = 0
    return {**config, "experiments": [EXPERIMENT], EXPERIMENT: section, "results_dir": str(args.out)}


def pending_commands(plan, jobs: int) -> list[list[str]]:
    """The commands whose images are not on disk yet, dealt into up to ``jobs`` chunks (each chunk one
    process: Python, torch and the model load once per chunk)."""
    todo = []
    for job, runs in plan.jobs(EXPERIMENT).items():
        missing = {plan.output(EXPERIMENT, run) for run in runs if not Path(plan.output(EXPERIMENT, run)).is_file()}
        for command in plan.commands(EXPERIMENT, job):
            words = shlex.split(command)
            out = words[words.index("--out") + 1]
            stem = out.removesuffix(".png")
            if out in missing or any(path.startswith(f"{stem}__s") for path in missing):
                todo.append(command)
    return [todo[k::jobs] for k in range(jobs) if todo[k::jobs]]


def run_chunk(commands: list[str], threads: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "stylediff", "batch", "sample", *commands], check=True, env=env, cwd=ROOT)


def measure(plan, section: dict):
    """One row per guided run: its LPIPS (VGG) to the unguided sample of its seed, the seconds per image, and
    the guidance loss of every unguided sample."""
    import pandas as pd

    from stylediff.core.images import load_image
    from stylediff.evaluation.scorer import Scorer

    scorer = Scorer(lpips="true", heldout=False, text_score=False)
    spec = lookup(EXPERIMENT)
    rows = []
    for run, values in plan.values[EXPERIMENT].items():
        out = plan.output(EXPERIMENT, run)
        doc = read_json(Path(out).with_suffix(".json"))
        row = {
            "method": values["method"],
            "group": style_group(section, values["style"]) or "-",
            "style": values["style"],
            "seed": int(values["seed"]),
            "scale": float(values["scale"]),
            "guidance_loss": (doc.get("final_style_loss") or [float("nan")])[0],
            "seconds_per_image": (doc.get("timing") or {}).get("seconds_per_image"),
        }
        if values["method"] != "unguided":
            image, base = load_image(out), load_image(spec.baseline(plan, values))
            row["lpips_vgg"] = scorer.lpips_distances(image, base)["lpips_vgg"]
        rows.append(row)
    return pd.DataFrame(rows)


def curve_line(method: str, curve, min_inside: int) -> tuple[str, bool]:
    """One curve's points, how many fall inside [0.1, 0.3], its widest step there, and its reading at each
    level (the comparison's rule); ok when every level has a value and enough points are inside."""
    curve = curve.sort_values("scale")
    scales, lp = curve["scale"].to_numpy(), curve["lpips_vgg"].to_numpy()
    anchor = None if method in RENOISING else {}
    readings = {level: read_curve(scales, lp, {}, level, anchor).status for level in LEVELS}
    inside = int(((lp >= INSIDE[0]) & (lp <= INSIDE[1])).sum())
    full = ([0.0] if anchor is not None else []) + list(lp)
    steps = [b - a for a, b in zip(full, full[1:]) if max(a, b) >= INSIDE[0] and min(a, b) <= INSIDE[1]]
    ok = inside >= min_inside and all(s in ("interpolated", "exact") for s in readings.values())
    multiple = [f"{level:g}" for level in LEVELS if crossings(scales, lp, level) > 1]
    text = (
        " ".join(f"{s:g}:{v:.2f}" for s, v in zip(scales, lp))
        + f" | inside {inside} | widest step {max(steps, default=float('nan')):.2f} | "
        + " ".join(f"{level:g}:{status}" for level, status in readings.items())
        + (f" | crosses {', '.join(multiple)} more than once" if multiple else "")
    )
    return text, ok


def report(frame, min_inside: int) -> str:
    lines = ["unguided guidance loss per style (seeds averaged): which style group a style belongs in"]
    unguided = frame[frame["method"] == "unguided"]
    for style, loss in unguided.groupby("style")["guidance_loss"].mean().items():
        lines.append(f"  {style:40s} {loss:8.2f}")
    guided = frame[frame["method"] != "unguided"]
    lines.append(f"\ncurves (scale:LPIPS), points inside [{INSIDE[0]:g}, {INSIDE[1]:g}], reading at each level")
    verdicts = []
    for (method, group), part in guided.groupby(["method", "group"], sort=False):
        oks, insides = [], []
        for (style, seed), curve in part.groupby(["style", "seed"], sort=False):
            text, ok = curve_line(method, curve, min_inside)
            lines.append(f"  {method:12s} {group:9s} {Path(style).stem:22s} s{seed} {text}")
            oks.append(ok)
            lp = curve["lpips_vgg"]
            insides.append(int(((lp >= INSIDE[0]) & (lp <= INSIDE[1])).sum()))
        seconds = part["seconds_per_image"].mean()
        verdicts.append(
            f"  {method:12s} {group:9s} {sum(oks)} of {len(oks)} curves ok; points inside min {min(insides)}, "
            f"mean {sum(insides) / len(insides):.1f}; {seconds:.2f} s per image"
        )
    lines += [
        f"\nper method and group (ok: a value at every level, >= {min_inside} points inside, steps <= "
        f"{MAX_GAP:g} where it crosses)"
    ] + verdicts
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "findings.yaml")
    parser.add_argument("--methods", default="", help="comma-separated (default: the preset's)")
    parser.add_argument("--styles", default="", help="specs or short names (default: the preset's)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--scales", action="append", default=[], metavar="METHOD[@GROUP]=S1,S2,…")
    parser.add_argument("--group", action="append", default=[], metavar="STYLE=GROUP|none")
    parser.add_argument("--min-inside", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="sampling processes at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "calibration")
    args = parser.parse_args()

    config = overridden(preset(args.config), args)
    plan = planning.build(config)
    for style in config[EXPERIMENT]["styles"]:
        if is_skimage(style) and not Path(plan.image(style)).is_file():
            materialise(style, plan.image(style))
    chunks = pending_commands(plan, args.jobs)
    print(
        f"{len(plan.values[EXPERIMENT])} runs, {sum(map(len, chunks))} commands to sample in {len(chunks)} processes",
        flush=True,
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda chunk: run_chunk(chunk, args.threads), chunks))
    frame = measure(plan, config[EXPERIMENT])
    write_text(args.out / "calibration.csv", frame.to_csv(index=False))
    print(report(frame, args.min_inside), end="")


if __name__ == "__main__":
    main()
