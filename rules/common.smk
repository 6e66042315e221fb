# Common helpers (no rules here): the preset, config validation, the run table of every
# experiment, paths and the commands the rules run.
import itertools
import shlex
import sys
from pathlib import Path

from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

# The checkout's package, whether or not it is installed (also with --directory elsewhere).
BASEDIR = str(Path(workflow.basedir).resolve())
if BASEDIR not in sys.path:
    sys.path.insert(0, BASEDIR)

from stylediff.datasets import check_spec, image_slug, resolve_image
from stylediff.errors import StylediffError
from stylediff.report import (AXES, DEFAULT_PARTS, canonical_values, encode_axis, figure_files, model_slug, run_id,
                              split_run, unique)


def config_error(message):
    raise WorkflowError(f"config: {message}")


def apply_preset():
    """--config preset=NAME overlays config/NAME.yaml; the command line's own --configfile and
    --config values are applied again on top, so they still win over the preset."""
    preset = config.get("preset", "quick")
    folder = Path(BASEDIR) / "config"
    preset_file = folder / f"{preset}.yaml"
    settings = workflow.config_settings
    if preset_file.is_file():
        merged = dict(config)
        update_config(merged, load_configfile(str(preset_file)))
        update_config(merged, dict(getattr(settings, "overwrite_config", None) or {}))
        config.clear()
        config.update(merged)
    elif preset != "quick" and "preset" in dict(getattr(settings, "config", None) or {}):
        known = ["quick"] + sorted(path.stem for path in folder.glob("*.yaml"))
        config_error(f"unknown preset {preset!r}; valid presets: {', '.join(known)} "
                     "(or pass a complete config with --configfile)")


def validate_config():
    """snakemake.utils.validate against the schema; on failure, one message naming the key, the
    bad value and the allowed values (jsonschema's best match, without the schema dump)."""
    schema_file = Path(BASEDIR) / "schemas" / "config.schema.yaml"
    try:
        validate(config, "../schemas/config.schema.yaml")
    except WorkflowError:
        import jsonschema
        import yaml

        schema = yaml.safe_load(schema_file.read_text())
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
        if error is None:
            raise
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        raise WorkflowError(f"invalid config value at {key}: {error.message}"
                            + (f" ({key}: {hint})" if hint else "")
                            + " [schemas/config.schema.yaml]") from None


apply_preset()
validate_config()

EXPERIMENTS = list(config["experiments"])
RESULTS = config.get("results_dir", "results").rstrip("/")
"""Where the runs, tables and logs go (each preset has its own, so presets never overwrite each other)."""
REPORT = config.get("report_dir", "report").rstrip("/")
"""Where the summaries and figures go (committed: the README embeds them)."""
GPU = 0 if config["device"] == "cpu" else 1
THREADS = config["threads"]
PYTHON = shlex.quote(sys.executable)


def python_entry(module, function="main"):
    """Shell command running ``module.function`` of this checkout with Snakemake's Python."""
    code = f"import sys; sys.path.insert(0, {BASEDIR!r}); from {module} import {function}; sys.exit({function}())"
    return f"{PYTHON} -c {shlex.quote(code)}"


STYLEDIFF = config.get("stylediff") or python_entry("stylediff.cli")
DATASETS = python_entry("stylediff.datasets")
THREAD_ENV = f"OMP_NUM_THREADS={THREADS} MKL_NUM_THREADS={THREADS}"
RUN = f"{THREAD_ENV} {STYLEDIFF}"
"""Prefix of every optimisation/sampling command (one thread per job unless configured)."""
VGG = f"--device {config['device']} --weights {config['weights']} --pooling {config['pooling']}"

AXIS_KEYS = {
    "inversion": {"image": "images", "layer": "layers", "pooling": "poolings", "seed": "seeds"},
    "texture": {"style": "styles", "layers": "layer_sets", "loss": "losses", "seed": "seeds"},
    "transfer": {"content": "contents", "style": "styles", "loss": "losses", "seed": "seeds"},
    "guidance": {"model": "models", "style": "styles", "loss": "losses", "layers": "layer_sets",
                 "window": "windows", "mode": "modes", "normalization": "normalizations", "scale": "scales",
                 "seed": "seeds"},
}
CATEGORIES = {"inversion": "Feature inversion", "texture": "Texture synthesis",
              "transfer": "Style transfer", "guidance": "Guided diffusion"}


def min_input_size(layers):
    """Smallest image side at which every layer still has a pixel: 2^(pools before it).
    (stylediff.vgg.min_input_size, without importing torch into every Snakemake start.)"""
    pools = [int(name[4]) if name.startswith("pool") else int(name.split("_")[0][-1]) - 1 for name in layers]
    return 2 ** max(pools)


def check_images(experiment, section):
    for axis in ("image", "style", "content"):
        key = AXIS_KEYS[experiment].get(axis)
        if key is None:
            continue
        slugs = {}
        for spec in section[key]:
            try:
                check_spec(spec)
            except StylediffError as exc:
                config_error(f"{experiment}.{key}: {exc}")
            slug = image_slug(spec)
            if slug in slugs:
                config_error(f"{experiment}.{key}: {slugs[slug]!r} and {spec!r} have the same name {slug!r}")
            slugs[slug] = spec


def check_config():
    for experiment in EXPERIMENTS:
        if experiment not in config:
            config_error(f"experiment {experiment!r} is listed in 'experiments' but has no {experiment}: section")
        section = config[experiment]
        check_images(experiment, section)
        layer_lists = {"inversion": [section.get("layers", [])],
                       "texture": section.get("layer_sets", []),
                       "transfer": [section.get("layers", []) + [section.get("content_layer", "relu4_2")]],
                       "guidance": []}[experiment]
        for layers in layer_lists:
            need = min_input_size(layers)
            if section["size"] < need:
                config_error(f"{experiment}.size {section['size']} is below the {need} px that "
                             f"{', '.join(layers)} need")
        if experiment == "guidance":
            slugs = {}
            for model in section["models"]:
                slug = model_slug(model)
                if slug in slugs:
                    config_error(f"guidance.models: {slugs[slug]!r} and {model!r} have the same name {slug!r}")
                slugs[slug] = model


def axis_values(experiment, axis):
    """The configured values of one axis; inversion.poolings defaults to the global pooling and
    guidance.normalizations to per_step."""
    section = config[experiment]
    key = AXIS_KEYS[experiment][axis]
    if key == "poolings" and not section.get(key):
        return [config["pooling"]]
    if key == "normalizations" and not section.get(key):
        return [DEFAULT_PARTS["normalization"]]
    return section[key]


def build_runs(experiment):
    """{run id: {axis: value}} for the product of the experiment's axes, in config order; combinations
    that cannot differ (the normalisation of an unguided sample) are one run."""
    axes = AXES[experiment]
    runs = {}
    for combo in itertools.product(*(axis_values(experiment, axis) for axis in axes)):
        values = canonical_values(experiment, dict(zip(axes, combo)))
        run = run_id(experiment, values)
        if runs.get(run, values) != values:
            config_error(f"{experiment}: two combinations of axes give the run id {run!r}; make the values distinct")
        runs[run] = values
    return runs


check_config()
RUNS = {experiment: build_runs(experiment) for experiment in EXPERIMENTS}


# ------------------------------------------------------------------------------ paths, params
def image_path(spec):
    """The file of an image spec (skimage:NAME images are written by rule image)."""
    return resolve_image(spec, f"{RESULTS}/images")


def batched(experiment, values):
    """Unguided samples (scale 0) are jobs of their own: one serves every normalisation."""
    return not (experiment == "guidance" and float(values["scale"]) == 0)


def build_batches(experiment):
    """{(head, tail): [run ids]} of the batched runs; every batch has one run per batched part."""
    batches = {}
    for run, values in RUNS[experiment].items():
        if batched(experiment, values):
            head, _, tail = split_run(experiment, run)
            batches.setdefault((head, tail), []).append(run)
    return batches


BATCHES = {experiment: build_batches(experiment) for experiment in EXPERIMENTS}


def batch_outputs(experiment, suffix):
    """Output patterns of a batch job: one file per batched part, around the {head} and {tail} wildcards."""
    parts = unique(split_run(experiment, run)[1] for runs in BATCHES[experiment].values() for run in runs)
    return [f"{RESULTS}/{experiment}/{{head}}__{part}__{{tail}}{suffix}" for part in parts]


def batch_runs(experiment, wildcards):
    return BATCHES[experiment][(wildcards.head, wildcards.tail)]


def run_inputs(experiment, runs):
    """Every image the runs read, and a local diffusion model folder (a hub id is not a file)."""
    keys = [key for key in ("image", "content", "style") if key in AXIS_KEYS[experiment]]
    values = [RUNS[experiment][run] for run in runs]
    files = {image_path(value[key]) for value in values for key in keys}
    files |= {value["model"] for value in values if "model" in value and Path(value["model"]).is_dir()}
    return sorted(files)


def batch_inputs(experiment):
    return lambda wildcards: run_inputs(experiment, batch_runs(experiment, wildcards))


def batch_commands(experiment, command):
    """Params function: the batch's runs as quoted `stylediff` command lines for `stylediff batch`."""
    return lambda wildcards: " ".join(shlex.quote(command(run, RUNS[experiment][run]))
                                      for run in batch_runs(experiment, wildcards))


def quoted(path):
    return shlex.quote(str(path))


def output_png(experiment, run):
    return f"{RESULTS}/{experiment}/{run}.png"


def outputs(experiment, suffix=".png"):
    return [f"{RESULTS}/{experiment}/{run}{suffix}" for run in RUNS.get(experiment, {})]


# ----------------------------------------------------------------------- run command lines
def invert_command(run, values):
    section = config["inversion"]
    return (f"invert --image {quoted(image_path(values['image']))} --layer {values['layer']} "
            f"--size {section['size']} --steps {section['steps']} --optimizer {section['optimizer']} "
            f"--tv-weight {section['tv_weight']} --seed {values['seed']} --device {config['device']} "
            f"--weights {config['weights']} --pooling {values['pooling']} --no-progress "
            f"--out {quoted(output_png('inversion', run))}")


def texture_command(run, values):
    section = config["texture"]
    return (f"texture --style {quoted(image_path(values['style']))} --layers {','.join(values['layers'])} "
            f"--loss {values['loss']} --size {section['size']} --steps {section['steps']} "
            f"--optimizer {section['optimizer']} --seed {values['seed']} {VGG} --no-progress "
            f"--out {quoted(output_png('texture', run))}")


def transfer_command(run, values):
    section = config["transfer"]
    return (f"transfer --content {quoted(image_path(values['content']))} "
            f"--style {quoted(image_path(values['style']))} --layers {','.join(section['layers'])} "
            f"--loss {values['loss']} --content-layer {section['content_layer']} "
            f"--style-weight {section['style_weight']} --size {section['size']} --steps {section['steps']} "
            f"--optimizer {section['optimizer']} --seed {values['seed']} {VGG} --no-progress "
            f"--out {quoted(output_png('transfer', run))}")


def sample_command(run, values):
    section = config["guidance"]
    return (f"sample --model {quoted(values['model'])} --style {quoted(image_path(values['style']))} "
            f"--scale {values['scale']} --mode {values['mode']} --normalize {values['normalization']} "
            f"--loss {values['loss']} --layers {','.join(values['layers'])} "
            f"--scheduler {section['scheduler']} --steps {section['steps']} --eta {section['eta']} "
            f"--window {','.join(str(float(w)) for w in values['window'])} --recurrence {section['recurrence']} "
            f"--seed {values['seed']} --num-images 1 {VGG} --no-progress --out {quoted(output_png('guidance', run))}")


def unguided_run(wildcards):
    return f"{wildcards.head}__{encode_axis('scale', 0)}__{wildcards.tail}"


# ------------------------------------------------------------------------------------ metrics
def metrics_references(experiment):
    """(reference, baseline) images, one per run in run order (see stylediff/metrics.py)."""
    refs, bases = [], []
    for run, values in RUNS[experiment].items():
        refs.append(image_path(values["image" if experiment == "inversion" else "style"]))
        if experiment == "transfer":
            bases.append(image_path(values["content"]))
        elif experiment == "guidance":
            bases.append(output_png("guidance", run_id("guidance", {**values, "scale": 0})))
    return refs, bases


def metrics_inputs(experiment):
    refs, bases = metrics_references(experiment)
    return sorted(set(refs + bases))


def metrics_command(experiment):
    """One `stylediff metrics` call scoring every run of the experiment."""
    refs, bases = metrics_references(experiment)
    home = config.get("lpips_torch_home")
    parts = [f"TORCH_HOME={shlex.quote(str(home))}" if home else "", RUN, "metrics", f"--kind {experiment}",
             "--image", *outputs(experiment), "--reference", *refs]
    if bases:
        parts += ["--baseline", *bases]
    parts += ["--out", *outputs(experiment, ".metrics.json"),
              f"--device cpu --weights {config['weights']} --pooling {config['pooling']}"]
    if not config.get("lpips", True):
        parts.append("--no-lpips")
    return " ".join(part for part in parts if part)


# ------------------------------------------------------------------------------------- report
def experiment_figures(experiment):
    guidance = config.get("guidance", {})
    return figure_files(experiment, guidance.get("models", []), guidance.get("modes", []))


def caption_of(name):
    """Caption file of a figure: the guidance figures of every model share two captions."""
    stem = Path(name).stem
    if stem.startswith("guidance_"):
        return "guidance_scale" if stem.endswith("_scale") else "guidance_grid"
    return stem


def reported_figure(experiment, name):
    return report(f"{REPORT}/{name}", caption=f"../report/captions/{caption_of(name)}.rst",
                  category=CATEGORIES[experiment])


def figure_outputs(experiment):
    return [reported_figure(experiment, name) for name in experiment_figures(experiment)]


def figure_inputs(experiment):
    return sorted(set(outputs(experiment)) | set(metrics_inputs(experiment)))


ALL_TARGETS = [
    target
    for experiment in EXPERIMENTS
    for target in outputs(experiment)
    + outputs(experiment, ".metrics.json")
    + [f"{RESULTS}/tables/{experiment}.csv", f"{REPORT}/{experiment}_summary.md"]
    + [f"{REPORT}/{name}" for name in experiment_figures(experiment)]
] + ([f"{REPORT}/results.md"] if config.get("findings") else [])
"""Every run's image and metrics (so a deleted one is made again), every table, summary and figure."""


wildcard_constraints:
    head="[A-Za-z0-9_-]+",
    tail="[A-Za-z0-9_-]+",
    name="[A-Za-z0-9_-]+",
    experiment="inversion|texture|transfer|guidance",
