# Common helpers (no rules here): the schema validation, the plan (stylediff.workflow.plan: one row per run, its
# config checks) and the input functions and command strings the rules use.
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The checkout's package plans the runs, whether or not it is installed (also with --directory elsewhere);
# the jobs run the installed `stylediff` command (the conda environment's with --sdm conda).
BASEDIR = str(Path(workflow.basedir).resolve())
if BASEDIR not in sys.path:
    sys.path.insert(0, BASEDIR)

from stylediff.workflow import experiments, plan
from stylediff.reporting.figures import caption_name
from stylediff.core.errors import StylediffError
from stylediff.networks.vgg19_layers import min_input_size


def config_error(message):
    raise WorkflowError(f"config: {message}")


def validate_config():
    """snakemake.utils.validate against the schema; on failure, one message naming the key, the
    bad value and the allowed values (jsonschema's best match, without the schema dump)."""
    try:
        validate(config, "../schemas/config.schema.yaml")
    except WorkflowError:
        import jsonschema
        import yaml

        schema = yaml.safe_load((Path(BASEDIR) / "schemas" / "config.schema.yaml").read_text())
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
        if error is None:
            raise
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        hint = f" ({key}: {hint})" if hint else ""
        raise WorkflowError(f"invalid config value at {key}: {error.message}{hint} [schemas/config.schema.yaml]") from None


validate_config()
try:
    plan.check(config, min_size=min_input_size)  # what the schema cannot say: images exist, names differ, sizes
    PLAN = plan.build(config)
except StylediffError as exc:
    config_error(str(exc))
EXPERIMENTS = list(config["experiments"])
RESULTS, REPORT = PLAN.results, PLAN.report
PUBLISH = str(config.get("publish_dir", "report")).rstrip("/")
THREADS = config["threads"]
STYLEDIFF = config.get("stylediff") or "stylediff"
"""The command running the CLI: the installed `stylediff` (or the configured command)."""
DATASETS = "python -m stylediff.workflow.image_specs"
THREAD_ENV = f"OMP_NUM_THREADS={THREADS} MKL_NUM_THREADS={THREADS}"
LPIPS_ENV = f"TORCH_HOME={shlex.quote(str(config['lpips_torch_home']))}" if config.get("lpips_torch_home") else ""


PRIORITY = {"image": 100, "sampling": 50, "texture": 45, "transfer": 40, "invert": 35, "metrics": 20}
"""Snakemake runs ready jobs of higher priority first (the rest: 0). The scheduling that keeps both cores
busy to the end: the cheap image jobs that gate the optimisation runs first; the sampling jobs next,
because `gpu=1` runs them one at a time and their chain is the longest; then the longest CPU jobs first
(a texture job runs 20 syntheses, a transfer job 4, an inversion job 6 short ones); the metrics before
any table or figure, so that the last jobs of a run are the short ones."""


def gpu(experiment):
    """GPU jobs declare gpu=1: sampling always, optimisation unless the config says device: cpu."""
    return 1 if experiments.lookup(experiment).gpu_always or config["device"] != "cpu" else 0


# ----------------------------------------------------------------------------- input functions
def job_inputs(experiment):
    return lambda wildcards: PLAN.job_inputs(experiment, PLAN.job_id(experiment, wildcards))


def job_runs(experiment):
    """Params function: the job's runs as quoted argument strings of the experiment's verb."""
    return lambda wildcards: " ".join(shlex.quote(line) for line in PLAN.commands(
        experiment, PLAN.job_id(experiment, wildcards)))


def plan_config(experiment):
    """The config keys the experiment's plan depends on (a change reruns its plan table)."""
    keys = ("device", "weights", "pooling", "results_dir", experiment)
    subset = {"experiments": [experiment], **{key: config[key] for key in keys if key in config}}
    return shlex.quote(json.dumps(subset, sort_keys=True))


def metrics_references(experiment):
    return sorted(set(sum(PLAN.references(experiment), [])))


def metrics_args(experiment):
    refs, bases = PLAN.references(experiment)
    parts = ["--image", *PLAN.outputs(experiment), "--reference", *refs]
    if bases:
        parts += ["--baseline", *bases]
    realism = PLAN.realism_references(experiment)
    if realism:
        parts += ["--reference-set", *realism]
    parts += ["--out", *PLAN.outputs(experiment, ".metrics.json")]
    return " ".join(shlex.quote(part) for part in parts)


def figure_outputs(experiment):
    """The experiment's figures, each registered with the caption file `stylediff figures` writes beside it
    from the figure's own parameters (an absolute path: report() resolves a relative one against rules/)."""
    return [report(f"{REPORT}/{name}", caption=os.path.abspath(f"{REPORT}/{caption_name(name)}"),
                   category=experiments.lookup(experiment).category) for name in PLAN.figures(experiment)]


def caption_outputs(experiment):
    return [f"{REPORT}/{caption_name(name)}" for name in PLAN.figures(experiment)]


REPORT_FILES = [
    f"{REPORT}/{name}"
    for experiment in EXPERIMENTS
    for name in [f"{experiment}_summary.md"] + PLAN.figures(experiment) + list(map(caption_name, PLAN.figures(experiment)))
]
"""What `snakemake publish` copies into PUBLISH: every summary, figure and figure caption."""
ALL_TARGETS = [
    target
    for experiment in EXPERIMENTS
    for target in PLAN.outputs(experiment) + PLAN.outputs(experiment, ".metrics.json")
    + [f"{RESULTS}/tables/{experiment}.csv"]
] + REPORT_FILES + ([f"{REPORT}/findings.md"] if config.get("findings") else [])
"""Every run's image and metrics (so a deleted one is made again), every table, summary and figure."""


wildcard_constraints:
    head="[A-Za-z0-9_-]+",
    tail="[A-Za-z0-9_-]+",
    name="[A-Za-z0-9_-]+",
    experiment="|".join(experiments.EXPERIMENTS),
