"""Where a workflow run's wall time went: compute, model loading, process start-up, scheduling.

Reads what a finished run left behind: Snakemake's benchmark file of every job (its wall time and
peak RSS), each run's sidecar (``load_seconds`` and ``optimize_seconds``/``sample_seconds``), the
metrics files (``metric_timing``) and the Snakemake log (first and last timestamp = the run's wall
time). Start-up is a job's wall time minus what its own process timed (Python, torch and package
imports, argument parsing, writing); scheduling is the run's wall time times the cores minus
the jobs' wall time (cores left idle between jobs).

    snakemake --cores 2 && python bench/workflow_overhead.py --cores 2 [--preset quick]

Which runs a job made is read from the plan of the preset (``stylediff.workflow.plan``), not from file names.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from snakemake.utils import update_config  # noqa: E402

from stylediff.workflow.plan import build  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def run_wall_seconds(log: Path) -> float:
    stamps = [
        datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        for line in log.read_text().splitlines()
        if (m := STAMP.match(line.strip()))
    ]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else float("nan")


def job_sidecars(plan, experiment: str) -> dict[str, list[Path]]:
    """{job id (= its benchmark file's name): the sidecars of the runs it made}."""
    jobs: dict[str, list[Path]] = {}
    for run in plan.values.get(experiment, {}):
        jobs.setdefault(plan.job_of(experiment, run), []).append(Path(plan.output(experiment, run, ".json")))
    return jobs


def job_rows(plan, results: Path) -> list[dict]:
    rows = []
    sidecars = {experiment: job_sidecars(plan, experiment) for experiment in plan.values}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        experiment = tsv.parent.name
        with tsv.open() as handle:
            record = list(csv.DictReader(handle, delimiter="\t"))[-1]
        wall, rss = float(record["s"]), float(record["max_rss"])
        load = compute = 0.0
        if experiment == "metrics":
            kind = tsv.stem
            docs = [json.loads(p.read_text()) for p in (results / kind).glob("*.metrics.json")]
            load = max((d.get("metric_timing", {}).get("load_seconds", 0.0) for d in docs), default=0.0)
            compute = sum(d.get("metric_timing", {}).get("seconds", 0.0) for d in docs)
            experiment = f"metrics ({kind})"
        else:
            batches = set()  # a seed batch's sidecars all carry the batch's timing: count it once
            for sidecar in sidecars.get(experiment, {}).get(tsv.stem, []):
                if not sidecar.is_file():
                    continue
                doc = json.loads(sidecar.read_text())
                batch = doc.get("batch")
                if batch is not None and batch in batches:
                    continue
                batches.add(batch)
                timing = doc.get("timing", {})
                load += timing.get("load_seconds", 0.0)
                compute += timing.get("optimize_seconds", timing.get("sample_seconds", 0.0))
        rows.append(
            {
                "experiment": experiment,
                "wall": wall,
                "load": load,
                "compute": compute,
                "startup": max(0.0, wall - load - compute),
                "rss": rss,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="the run's preset (default: config.yaml's)")
    parser.add_argument("--results", type=Path, default=None, help="default: the preset's results_dir")
    parser.add_argument(
        "--log", type=Path, default=None, help="Snakemake log of the run (default: the newest in .snakemake/log)"
    )
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    log = args.log or max(Path(".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    config = yaml.safe_load(Path("config.yaml").read_text())
    if args.preset and args.preset != config["preset"]:  # as the Snakefile's `configfile:` lays the preset over it
        update_config(config, yaml.safe_load(Path("config", f"{args.preset}.yaml").read_text()))
    plan = build(config)
    results = args.results or Path(plan.results)
    rows = job_rows(plan, results)
    experiments = sorted({row["experiment"] for row in rows})
    print(
        f"{'experiment':<22} {'jobs':>5} {'job wall s':>10} {'compute':>8} {'loading':>8} {'start-up':>8} "
        f"{'peak RSS MiB':>12}"
    )
    totals = {"wall": 0.0, "compute": 0.0, "load": 0.0, "startup": 0.0}
    for experiment in experiments:
        sub = [row for row in rows if row["experiment"] == experiment]
        sums = {key: sum(row[key] for row in sub) for key in totals}
        for key in totals:
            totals[key] += sums[key]
        print(
            f"{experiment:<22} {len(sub):>5} {sums['wall']:>10.0f} {sums['compute']:>8.0f} {sums['load']:>8.0f} "
            f"{sums['startup']:>8.0f} {max(row['rss'] for row in sub):>12.0f}"
        )
    wall = run_wall_seconds(log)
    idle = max(0.0, wall * args.cores - totals["wall"])
    core_seconds = wall * args.cores
    print(
        f"{'all jobs':<22} {len(rows):>5} {totals['wall']:>10.0f} {totals['compute']:>8.0f} {totals['load']:>8.0f} "
        f"{totals['startup']:>8.0f} {max(row['rss'] for row in rows):>12.0f}"
    )
    print(f"run wall time {wall:.0f} s ({wall / 60:.1f} min) on {args.cores} cores = {core_seconds:.0f} core-seconds")
    print(
        "share of core-seconds: "
        + ", ".join(
            f"{name} {value / core_seconds:.0%}"
            for name, value in (
                ("compute", totals["compute"]),
                ("model loading", totals["load"]),
                ("process start-up", totals["startup"]),
                ("scheduling/idle", idle),
            )
        )
    )


if __name__ == "__main__":
    main()
