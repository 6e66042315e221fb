"""The plan of one workflow config: its runs, their jobs, command lines, references and figures.

The runs are one DataFrame row per run, a column per axis. Torch-free (only the standard library and
pandas), so the Snakefile imports it in milliseconds and a user can print a preset's plan with
``stylediff plan``.

:func:`build` turns a config into a :class:`Plan` of the experiments' specs
(:mod:`stylediff.workflow.experiments`), naming each run by the run-id grammar (:mod:`stylediff.workflow.runids`); the
workflow's rules, the metrics job and the tables all read its one DataFrame, so nothing parses file names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, StylediffError
from .experiments import lookup, network_layer_sets
from .image_specs import check_spec, resolve_image
from .runids import IMAGE, SEPARATOR, model_slug, parse_run_id, present_axes, run_id, split_run
from .spec import Experiment, quoted

REFERENCE_SEED = 1000
"""First seed of the realism reference sets (the runs' seeds are small integers)."""


@dataclass
class Plan:
    """The runs of one config and what the workflow needs of them.

    Args:
        config: the merged, validated workflow config.
        runs: a DataFrame, one row per run (set by :func:`build`).
        results: the results folder.
        report: where the run's summaries, figures and findings go.
        values: ``{experiment: {run id: {axis: config value}}}``.
    """

    config: dict
    runs: Any = None  # pandas.DataFrame
    results: str = "results"
    report: str = "results/report"
    """Where the run's summaries, figures and findings go (under ``results``; `snakemake publish` copies them)."""
    values: dict[str, dict[str, dict]] = field(default_factory=dict)
    """{experiment: {run id: {axis: config value}}} (lists and paths as in the config)."""
    _jobs: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)

    def image(self, spec: str) -> str:
        """The file of an image spec (``skimage:NAME`` images are written by the workflow's image rule).

        Args:
            spec: an image spec.

        Returns:
            The path.
        """
        return resolve_image(spec, f"{self.results}/images")

    def output(self, experiment: str, run: str, suffix: str = ".png") -> str:
        """A run's output file: ``RESULTS/<experiment>/<run><suffix>``.

        Args:
            experiment: an experiment of the config.
            run: a run id.
            suffix: ``.png``, ``.json`` (its sidecar), ``.metrics.json``…

        Returns:
            The path.
        """
        return f"{self.results}/{experiment}/{run}{suffix}"

    def outputs(self, experiment: str, suffix: str = ".png") -> list[str]:
        """Every run's output file (:meth:`output`), in run order.

        Args:
            experiment: an experiment of the config.
            suffix: the files' suffix.

        Returns:
            The paths.
        """
        return [self.output(experiment, run, suffix) for run in self.values.get(experiment, {})]

    # -- jobs -------------------------------------------------------------------------------
    def job_of(self, experiment: str, run: str) -> str:
        """The job a run belongs to.

        A batch job is a run id without its batched part (``head__tail``); with a grouped axis (seeds
        sampled as one batch), the job is ``head`` alone: the batched axis and every axis after it.

        Args:
            experiment: an experiment of the config.
            run: a run id.

        Returns:
            The job id.
        """
        spec = lookup(experiment)
        head, _, tail = split_run(spec, run)
        return head if spec.grouped else f"{head}{SEPARATOR}{tail}"

    def job_id(self, experiment: str, wildcards: Any) -> str:
        """The job of a rule's ``head`` (and ``tail``) wildcards (see :meth:`job_outputs`).

        Args:
            experiment: an experiment of the config.
            wildcards: Snakemake's wildcards of the job's rule.

        Returns:
            The job id.
        """
        if lookup(experiment).grouped:
            return wildcards.head
        return f"{wildcards.head}{SEPARATOR}{wildcards.tail}"

    def jobs(self, experiment: str) -> dict[str, list[str]]:
        """``{job: [run ids]}`` (computed once: the rules ask for every job's commands and inputs).

        Args:
            experiment: an experiment of the config.

        Returns:
            The jobs, in run order.
        """
        if experiment not in self._jobs:
            jobs: dict[str, list[str]] = {}
            for run in self.values.get(experiment, {}):
                jobs.setdefault(self.job_of(experiment, run), []).append(run)
            self._jobs[experiment] = jobs
        return self._jobs[experiment]

    def _parts(self, experiment: str, job: str) -> tuple[str, ...]:
        """The run ids of a job without its head: what a rule's output patterns add to ``{head}``."""
        spec = lookup(experiment)
        parts = []
        for run in self.jobs(experiment)[job]:
            _, part, tail = split_run(spec, run)
            parts.append(f"{part}{SEPARATOR}{tail}" if spec.grouped else part)
        return tuple(dict.fromkeys(parts))

    def job_groups(self, experiment: str) -> list[list[str]]:
        """The jobs grouped by the outputs they write after their head.

        One group when the grid is a product; one per style group when a method's scales differ by style
        (``scales_by_group``), each then a rule of its own (a rule's jobs all write the same patterns).

        Args:
            experiment: an experiment of the config.

        Returns:
            Lists of job names.
        """
        groups: dict[tuple[str, ...], list[str]] = {}
        for job in self.jobs(experiment):
            groups.setdefault(self._parts(experiment, job), []).append(job)
        return list(groups.values())

    def job_outputs(self, experiment: str, suffix: str, jobs: list[str] | None = None) -> list[str]:
        """Output patterns of one job, around its ``{head}`` (and ``{tail}``) wildcards.

        One per batched part (per batched part and everything after it when the experiment groups an
        axis). Every job of ``jobs`` has the same parts.

        Args:
            experiment: an experiment of the config.
            suffix: the files' suffix.
            jobs: the jobs whose parts to name (default: all; else one of :meth:`job_groups`).

        Returns:
            The patterns.
        """
        spec = lookup(experiment)
        parts = [part for job in (jobs or self.jobs(experiment)) for part in self._parts(experiment, job)]
        tail = "" if spec.grouped else f"{SEPARATOR}{{tail}}"
        return [f"{self.results}/{experiment}/{{head}}{SEPARATOR}{part}{tail}{suffix}" for part in dict.fromkeys(parts)]

    def job_inputs(self, experiment: str, job: str) -> list[str]:
        """Every image the job's runs read, and local diffusion model folders (a hub id is not a file).

        Args:
            experiment: an experiment of the config.
            job: a job id.

        Returns:
            The files, sorted.
        """
        spec = lookup(experiment)
        files = set()
        for run in self.jobs(experiment)[job]:
            values = self.values[experiment][run]
            files |= {self.image(values[axis.name]) for axis in spec.axes if axis.kind == IMAGE}
            if "model" in values and Path(values["model"]).is_dir():
                files.add(values["model"])
        return sorted(files)

    def commands(self, experiment: str, job: str) -> list[str]:
        """The job's runs as verb argument strings.

        One per run, or one per group (``--seeds`` a list and ``--out`` the run id without its seed: the
        verb writes ``OUT__s<seed>.png`` per image; a group of one seed writes its run id itself).

        Args:
            experiment: an experiment of the config.
            job: a job id.

        Returns:
            The argument strings, shell-quoted.
        """
        spec = lookup(experiment)
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
                values[spec.grouped] = [self.values[experiment][run][spec.grouped] for run in runs]
            target = key if len(runs) > 1 else runs[0]
            out.append(" ".join(spec.command_line(self, values) + ["--out", quoted(self.output(experiment, target))]))
        return out

    # -- metrics, figures -------------------------------------------------------------------
    def references(self, experiment: str) -> tuple[list[str], list[str]]:
        """The reference and baseline image of every run, in run order.

        Args:
            experiment: an experiment of the config.

        Returns:
            ``(references, baselines)``; baselines empty when there are none.
        """
        spec = lookup(experiment)
        refs, bases = [], []
        for values in self.values.get(experiment, {}).values():
            refs.append(self.image(values[spec.reference]))
            base = spec.baseline(self, values)
            if base is not None:
                bases.append(base)
        return refs, bases

    def realism_references(self, experiment: str) -> list[str]:
        """The reference set (batch sidecar) of every run, in run order.

        Args:
            experiment: an experiment of the config.

        Returns:
            The sidecars; empty without reference sets.
        """
        if not self.reference_sets(experiment):
            return []
        return [self.reference_set_of(experiment, values) for values in self.values[experiment].values()]

    def figures(self, experiment: str) -> list[str]:
        """The figure files the experiment's report step writes.

        Args:
            experiment: an experiment of the config.

        Returns:
            The paths.
        """
        return lookup(experiment).figures(self.config)

    # -- the realism reference sets ---------------------------------------------------------
    def reference_sets(self, experiment: str) -> dict[str, dict[str, Any]]:
        """The realism reference sets: per model, ``reference_samples`` unguided samples.

        Seeds from :data:`REFERENCE_SEED`, disjoint from the runs': the model's own distribution for realism.

        Args:
            experiment: an experiment of the config.

        Returns:
            ``{model slug: {model, seeds, out}}``; empty when the section asks for none.
        """
        section = self.config.get(experiment) or {}
        count = int(section.get("reference_samples") or 0)
        if not count:
            return {}
        return {
            model_slug(model): {
                "model": model,
                "seeds": list(range(REFERENCE_SEED, REFERENCE_SEED + count)),
                "out": f"{self.results}/{experiment}/reference/{model_slug(model)}.png",
            }
            for model in section["models"]
        }

    def reference_set_of(self, experiment: str, values: dict) -> str | None:
        """The batch sidecar of the reference set a run's realism is measured against.

        Args:
            experiment: an experiment of the config.
            values: the run's axis values (its ``model``).

        Returns:
            The sidecar, or None without reference sets.
        """
        sets = self.reference_sets(experiment)
        entry = sets.get(model_slug(values["model"])) if "model" in values else None
        return None if entry is None else str(Path(entry["out"]).with_suffix(".json"))

    def _reference_set_values(self, experiment: str, slug: str) -> dict[str, Any]:
        """The unguided setting a reference set samples.

        The style is not used at scale 0, but the verb reads it.
        """
        entry = self.reference_sets(experiment)[slug]
        section = self.config[experiment]
        network = lookup(experiment).values(self.config, lookup(experiment).axis("network"))[0]
        return {
            "model": entry["model"],
            "prompt": (section.get("prompts") or [""])[0],
            "style": section["styles"][0],
            "loss": section["losses"][0],
            "network": network,
            "layers": network_layer_sets(section, network)[0],
            "method": "unguided",
            "scale": 0,
            "seed": entry["seeds"],
        }

    def reference_set_inputs(self, experiment: str, slug: str) -> list[str]:
        """The style image the reference set's command reads, and its model folder when it is local.

        Args:
            experiment: an experiment of the config.
            slug: the model's slug.

        Returns:
            The files.
        """
        values = self._reference_set_values(experiment, slug)
        return [self.image(values["style"])] + ([values["model"]] if Path(values["model"]).is_dir() else [])

    def reference_set_command(self, experiment: str, slug: str) -> str:
        """The ``stylediff sample`` arguments that draw a reference set.

        Args:
            experiment: an experiment of the config.
            slug: the model's slug.

        Returns:
            The argument string, with ``--out`` the set's batch file.
        """
        values = self._reference_set_values(experiment, slug)
        out = self.reference_sets(experiment)[slug]["out"]
        return " ".join(lookup(experiment).command_line(self, values) + ["--out", quoted(out)])


def check(config: dict, min_size: Callable[[list[str]], int]) -> None:
    """Check what the schema cannot say about ``config``.

    Every listed experiment has its section, its images exist, the values of each of its axes have
    distinct run-id parts, and its ``size`` suits the layer sets of its spec's ``sized_layers``.

    Args:
        config: the merged workflow config.
        min_size: a layer set's minimum input size in pixels
            (:func:`stylediff.networks.vgg19_layers.min_input_size`; passed in, since the workflow package
            imports no network).

    Raises:
        ConfigError: one line, for the first problem.
    """
    for name in config["experiments"]:
        spec = lookup(name)
        if name not in config:
            raise ConfigError(f"experiment {name!r} is listed in 'experiments' but has no {name}: section")
        section = config[name]
        for axis in spec.axes:
            if not section.get(axis.key):
                continue
            slugs: dict[str, Any] = {}
            for value in spec.values(config, axis):
                if axis.kind == IMAGE:
                    try:
                        check_spec(value)
                    except StylediffError as exc:
                        raise ConfigError(f"{name}.{axis.key}: {exc}") from None
                slug = axis.encode(value)
                if slugs.setdefault(slug, value) != value:
                    raise ConfigError(f"{name}.{axis.key}: {slugs[slug]!r} and {value!r} have the same name {slug!r}")
        for layers in spec.sized_layers(section) if "size" in section else []:
            if section["size"] < min_size(layers):
                raise ConfigError(
                    f"{name}.size {section['size']} is below the {min_size(layers)} px that {', '.join(layers)} need"
                )


def _combinations(config: dict, spec: Experiment) -> list[dict[str, Any]]:
    if spec.combinations is not None:
        return spec.combinations(config, spec)
    axes = list(spec.axes)
    values = [spec.values(config, axis) for axis in axes]
    return [dict(zip((axis.name for axis in axes), combo)) for combo in itertools.product(*values)]


def _read_back(spec: Experiment, run: str, values: dict) -> dict[str, Any]:
    """The axis values of ``run`` as a table shows them.

    A ConfigError when the id reads as other axes than the ones it was written from (a value that looks
    like the mark of an absent axis: the axis rule).
    """
    written = [axis for axis in spec.axes if not (axis.optional and values.get(axis.name) == axis.default)]
    read = present_axes(spec, run)
    if read != written:
        axis = next(a for a in spec.axes if (a in read) != (a in written))
        raise ConfigError(
            f"{spec.name}: the run id {run!r} reads as if {axis.name} were {'' if axis in read else 'not '}in it; "
            "rename the value that looks like its mark (the axis rule, stylediff.workflow.runids)"
        )
    return parse_run_id(spec, run)


def build(config: dict) -> Plan:
    """The plan of ``config``.

    Args:
        config: a merged, validated workflow config (:func:`check` says what the schema cannot).

    Returns:
        The plan, its ``runs`` a DataFrame with a row per run: experiment, run id, the axis values, job
        and output.

    Raises:
        ConfigError: a listed experiment without its section, or two combinations with one run id.

    Example:
        ```python
        plan = build(yaml.safe_load(open("config.yaml")))
        plan.runs.groupby("experiment").size()
        ```
    """
    import pandas as pd

    results = str(config.get("results_dir", "results")).rstrip("/")
    plan = Plan(config=config, results=results, report=f"{results}/report")
    rows = []
    for name in config["experiments"]:
        spec = lookup(name)
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
            rows.append(
                {
                    "experiment": name,
                    "run": run,
                    **_read_back(spec, run, values),
                    "job": plan.job_of(name, run),
                    "output": plan.output(name, run),
                }
            )
    plan.runs = pd.DataFrame(rows)
    return plan
