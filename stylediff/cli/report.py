"""The workflow's verbs: ``plan``, ``metrics``, ``aggregate``, ``figures`` and ``findings``.

``stylediff metrics`` scores one output, or a batch of outputs in one process (``--image``,
``--reference``, ``--baseline`` and ``--out`` take several paths, paired by position; one
reference or baseline serves them all). Batching matters: loading torchmetrics, VGG-19 and both
LPIPS networks costs ~10 s of CPU, scoring one small image well under one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..core.errors import ConfigError
from ..networks.vgg19_layers import POOLINGS, WEIGHT_SOURCES
from ..workflow.experiments import EXPERIMENTS, METRIC_KINDS
from . import args as cli


def _paired(name: str, values: list[str] | None, count: int, required: bool) -> list[str | None]:
    if not values:
        if required:
            raise ConfigError(f"--{name} is required")
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ConfigError(f"--{name} got {len(values)} paths for {count} --image paths: give one, or one per image")
    return values


def run_plan(args) -> str | None:
    from ..workflow import plan

    if args.config_json:
        config = json.loads(args.config_json)
    else:
        import yaml
        from snakemake.utils import update_config

        config = {}
        for path in map(Path, args.configfile):  # laid over each other as Snakemake's --configfile does
            if not path.is_file():
                raise ConfigError(f"config file not found: {path} (run from the repository root, or give --configfile)")
            update_config(config, yaml.safe_load(path.read_text()) or {})
    built = plan.build(config)
    runs = built.runs
    if args.experiment:
        runs = runs[runs["experiment"] == args.experiment].dropna(axis=1, how="all")
    if args.out:
        from ..core.io import write_text

        write_text(args.out, runs.to_csv(index=False))
        return f"{cli.wrote(args.out)} ({len(runs)} runs)"
    counts = [(name, len(group), len(built.jobs(name))) for name, group in runs.groupby("experiment", sort=False)]
    if args.summary_md:  # one line the docs include (docs/generated/, written by tools/docs_numbers.py)
        parts = ", ".join(f"{name} {n} in {jobs}" for name, n, jobs in counts)
        print(f"{sum(c[1] for c in counts)} runs in {sum(c[2] for c in counts)} run jobs ({parts})")
        return None
    for name, n, jobs in counts:
        print(f"{name}: {n} runs in {jobs} jobs")


def run_metrics(args) -> str:
    from ..core.io import ensure_parent, write_json
    from ..core.provenance import peak_rss_mb, versions
    from ..evaluation.document import image_metrics
    from ..evaluation.metrics import column_label, higher_is_better
    from ..evaluation.scorer import Scorer
    from ..nst.losses import STYLE_LOSSES

    images = args.image
    if len(args.out) != len(images):
        raise ConfigError(f"--out got {len(args.out)} paths for {len(images)} --image paths: give one per image")
    references = _paired("reference", args.reference, len(images), required=True)
    baselines = _paired("baseline", args.baseline, len(images), required=False)
    reference_sets = _paired("reference-set", args.reference_set, len(images), required=False)
    for out in args.out:
        ensure_parent(out)
    start = time.perf_counter()
    device = cli.resolve_device(args.device)
    scorer = Scorer(
        weights=args.weights,
        pooling=args.pooling,
        device=str(device),
        lpips=args.lpips,
        heldout=args.heldout,
        text_score=args.text_score,
    )
    load = time.perf_counter() - start
    for image, reference, baseline, reference_set, out in zip(images, references, baselines, reference_sets, args.out):
        doc = image_metrics(scorer, args.kind, image, reference, baseline, args.reference_size, reference_set)
        # what the torch-free tables and figures need to know of the registries: labels, directions, loss names
        doc["metric_labels"] = {column: column_label(column) for column in doc["metrics"]}
        doc["higher_is_better"] = [column for column in doc["metrics"] if higher_is_better(column)]
        doc["style_losses"] = list(STYLE_LOSSES)
        doc["metric_weights"] = scorer.provenance()
        doc["metric_versions"] = versions()
        doc["metric_timing"] = {
            "load_seconds": load,
            "seconds": doc.pop("metric_seconds"),
            "peak_rss_mb": peak_rss_mb(),
        }
        write_json(out, doc)
    return (
        cli.wrote(*args.out) if len(args.out) <= 3 else f"wrote {len(args.out)} files, {args.out[0]} … {args.out[-1]}"
    )


def run_aggregate(args) -> str:
    from ..reporting.tables import aggregate

    frame = aggregate(args.experiment, args.plan, args.metrics, args.out, args.summary)
    return f"{cli.wrote(args.out, *([args.summary] if args.summary else []))} ({len(frame)} runs)"


def run_figures(args) -> str:
    from pathlib import Path

    from ..reporting.figures import make_figures

    def pngs() -> dict[str, int]:
        return {path.name: path.stat().st_mtime_ns for path in Path(args.out_dir).glob("*.png")}

    before = pngs()
    make_figures(args.experiment, args.table, args.out_dir)
    made = sorted(name for name, mtime in pngs().items() if before.get(name) != mtime)  # written: new mtime
    return f"wrote {len(made)} figures to {args.out_dir}" + (f" ({', '.join(made)})" if len(made) <= 4 else "")


def _tables(items: list[str]) -> dict[str, str]:
    tables = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--table {item!r}: expected EXPERIMENT=CSV, e.g. inversion=results/tables/inversion.csv")
        tables[name] = path
    return tables


def run_findings(args) -> str:
    from ..reporting.findings import write_findings

    write_findings(_tables(args.table), args.out, args.readme, args.preset)
    return cli.wrote(args.out) + (f" and the results section of {args.readme}" if args.readme else "")


def run_publish(args) -> str:
    from ..reporting.publish import publish

    written = publish(
        args.files, args.to, _tables(args.table or []), args.page, args.readme, args.preset, args.captions_in
    )
    return cli.wrote(*written) if written else f"{args.to} already up to date"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="list the runs a workflow config asks for",
        description="The runs a workflow config asks for: counts per experiment, or one "
        "experiment's table of runs (--out).",
    )
    p.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="workflow config files, each laid over the ones before as Snakemake's --configfile does "
        "(default config.yaml; a preset: config.yaml config/full.yaml)",
    )
    p.add_argument("--config-json", default=None, help="a merged config as JSON (what the workflow passes)")
    p.add_argument("--experiment", choices=list(EXPERIMENTS), default=None)
    p.add_argument("--out", default=None, help="CSV of the runs, one row per run (default: print counts)")
    p.add_argument(
        "--summary-md",
        action="store_true",
        help="print the counts as one Markdown line: total runs and run jobs, then per experiment",
    )
    p.set_defaults(func=run_plan)

    p = sub.add_parser(
        "metrics",
        help="score outputs against their references",
        description="Score outputs against their references: style distances, layout copy, "
        "LPIPS, PSNR, SSIM and realism, as the output's kind needs; one metrics "
        "JSON per output.",
    )
    p.add_argument("--kind", required=True, choices=METRIC_KINDS, help="what the outputs are")
    p.add_argument("--image", required=True, nargs="+", help="output PNG(s); each one's sidecar is read too")
    p.add_argument(
        "--reference",
        required=True,
        nargs="+",
        help="inversion: the original image; texture/transfer/guidance: the style image",
    )
    p.add_argument(
        "--baseline",
        nargs="+",
        default=None,
        help="transfer: the content image; guidance: the unguided (scale 0) sample",
    )
    p.add_argument(
        "--reference-size",
        type=cli.positive_int,
        default=None,
        help="longest side to read the style at (default: the run's --style-size/--size)",
    )
    p.add_argument("--out", required=True, nargs="+", help="metrics JSON per image (OUT.metrics.json)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--weights", choices=WEIGHT_SOURCES, default="caffe", help="VGG-19 weights of the style metrics")
    p.add_argument("--pooling", choices=POOLINGS, default="max")
    p.add_argument(
        "--heldout",
        choices=("auto", "true", "false"),
        default="auto",
        help="held-out style metrics (VGG-16, AlexNet, CLIP-B/32 Gram, CSD): auto computes those whose "
        "weights are present and skips the others with one line; true fails without them",
    )
    p.add_argument(
        "--text-score",
        choices=("auto", "true", "false"),
        default="auto",
        help="guidance: TFG's CLIP text score (CLIP ViT-B/32, to the run's prompt) of runs with a --prompt: auto "
        "computes it when the weights are present (stylediff weights fetch --text-score) and says once when not",
    )
    p.add_argument(
        "--lpips",
        choices=("auto", "true", "false"),
        default="auto",
        help="LPIPS: auto computes it when its backbone files are available (downloading them if "
        "online) and skips it otherwise, saying so; true fails fast without them; false skips it",
    )
    p.add_argument(
        "--reference-set",
        nargs="+",
        default=None,
        help="guidance: the batch sidecar (OUT.json of stylediff sample --seeds …) of the model's own "
        "unguided samples (other seeds), for the realism metric; one, or one per image",
    )
    p.set_defaults(func=run_metrics)

    p = sub.add_parser(
        "aggregate",
        help="collect an experiment's metrics into a table",
        description="Collect an experiment's metrics files into a tidy CSV (one row per "
        "run) and optionally a markdown summary (mean and std over seeds).",
    )
    p.add_argument("--experiment", required=True, choices=list(EXPERIMENTS))
    p.add_argument(
        "--plan", required=True, help="the experiment's runs (written by stylediff plan --out): axes per run"
    )
    p.add_argument("--metrics", required=True, nargs="+", help="the runs' *.metrics.json files")
    p.add_argument("--out", required=True, help="tidy CSV, one row per run")
    p.add_argument("--summary", default=None, help="markdown summary (mean ± std over seeds)")
    p.set_defaults(func=run_aggregate)

    p = sub.add_parser("figures", help="draw an experiment's image grids and curves from its table")
    p.add_argument("--experiment", required=True, choices=list(EXPERIMENTS))
    p.add_argument("--table", required=True, help="the CSV written by stylediff aggregate")
    p.add_argument("--out-dir", required=True, help="folder for the PNGs")
    p.set_defaults(func=run_figures)

    p = sub.add_parser(
        "findings",
        help="write the experiments' findings page from their tables",
        description="The experiments' claims as statistics, from their tables: the findings "
        "page (docs/results.md when published) and optionally the README's "
        "results section.",
    )
    p.add_argument("--table", required=True, nargs="+", help="EXPERIMENT=CSV for each experiment's table")
    p.add_argument("--out", required=True, help="markdown page (figure links relative to its folder)")
    p.add_argument("--readme", default=None, help="also replace the README's results section (between its markers)")
    p.add_argument("--preset", default=None, help="preset name, quoted in the text")
    p.set_defaults(func=run_findings)

    p = sub.add_parser(
        "publish",
        help="copy a run's figures into the committed report folder",
        description="The one step that writes tracked files: copy a run's summaries and figures "
        "into the committed folder (report/); with --table, also the tables, the "
        "results page (--page docs/results.md) and the README's short results table "
        "(--readme README.md). The workflow target: snakemake publish --cores 2.",
    )
    p.add_argument("--files", required=True, nargs="+", help="the run's summaries and figures (RESULTS/report/…)")
    p.add_argument("--to", required=True, help="committed folder to copy them into, e.g. report")
    p.add_argument(
        "--table",
        nargs="+",
        default=None,
        help="EXPERIMENT=CSV for each experiment's table (copied to TO/tables; needed for --page and --readme)",
    )
    p.add_argument("--page", default=None, help="write the results page here, e.g. docs/results.md")
    p.add_argument("--readme", default=None, help="splice the short results table into this README between its markers")
    p.add_argument("--preset", default=None, help="preset name, quoted in the text")
    p.add_argument(
        "--captions-in",
        nargs="+",
        default=None,
        help="Markdown files whose <!-- caption: FIGURE --> markers get the published figures' captions",
    )
    p.set_defaults(func=run_publish)
