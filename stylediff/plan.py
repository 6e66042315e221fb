"""The experiment plan: which runs an experiment config asks for, what each run is called, which
command makes it and which job runs it. Torch-free (only the standard library and pandas), so the
Snakefile imports it in milliseconds and a user can print a preset's plan with ``stylediff plan``.

An experiment is a :class:`Experiment` spec: its axes (each a config key holding a list of values),
the verb its runs call, the axis (or consecutive axes) whose values one job runs together in one
process (``batched``), optionally the axis that one command line covers (``grouped``: the seeds of one sampling setting are
one batch of images; a job then runs the batched axis *and every axis after it*, so one sampling
process imports diffusers and loads its model once for all of them), how a run's command line is
built, which images are its reference and its baseline, and which figures it draws. :func:`build`
turns a config into a :class:`Plan` whose ``runs`` DataFrame has one row per run and one column per axis; the workflow's rules, the metrics
job and the tables all read that one DataFrame, so nothing parses file names.

**Run ids** are readable slugs of a run's axes joined by ``__``
(``starry_night__relu1_1-relu2_1__gram__s0``), written and read here only (:func:`run_id`,
:func:`parse_run_id`; round-trip tested). Snakemake's ``Paramspace`` was considered and not used:
its patterns have one wildcard per column for every row (``style~a/loss~b/...``), while a job here
is a run id with the batched part left out (``{head}__{tail}``), which Paramspace cannot express;
its values are ``str()`` of the column (a layer set or a window needs a slug anyway); and keeping
the grammar keeps every committed table and figure name valid.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .datasets import image_slug, resolve_image
from .errors import ConfigError

SEPARATOR = "__"
REFERENCE_SEED = 1000
"""First seed of the realism reference sets (the runs' seeds are small integers)."""


# ----------------------------------------------------------------------------------- run ids
def model_slug(model: str) -> str:
    """``google/ddpm-cifar10-32`` and ``models/ddpm-cifar10-32`` both -> ``ddpm-cifar10-32``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(model).rstrip("/").split("/")[-1]).strip("_") or "model"


def _clean(text: str) -> str:
    return re.sub(r"_{2,}", "_", text)


def _number(value: float) -> str:
    return f"{float(value):g}".replace("e+", "e").replace("e-", "em").replace(".", "p")


@dataclass(frozen=True)
class Axis:
    """One axis of an experiment: a plan column, a config key and how a value is written in a run id.

    ``kind``: ``image`` (a file or ``skimage:NAME``, written as its slug), ``model``, ``layers`` (a
    list), ``window`` (two fractions), ``seed`` (``s3``), ``scale`` (``g0p1``) or ``name`` (as is).
    ``default``: a value left out of run ids (ids written before the axis existed stay valid).
    ``fallback``: config key whose value is the axis' only value when its own key is absent.
    """

    name: str
    key: str
    kind: str = "name"
    default: Any = None
    fallback: str | None = None

    def encode(self, value: Any) -> str:
        if self.kind == "seed":
            return f"s{int(value)}"
        if self.kind == "scale":
            return f"g{_number(value)}"
        if self.kind == "window":  # two fractions, or the "0-1" a table shows
            text = value if isinstance(value, str) else "-".join(f"{float(v):g}" for v in value)
            return "w" + text.replace(".", "p")
        if self.kind == "layers":
            return "-".join(value) if isinstance(value, (list, tuple)) else str(value)
        if self.kind == "image":
            return _clean(image_slug(str(value)))
        if self.kind == "model":
            return _clean(model_slug(value))
        return _clean(re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)))

    def decode(self, text: str) -> Any:
        """The value a table shows: numbers for seeds and scales, slugs for the rest."""
        if self.kind == "seed":
            return int(text[1:])
        if self.kind == "scale":
            return float(text[1:].replace("p", ".").replace("em", "e-"))
        if self.kind == "window":
            return text[1:].replace("p", ".")
        return text


@dataclass(frozen=True)
class Experiment:
    """How one experiment of the config becomes runs, jobs and commands (see the module docstring)."""

    name: str
    title: str
    verb: str
    axes: tuple[Axis, ...]
    batched: str | tuple[str, ...]
    """The axis, or consecutive axes, whose values one job runs in one process (each process pays the
    imports and the model loading once)."""
    command: Callable[["Plan", dict], list[str]]
    reference: str
    figures: Callable[[dict], list[str]]
    baseline: Callable[["Plan", dict], str | None] = lambda plan, values: None
    grouped: str | None = None
    """The last axis, whose values one command line covers (``--seeds 0,1``). With it, a job is every run
    that shares the axes before ``batched`` (sampling pays seconds of diffusers import and model loading
    per process, against about a second of sampling per command at the quick preset's size)."""
    canonical: Callable[[dict], dict] = lambda values: values
    gpu_always: bool = False
    """Whether its run jobs declare ``gpu=1`` even with ``device: cpu`` (sampling is the GPU workload)."""
    metrics_kind: str = ""
    """What ``stylediff metrics --kind`` scores its outputs as (default: its name)."""
    combinations: Callable[[dict, "Experiment"], list[dict]] | None = None
    """The axes' combinations, when they are not the product of the axes' lists (default)."""

    @property
    def kind(self) -> str:
        return self.metrics_kind or self.name

    def axis(self, name: str) -> Axis:
        return next(axis for axis in self.axes if axis.name == name)

    @property
    def defaults(self) -> dict[str, Any]:
        return {axis.name: axis.default for axis in self.axes if axis.default is not None}

    def values(self, config: dict, axis: Axis) -> list:
        section = config[self.name]
        if section.get(axis.key):
            return list(section[axis.key])
        if axis.fallback is not None:
            return [config[axis.fallback]]
        if axis.default is not None:
            return [axis.default]
        raise ConfigError(f"{self.name}.{axis.key} is missing")


def run_id(experiment: str | Experiment, values: dict[str, Any]) -> str:
    """The run id of one combination of ``experiment``'s axes (default-valued axes may be missing)."""
    spec = experiment if isinstance(experiment, Experiment) else get(experiment)
    values = spec.canonical({**spec.defaults, **values})
    return SEPARATOR.join(axis.encode(values[axis.name]) for axis in spec.axes
                          if not (axis.default is not None and values[axis.name] == axis.default))


def parse_run_id(experiment: str | Experiment, run: str) -> dict[str, Any]:
    """Axis values of a run id, as :meth:`Axis.decode` shows them."""
    spec = experiment if isinstance(experiment, Experiment) else get(experiment)
    parts = run.split(SEPARATOR)
    optional = [axis for axis in spec.axes if axis.default is not None]
    if len(parts) == len(spec.axes) - len(optional):
        present = [axis for axis in spec.axes if axis.default is None]
        return {**{axis.name: axis.decode(part) for axis, part in zip(present, parts)},
                **{axis.name: axis.default for axis in optional}}
    if len(parts) != len(spec.axes):
        raise ConfigError(f"run id {run!r} does not have the {len(spec.axes)} parts of a {spec.name} run "
                          f"({SEPARATOR.join(axis.name for axis in spec.axes)})")
    return {axis.name: axis.decode(part) for axis, part in zip(spec.axes, parts)}


def split_run(experiment: str | Experiment, run: str) -> tuple[str, str, str]:
    """(head, batched part, tail) of a run id. An optional axis (left out of the id at its default) may
    come before the batched one or after it, not both: the batched part is found counting from the
    side that has none."""
    spec = experiment if isinstance(experiment, Experiment) else get(experiment)
    parts = run.split(SEPARATOR)
    names = [axis.name for axis in spec.axes]
    batched = (spec.batched,) if isinstance(spec.batched, str) else spec.batched
    position, end = names.index(batched[0]), names.index(batched[-1]) + 1
    if any(axis.default is not None for axis in spec.axes[:position]):
        position, end = len(parts) - (len(names) - position), len(parts) - (len(names) - end)
    return (SEPARATOR.join(parts[:position]), SEPARATOR.join(parts[position:end]),
            SEPARATOR.join(parts[end:]))


# -------------------------------------------------------------------------------- the specs
def _q(path: Any) -> str:
    return shlex.quote(str(path))


def _vgg_args(config: dict, pooling: str | None = None) -> list[str]:
    return ["--device", config["device"], "--weights", config["weights"], "--pooling", pooling or config["pooling"]]


def _scales(section: dict) -> list[str]:
    scales = section.get("scales", "auto")
    return ["--scales", scales if scales == "auto" else ",".join(str(s) for s in scales) or "none"]


def _invert(plan: "Plan", values: dict) -> list[str]:
    section = plan.config["inversion"]
    return ["--image", _q(plan.image(values["image"])), "--layer", values["layer"], "--size", str(section["size"]),
            "--steps", str(section["steps"]), "--optimizer", section.get("optimizer", "lbfgs"),
            "--tv-weight", str(section.get("tv_weight", 0)), "--seed", str(values["seed"]),
            *_vgg_args(plan.config, values["pooling"]), "--no-progress"]


def _texture(plan: "Plan", values: dict) -> list[str]:
    section = plan.config["texture"]
    return ["--style", _q(plan.image(values["style"])), "--layers", ",".join(values["layers"]),
            "--loss", values["loss"], "--size", str(section["size"]), "--steps", str(section["steps"]),
            *_scales(section), "--optimizer", section.get("optimizer", "lbfgs"), "--seed", str(values["seed"]),
            *_vgg_args(plan.config), "--no-progress"]


def _transfer(plan: "Plan", values: dict) -> list[str]:
    section = plan.config["transfer"]
    return ["--content", _q(plan.image(values["content"])), "--style", _q(plan.image(values["style"])),
            "--layers", ",".join(section["layers"]), "--loss", values["loss"],
            "--content-layer", section.get("content_layer", "relu4_2"),
            "--style-weight", str(section.get("style_weight", 10)), "--size", str(section["size"]),
            "--steps", str(section["steps"]), *_scales(section), "--optimizer", section.get("optimizer", "lbfgs"),
            "--seed", str(values["seed"]), *_vgg_args(plan.config), "--no-progress"]


def _sample(plan: "Plan", values: dict) -> list[str]:
    section = plan.config["guidance"]
    return ["--model", _q(values["model"]), "--style", _q(plan.image(values["style"])),
            "--scale", str(values["scale"]), "--method", values["mode"], "--normalize", values["normalization"],
            "--loss", values["loss"], "--layers", ",".join(values["layers"]),
            "--scheduler", section.get("scheduler", "ddim"), "--steps", str(section["steps"]),
            "--eta", str(section.get("eta", 0.0)), "--window", ",".join(str(float(w)) for w in values["window"]),
            "--recurrence", str(section.get("recurrence", 1)), "--seeds", ",".join(str(s) for s in values["seeds"]),
            *_vgg_args(plan.config), "--no-progress"]


def method_entries(section: dict) -> dict[str, dict]:
    """``methods: [{name, scales, knobs}, …]`` as ``{name: entry}`` (a list, so that a config file given
    on the command line replaces the preset's methods instead of merging with them)."""
    return {entry["name"]: entry for entry in section["methods"]}


def _method_combinations(config: dict, spec: "Experiment") -> list[dict]:
    """guidance_methods: each method with its own scales, every other axis a product; scale 0 (the
    unguided sample) once per combination of the other axes."""
    section = config[spec.name]
    others = [axis for axis in spec.axes if axis.name not in ("method", "scale")]
    out = []
    for combo in itertools.product(*(spec.values(config, axis) for axis in others)):
        values = dict(zip((axis.name for axis in others), combo))
        out.append({**values, "method": "unguided", "scale": 0})
        for method, entry in method_entries(section).items():
            out += [{**values, "method": method, "scale": scale} for scale in entry["scales"] if scale > 0]
    return out


def _sample_methods(plan: "Plan", values: dict) -> list[str]:
    section = plan.config["guidance_methods"]
    entries = method_entries(section)
    entry = entries.get(values["method"]) or {}
    knobs = entry.get("knobs") or {}
    method = values["method"] if values["scale"] else next(iter(entries))
    args = ["--model", _q(values["model"]), "--style", _q(plan.image(values["style"])),
            "--scale", str(values["scale"]), "--method", method,
            "--loss", values["loss"], "--layers", ",".join(values["layers"]),
            "--scheduler", section.get("scheduler", "ddim"), "--steps", str(section["steps"]),
            "--eta", str(section.get("eta", 0.0)), "--seeds", ",".join(str(s) for s in values["seeds"])]
    for knob, value in knobs.items():
        flag = "--" + knob.replace("_", "-")
        args += [flag, ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)]
    return args + [*_vgg_args(plan.config), "--no-progress"]


def _guidance_figures(section: dict, name: str) -> list[str]:
    files = []
    for model in section.get("models", []):
        slug = model_slug(model)
        if name == "guidance":
            files += [f"guidance_{slug}_{mode}_grid.png" for mode in section.get("modes", [])]
            files.append(f"guidance_{slug}_scale.png")
        else:
            files += [f"guidance_methods_{slug}_grid.png", f"guidance_methods_{slug}_pareto.png"]
    return files


def _unguided_canonical(values: dict) -> dict:
    """An unguided (scale 0) sample has no gradient to normalise: one run, under the default."""
    if float(values.get("scale", 1)) == 0 and "normalization" in values:
        return {**values, "normalization": "per_step"}
    return values


def _methods_canonical(values: dict) -> dict:
    """Scale 0 is the unguided sample of every method: one run, method ``unguided``."""
    if float(values.get("scale", 1)) == 0:
        return {**values, "method": "unguided"}
    return values


def _unscaled(plan: "Plan", experiment: str, values: dict) -> str:
    return plan.output(experiment, run_id(experiment, {**values, "scale": 0}))


IMAGE = "image"
EXPERIMENTS: dict[str, Experiment] = {spec.name: spec for spec in (
    Experiment(
        name="inversion", title="Feature inversion", verb="invert",
        axes=(Axis("image", "images", IMAGE), Axis("layer", "layers"), Axis("pooling", "poolings", fallback="pooling"),
              Axis("seed", "seeds", "seed")),
        batched="layer", command=_invert, reference="image",
        figures=lambda config: ["inversion_grid.png", "inversion_error.png"]),
    Experiment(
        name="texture", title="Texture synthesis", verb="texture",
        axes=(Axis("style", "styles", IMAGE), Axis("layers", "layer_sets", "layers"), Axis("loss", "losses"),
              Axis("seed", "seeds", "seed")),
        batched=("layers", "loss"), command=_texture, reference="style",
        figures=lambda config: ["texture_layers_grid.png", "texture_losses_grid.png", "texture_gram_vs_layers.png"]),
    Experiment(
        name="transfer", title="Style transfer", verb="transfer",
        axes=(Axis("content", "contents", IMAGE), Axis("style", "styles", IMAGE), Axis("loss", "losses"),
              Axis("seed", "seeds", "seed")),
        batched="loss", command=_transfer, reference="style",
        baseline=lambda plan, values: plan.image(values["content"]),
        figures=lambda config: ["transfer_grid.png"]),
    Experiment(
        name="guidance", title="Style-guided diffusion sampling", verb="sample",
        axes=(Axis("model", "models", "model"), Axis("style", "styles", IMAGE), Axis("loss", "losses"),
              Axis("layers", "layer_sets", "layers"), Axis("window", "windows", "window", default=None),
              Axis("mode", "modes"), Axis("normalization", "normalizations", default="per_step"),
              Axis("scale", "scales", "scale"), Axis("seed", "seeds", "seed")),
        batched="mode", grouped="seed", command=_sample, reference="style", canonical=_unguided_canonical,
        baseline=lambda plan, values: _unscaled(plan, "guidance", values), gpu_always=True,
        figures=lambda config: _guidance_figures(config.get("guidance", {}), "guidance")),
    Experiment(
        name="guidance_methods", title="Guidance methods compared", verb="sample",
        axes=(Axis("model", "models", "model"), Axis("style", "styles", IMAGE), Axis("loss", "losses"),
              Axis("layers", "layer_sets", "layers"), Axis("method", "methods"), Axis("scale", "scales", "scale"),
              Axis("seed", "seeds", "seed")),
        batched="method", grouped="seed", command=_sample_methods, reference="style", canonical=_methods_canonical,
        baseline=lambda plan, values: _unscaled(plan, "guidance_methods", values), gpu_always=True,
        metrics_kind="guidance", combinations=_method_combinations,
        figures=lambda config: _guidance_figures(config.get("guidance_methods", {}), "guidance_methods")),
)}
"""Every experiment the workflow knows, by its config section's name."""


def get(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}") from None


# ------------------------------------------------------------------------------------ the plan
@dataclass
class Plan:
    """The runs of one config (``runs``: a DataFrame, one row per run) and what the workflow needs of them."""

    config: dict
    runs: Any = None  # pandas.DataFrame
    results: str = "results"
    report: str = "results/report"
    """Where the run's summaries, figures and findings go (under ``results``; `snakemake publish` copies them)."""
    values: dict[str, dict[str, dict]] = field(default_factory=dict)
    """{experiment: {run id: {axis: config value}}} (lists and paths as in the config)."""

    def image(self, spec: str) -> str:
        """The file of an image spec (``skimage:NAME`` images are written by the workflow's image rule)."""
        return resolve_image(spec, f"{self.results}/images")

    def output(self, experiment: str, run: str, suffix: str = ".png") -> str:
        return f"{self.results}/{experiment}/{run}{suffix}"

    def outputs(self, experiment: str, suffix: str = ".png") -> list[str]:
        return [self.output(experiment, run, suffix) for run in self.values.get(experiment, {})]

    # -- jobs -------------------------------------------------------------------------------
    def job_of(self, experiment: str, run: str) -> str:
        """A batch job is a run id without its batched part (``head__tail``); with a grouped axis (seeds
        sampled as one batch), the job is ``head`` alone: the batched axis and every axis after it."""
        head, _, tail = split_run(experiment, run)
        return head if get(experiment).grouped else f"{head}{SEPARATOR}{tail}"

    def job_id(self, experiment: str, wildcards: Any) -> str:
        """The job of a rule's ``head`` (and ``tail``) wildcards (see :meth:`job_outputs`)."""
        if get(experiment).grouped:
            return wildcards.head
        return f"{wildcards.head}{SEPARATOR}{wildcards.tail}"

    def jobs(self, experiment: str) -> dict[str, list[str]]:
        """{job: [run ids]}."""
        jobs: dict[str, list[str]] = {}
        for run in self.values.get(experiment, {}):
            jobs.setdefault(self.job_of(experiment, run), []).append(run)
        return jobs

    def job_outputs(self, experiment: str, suffix: str) -> list[str]:
        """Output patterns of one job, around its ``{head}`` (and ``{tail}``) wildcards: one per batched part
        (per batched part and everything after it when the experiment groups an axis). Every job of an
        experiment has the same parts: the grids are products, and a method's scales are the same for
        every head."""
        spec = get(experiment)
        parts = []
        for runs in self.jobs(experiment).values():
            for run in runs:
                _, part, tail = split_run(spec, run)
                parts.append(f"{part}{SEPARATOR}{tail}" if spec.grouped else part)
        tail = "" if spec.grouped else f"{SEPARATOR}{{tail}}"
        return [f"{self.results}/{experiment}/{{head}}{SEPARATOR}{part}{tail}{suffix}" for part in dict.fromkeys(parts)]

    def job_inputs(self, experiment: str, job: str) -> list[str]:
        """Every image the job's runs read, and local diffusion model folders (a hub id is not a file)."""
        spec = get(experiment)
        files = set()
        for run in self.jobs(experiment)[job]:
            values = self.values[experiment][run]
            files |= {self.image(values[axis.name]) for axis in spec.axes if axis.kind == IMAGE}
            if "model" in values and Path(values["model"]).is_dir():
                files.add(values["model"])
        return sorted(files)

    def commands(self, experiment: str, job: str) -> list[str]:
        """The job's runs as verb argument strings: one per run, or one per group (``--seeds`` a list and
        ``--out`` the run id without its seed: the verb writes ``OUT__s<seed>.png`` per image; a group of
        one seed writes its run id itself)."""
        spec = get(experiment)
        lines: dict[str, list[str]] = {}
        for run in self.jobs(experiment)[job]:
            key = run
            if spec.grouped:
                key = SEPARATOR.join(run.split(SEPARATOR)[:-1])  # the grouped axis is the last one
            lines.setdefault(key, []).append(run)
        out = []
        for key, runs in lines.items():
            values = dict(self.values[experiment][runs[0]])
            if spec.grouped:
                values[f"{spec.grouped}s"] = [self.values[experiment][run][spec.grouped] for run in runs]
            target = key if len(runs) > 1 else runs[0]
            out.append(" ".join(spec.command(self, values) + ["--out", _q(self.output(experiment, target))]))
        return out

    # -- metrics, figures -------------------------------------------------------------------
    def references(self, experiment: str) -> tuple[list[str], list[str]]:
        """(reference, baseline) image of every run, in run order (baselines empty when there are none)."""
        spec = get(experiment)
        refs, bases = [], []
        for values in self.values.get(experiment, {}).values():
            refs.append(self.image(values[spec.reference]))
            base = spec.baseline(self, values)
            if base is not None:
                bases.append(base)
        return refs, bases

    def realism_references(self, experiment: str) -> list[str]:
        """The reference set (batch sidecar) of every run, in run order (empty without reference sets)."""
        if not self.reference_sets(experiment):
            return []
        return [self.reference_set_of(experiment, values) for values in self.values[experiment].values()]

    def figures(self, experiment: str) -> list[str]:
        return get(experiment).figures(self.config)

    # -- the realism reference sets ---------------------------------------------------------
    def reference_sets(self, experiment: str) -> dict[str, dict[str, Any]]:
        """{model slug: {model, seeds, out}}: per model, ``reference_samples`` unguided samples (seeds from
        :data:`REFERENCE_SEED`, disjoint from the runs'), the model's own distribution for realism."""
        section = self.config.get(experiment) or {}
        count = int(section.get("reference_samples") or 0)
        if not count:
            return {}
        return {model_slug(model): {"model": model, "seeds": list(range(REFERENCE_SEED, REFERENCE_SEED + count)),
                                    "out": f"{self.results}/{experiment}/reference/{model_slug(model)}.png"}
                for model in section["models"]}

    def reference_set_of(self, experiment: str, values: dict) -> str | None:
        """The batch sidecar of the reference set a run's realism is measured against (None without one)."""
        sets = self.reference_sets(experiment)
        entry = sets.get(model_slug(values["model"])) if "model" in values else None
        return None if entry is None else str(Path(entry["out"]).with_suffix(".json"))

    def _reference_set_values(self, experiment: str, slug: str) -> dict[str, Any]:
        """The unguided setting a reference set samples (the style is not used at scale 0, but the verb
        reads it)."""
        entry = self.reference_sets(experiment)[slug]
        section = self.config[experiment]
        return {"model": entry["model"], "style": section["styles"][0], "loss": section["losses"][0],
                "layers": section["layer_sets"][0], "method": "unguided", "scale": 0, "seeds": entry["seeds"]}

    def reference_set_inputs(self, experiment: str, slug: str) -> list[str]:
        """The style image the reference set's command reads, and its model folder when it is local."""
        values = self._reference_set_values(experiment, slug)
        return [self.image(values["style"])] + ([values["model"]] if Path(values["model"]).is_dir() else [])

    def reference_set_command(self, experiment: str, slug: str) -> str:
        values = self._reference_set_values(experiment, slug)
        out = self.reference_sets(experiment)[slug]["out"]
        return " ".join(get(experiment).command(self, values) + ["--out", _q(out)])


def _combinations(config: dict, spec: Experiment) -> list[dict[str, Any]]:
    if spec.combinations is not None:
        return spec.combinations(config, spec)
    axes = list(spec.axes)
    values = [spec.values(config, axis) for axis in axes]
    return [dict(zip((axis.name for axis in axes), combo)) for combo in itertools.product(*values)]


def build(config: dict) -> Plan:
    """The plan of ``config`` (a merged, validated workflow config)."""
    import pandas as pd

    results = str(config.get("results_dir", "results")).rstrip("/")
    plan = Plan(config=config, results=results, report=f"{results}/report")
    rows = []
    for name in config["experiments"]:
        spec = get(name)
        if name not in config:
            raise ConfigError(f"experiment {name!r} is listed in 'experiments' but has no {name}: section")
        runs: dict[str, dict] = {}
        for values in _combinations(config, spec):
            values = spec.canonical(values)
            run = run_id(spec, values)
            if runs.get(run, values) != values:
                raise ConfigError(f"{name}: two combinations of axes give the run id {run!r}; make the values distinct")
            runs[run] = values
        plan.values[name] = runs
        for run, values in runs.items():
            rows.append({"experiment": name, "run": run, **parse_run_id(spec, run),
                         "job": plan.job_of(name, run), "output": plan.output(name, run)})
    plan.runs = pd.DataFrame(rows)
    return plan
