"""The experiments the workflow knows: each one's spec (axes, batched axis, command line, references,
figures), by its config section's name.

An experiment is an :class:`Experiment` spec: its axes (each a config key holding a list of values),
the verb its runs call, the axis (or consecutive axes) whose values one job runs together in one
process (``batched``), optionally the axis that one command line covers (``grouped``: the seeds of one
sampling setting are one batch of images; a job then runs the batched axis *and every axis after it*,
so one sampling process imports diffusers and loads its model once for all of them), how a run's
command line is built, which images are its reference and its baseline, and which figures it draws.
:func:`stylediff.workflow.plan.build` turns a config into the runs of these specs. Torch-free.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError
from .runids import IMAGE, Axis, model_slug, run_id


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
    command: Callable[[Any, dict], list[str]]
    reference: str
    figures: Callable[[dict], list[str]]
    baseline: Callable[[Any, dict], str | None] = lambda plan, values: None
    grouped: str | None = None
    """The last axis, whose values one command line covers (``--seeds 0,1``). With it, a job is every run
    that shares the axes before ``batched`` (sampling pays seconds of diffusers import and model loading
    per process, against about a second of sampling per command at the quick preset's size)."""
    canonical: Callable[[dict], dict] = lambda values: values
    gpu_always: bool = False
    """Whether its run jobs declare ``gpu=1`` even with ``device: cpu`` (sampling is the GPU workload)."""
    metrics_kind: str = ""
    """What ``stylediff metrics --kind`` scores its outputs as (default: its name)."""
    combinations: Callable[[dict, Experiment], list[dict]] | None = None
    """The axes' combinations, when they are not the product of the axes' lists (default)."""

    @property
    def kind(self) -> str:
        return self.metrics_kind or self.name

    def axis(self, name: str) -> Axis:
        return next(axis for axis in self.axes if axis.name == name)

    def values(self, config: dict, axis: Axis) -> list:
        section = config[self.name]
        if section.get(axis.key):  # an entry may be a {name: …, …} object (methods, networks)
            return [entry["name"] if isinstance(entry, dict) else entry for entry in section[axis.key]]
        if axis.fallback is not None:
            return [config[axis.fallback]]
        if axis.default is not None:
            return [axis.default]
        raise ConfigError(f"{self.name}.{axis.key} is missing")


def quoted(path: Any) -> str:
    """``path`` as one shell word."""
    return shlex.quote(str(path))


def _vgg_args(config: dict, pooling: str | None = None) -> list[str]:
    return ["--device", config["device"], "--weights", config["weights"], "--pooling", pooling or config["pooling"]]


def _scales(section: dict) -> list[str]:
    scales = section.get("scales", "auto")
    return ["--scales", scales if scales == "auto" else ",".join(str(s) for s in scales) or "none"]


def _optimize_args(plan: Any, section: dict, values: dict) -> list[str]:
    """The optimisation flags a texture and a transfer run share: size, steps, scales,
    optimiser, seed, network weights."""
    return [
        "--size",
        str(section["size"]),
        "--steps",
        str(section["steps"]),
        *_scales(section),
        "--optimizer",
        section.get("optimizer", "lbfgs"),
        "--seed",
        str(values["seed"]),
        *_vgg_args(plan.config),
        "--no-progress",
    ]


def _invert(plan: Any, values: dict) -> list[str]:
    section = plan.config["inversion"]
    return [
        "--image",
        quoted(plan.image(values["image"])),
        "--layer",
        values["layer"],
        "--size",
        str(section["size"]),
        "--steps",
        str(section["steps"]),
        "--optimizer",
        section.get("optimizer", "lbfgs"),
        "--tv-weight",
        str(section.get("tv_weight", 0)),
        "--seed",
        str(values["seed"]),
        *_vgg_args(plan.config, values["pooling"]),
        "--no-progress",
    ]


def _texture(plan: Any, values: dict) -> list[str]:
    section = plan.config["texture"]
    return [
        "--style",
        quoted(plan.image(values["style"])),
        "--layers",
        ",".join(values["layers"]),
        "--loss",
        values["loss"],
        *_optimize_args(plan, section, values),
    ]


def _transfer(plan: Any, values: dict) -> list[str]:
    section = plan.config["transfer"]
    return [
        "--content",
        quoted(plan.image(values["content"])),
        "--style",
        quoted(plan.image(values["style"])),
        "--layers",
        ",".join(section["layers"]),
        "--loss",
        values["loss"],
        "--content-layer",
        section.get("content_layer", "relu4_2"),
        "--style-weight",
        str(section.get("style_weight", 10)),
        *_optimize_args(plan, section, values),
    ]


def _sample(plan: Any, values: dict) -> list[str]:
    section = plan.config["guidance"]
    return [
        "--model",
        quoted(values["model"]),
        "--style",
        quoted(plan.image(values["style"])),
        "--scale",
        str(values["scale"]),
        "--method",
        values["method"],
        "--normalize",
        values["normalization"],
        "--loss",
        values["loss"],
        "--layers",
        ",".join(values["layers"]),
        "--scheduler",
        section.get("scheduler", "ddim"),
        "--steps",
        str(section["steps"]),
        "--eta",
        str(section.get("eta", 0.0)),
        "--window",
        ",".join(str(float(w)) for w in values["window"]),
        "--recurrence",
        str(section.get("recurrence", 1)),
        "--seeds",
        ",".join(str(s) for s in values["seeds"]),
        *_vgg_args(plan.config),
        "--no-progress",
    ]


def method_entries(section: dict) -> dict[str, dict]:
    """``methods: [{name, scales, knobs}, …]`` as ``{name: entry}`` (a list, so that a config file given
    on the command line replaces the preset's methods instead of merging with them)."""
    return {entry["name"]: entry for entry in section["methods"]}


DEFAULT_NETWORK = "vgg19"
"""The feature network of a guidance_methods run whose config names none (left out of its run id)."""


def network_layer_sets(section: dict, network: str) -> list[list[str]]:
    """The layer sets a guidance network is used with: its entry's own ``layer_sets`` in ``networks:
    [{name, layer_sets}, …]`` (a CLIP encoder has no relu4_1), else the section's ``layer_sets``."""
    for entry in section.get("networks") or []:
        if isinstance(entry, dict) and entry["name"] == network and entry.get("layer_sets"):
            return [list(layers) for layers in entry["layer_sets"]]
    return [list(layers) for layers in section["layer_sets"]]


def style_group(section: dict, style: str) -> str | None:
    """The group ``style`` belongs to in ``style_groups: {group: [styles]}`` (None: in no group)."""
    groups = [name for name, styles in (section.get("style_groups") or {}).items() if style in styles]
    if len(groups) > 1:
        raise ConfigError(f"style {style!r} is in several style_groups: {', '.join(groups)}")
    return groups[0] if groups else None


def method_scales(section: dict, entry: dict, style: str) -> list[float]:
    """A method's scales for one style: ``scales_by_group[group]`` when the style's group has its own
    (a style loss ~10x larger moves the samples at ~10x smaller scales for methods that do not rescale
    the gradient), else ``scales``."""
    by_group = entry.get("scales_by_group") or {}
    unknown = sorted(set(by_group) - set(section.get("style_groups") or {}))
    if unknown:
        raise ConfigError(f"method {entry['name']}: scales_by_group names {', '.join(unknown)}, not in style_groups")
    return list(by_group.get(style_group(section, style), entry["scales"]))


def _method_combinations(config: dict, spec: Experiment) -> list[dict]:
    """guidance_methods: each method with its own scales (per style group where it has them), each
    network with its own layer sets, every other axis a product; scale 0 (the unguided sample) once per
    combination of the other axes."""
    section = config[spec.name]
    others = [axis for axis in spec.axes if axis.name not in ("method", "scale", "layers")]
    out = []
    for combo in itertools.product(*(spec.values(config, axis) for axis in others)):
        for layers in network_layer_sets(section, combo[[axis.name for axis in others].index("network")]):
            values = {**dict(zip((axis.name for axis in others), combo)), "layers": layers}
            out.append({**values, "method": "unguided", "scale": 0})
            for method, entry in method_entries(section).items():
                scales = method_scales(section, entry, values["style"])
                out += [{**values, "method": method, "scale": scale} for scale in scales if scale > 0]
    return out


def _texture_combinations(config: dict, spec: Experiment) -> list[dict]:
    """texture: the product of the axes, except that a loss given as ``{name, layer_sets}`` runs on those
    of the section's layer sets only (e.g. the slow losses on the deepest set, the depth trend on gram)."""
    section = config[spec.name]
    known = [list(layers) for layers in section["layer_sets"]]
    only = {}
    for entry in section["losses"]:
        if isinstance(entry, dict):
            only[entry["name"]] = [list(layers) for layers in entry["layer_sets"]]
            stray = [layers for layers in only[entry["name"]] if layers not in known]
            if stray:
                raise ConfigError(
                    f"texture.losses: {entry['name']}'s layer set {stray[0]} is not in texture.layer_sets"
                )
    axes = list(spec.axes)
    out = []
    for combo in itertools.product(*(spec.values(config, axis) for axis in axes)):
        values = dict(zip((axis.name for axis in axes), combo))
        if values["loss"] not in only or list(values["layers"]) in only[values["loss"]]:
            out.append(values)
    return out


def _sample_methods(plan: Any, values: dict) -> list[str]:
    section = plan.config["guidance_methods"]
    entries = method_entries(section)
    entry = entries.get(values["method"]) or {}
    knobs = entry.get("knobs") or {}
    method = values["method"] if values["scale"] else next(iter(entries))
    args = [
        "--model",
        quoted(values["model"]),
        *_text_args(section, values.get("prompt", "")),
        "--style",
        quoted(plan.image(values["style"])),
        "--scale",
        str(values["scale"]),
        "--method",
        method,
        "--loss",
        values["loss"],
        "--layers",
        ",".join(values["layers"]),
        "--scheduler",
        section.get("scheduler", "ddim"),
        "--steps",
        str(section["steps"]),
        "--eta",
        str(section.get("eta", 0.0)),
        "--seeds",
        ",".join(str(s) for s in values["seeds"]),
    ]
    for knob, value in knobs.items():
        flag = "--" + knob.replace("_", "-")
        args += [flag, ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)]
    network = values.get("network", DEFAULT_NETWORK)
    if network == DEFAULT_NETWORK:
        return args + [*_vgg_args(plan.config), "--no-progress"]
    return args + ["--network", network, "--device", plan.config["device"], "--no-progress"]


def _text_args(section: dict, prompt: str) -> list[str]:
    """A text-conditioned model's prompt, negative prompt and CFG scale, and a latent model's decoder
    options (none for a pixel model: the config leaves them out)."""
    args = ["--prompt", quoted(prompt)] if prompt else []
    if prompt and section.get("negative_prompt"):
        args += ["--negative-prompt", quoted(section["negative_prompt"])]
    if prompt and section.get("cfg_scale") is not None:
        args += ["--cfg-scale", str(section["cfg_scale"])]
    if section.get("decoder", "vae") != "vae":
        args += ["--decoder", quoted(section["decoder"])]
    return args + (["--vae-checkpointing"] if section.get("vae_checkpointing") else [])


def methods_figure_stem(slug: str, network: str = DEFAULT_NETWORK) -> str:
    """The name stem of a guidance_methods figure of one model and guidance network (the default network's
    keeps the name it had before networks were an axis)."""
    return f"guidance_methods_{slug}" + ("" if network == DEFAULT_NETWORK else f"_{network}")


def _guidance_figures(section: dict, name: str) -> list[str]:
    files = []
    networks = [entry["name"] if isinstance(entry, dict) else entry for entry in section.get("networks") or []]
    for model in section.get("models", []):
        slug = model_slug(model)
        if name == "guidance":
            files += [f"guidance_{slug}_{method}_grid.png" for method in section.get("methods", [])]
            files.append(f"guidance_{slug}_scale.png")
        else:
            for network in networks or [DEFAULT_NETWORK]:
                files += [
                    f"{methods_figure_stem(slug, network)}_grid.png",
                    f"{methods_figure_stem(slug, network)}_pareto.png",
                ]
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


def _unscaled(plan: Any, experiment: str, values: dict) -> str:
    return plan.output(experiment, run_id(lookup(experiment), {**values, "scale": 0}))


EXPERIMENTS: dict[str, Experiment] = {
    spec.name: spec
    for spec in (
        Experiment(
            name="inversion",
            title="Feature inversion",
            verb="invert",
            axes=(
                Axis("image", "images", IMAGE),
                Axis("layer", "layers"),
                Axis("pooling", "poolings", fallback="pooling"),
                Axis("seed", "seeds", "seed"),
            ),
            batched="layer",
            command=_invert,
            reference="image",
            figures=lambda config: ["inversion_grid.png", "inversion_error.png"],
        ),
        Experiment(
            name="texture",
            title="Texture synthesis",
            verb="texture",
            axes=(
                Axis("style", "styles", IMAGE),
                Axis("layers", "layer_sets", "layers"),
                Axis("loss", "losses"),
                Axis("seed", "seeds", "seed"),
            ),
            batched=("layers", "loss"),
            command=_texture,
            reference="style",
            combinations=_texture_combinations,
            figures=lambda config: ["texture_layers_grid.png", "texture_losses_grid.png", "texture_gram_vs_layers.png"],
        ),
        Experiment(
            name="transfer",
            title="Style transfer",
            verb="transfer",
            axes=(
                Axis("content", "contents", IMAGE),
                Axis("style", "styles", IMAGE),
                Axis("loss", "losses"),
                Axis("seed", "seeds", "seed"),
            ),
            batched="loss",
            command=_transfer,
            reference="style",
            baseline=lambda plan, values: plan.image(values["content"]),
            figures=lambda config: ["transfer_grid.png"],
        ),
        Experiment(
            name="guidance",
            title="Style-guided diffusion sampling",
            verb="sample",
            axes=(
                Axis("model", "models", "model"),
                Axis("style", "styles", IMAGE),
                Axis("loss", "losses"),
                Axis("layers", "layer_sets", "layers"),
                Axis("window", "windows", "window", default=None),
                Axis("method", "methods"),
                Axis("normalization", "normalizations", default="per_step"),
                Axis("scale", "scales", "scale"),
                Axis("seed", "seeds", "seed"),
            ),
            batched="method",
            grouped="seed",
            command=_sample,
            reference="style",
            canonical=_unguided_canonical,
            baseline=lambda plan, values: _unscaled(plan, "guidance", values),
            gpu_always=True,
            figures=lambda config: _guidance_figures(config.get("guidance", {}), "guidance"),
        ),
        Experiment(
            name="guidance_methods",
            title="Guidance methods compared",
            verb="sample",
            axes=(
                Axis("model", "models", "model"),
                Axis("prompt", "prompts", "prompt", default=""),
                Axis("style", "styles", IMAGE),
                Axis("loss", "losses"),
                Axis("network", "networks", "network", default=DEFAULT_NETWORK),
                Axis("layers", "layer_sets", "layers"),
                Axis("method", "methods"),
                Axis("scale", "scales", "scale"),
                Axis("seed", "seeds", "seed"),
            ),
            batched="method",
            grouped="seed",
            command=_sample_methods,
            reference="style",
            canonical=_methods_canonical,
            baseline=lambda plan, values: _unscaled(plan, "guidance_methods", values),
            gpu_always=True,
            metrics_kind="guidance",
            combinations=_method_combinations,
            figures=lambda config: _guidance_figures(config.get("guidance_methods", {}), "guidance_methods"),
        ),
    )
}
"""Every experiment the workflow knows, by its config section's name."""
METRIC_KINDS = tuple(dict.fromkeys(spec.kind for spec in EXPERIMENTS.values()))
"""What an output can be scored as (``stylediff metrics --kind``): the experiments' metrics kinds."""


def lookup(name: str) -> Experiment:
    """The spec of experiment ``name``; ConfigError (one line, the valid names) for an unknown one."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}") from None
