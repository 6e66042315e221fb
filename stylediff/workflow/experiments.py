"""The experiments the workflow knows: each one's spec (axes, batched axis, command line, references,
figures), by its config section's name.

An experiment is an :class:`~stylediff.workflow.spec.Experiment` spec: its axes (each a config key holding a list of values, a
run-id kind and the verb flag that takes the value), the verb its runs call, the axis (or consecutive
axes) whose values one job runs together in one process (``batched``), optionally the axis that one
command line covers (``grouped``: the seeds of one sampling setting are one batch of images; a job then
runs the batched axis *and every axis after it*, so one sampling process imports diffusers and loads
its model once for all of them), the rest of its command line as data (``command``: the axes' flags in
order, among the :class:`Setting` entries of its section), which images are its reference and its baseline, and
which figures it draws. :func:`stylediff.workflow.plan.build` turns a config into the runs of these
specs and :meth:`Experiment.command_line` into their command lines. Torch-free.

**Adding an experiment** (say ``diffusion_transfer``): an ``Experiment(...)`` in :data:`EXPERIMENTS`
with its ``name`` (its config section), ``title``, ``verb``, ``axes`` (``Axis(name, config key, kind,
flag=...)``; a new experiment's axes need no default, see the axis rule in
:mod:`stylediff.workflow.runids`), ``batched`` (the axes one process runs), ``command`` (the order of
its flags: axis names and ``Setting("key", default)`` of its section; the VGG flags are
:data:`VGG_FLAGS`), ``reference`` and ``figures``. Then its section and its name in
``schemas/config.schema.yaml`` (``tests/test_package.py`` checks the names), a preset's section in
``config.yaml`` or ``config/*.yaml``, and ``rules/<name>.smk``, the run rule (copy ``rules/transfer.smk``
and change the names). A config check that concerns one experiment is spec data too
(``sized_layers``), read by :func:`stylediff.workflow.plan.check`.

**Adding an axis**: its ``Axis`` line in the spec (and its key in the schema); see docs/concepts.md.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..core.errors import ConfigError
from .runids import IMAGE, Axis, model_slug, run_id
from .spec import Experiment, Knobs, Setting, method_entries, quoted


def _scale_list(scales: Any) -> str:
    """``--scales``: ``auto`` (the CLI's default, said on the line), the scales, or ``none`` (one scale)."""
    return scales if scales == "auto" else ",".join(str(s) for s in scales) or "none"


DEVICE, WEIGHTS = Setting("device", top=True), Setting("weights", top=True)
VGG_FLAGS = (DEVICE, WEIGHTS, Setting("pooling", top=True))
"""The VGG-19 a run optimises or guides with: the config's device, weights and pooling."""
OPTIMIZE = (
    Setting("size"),
    Setting("steps"),
    Setting("scales", "auto", render=_scale_list),
    Setting("optimizer", "lbfgs"),
)
"""The optimisation flags a texture and a transfer run share (then ``--seed`` and the VGG flags)."""
CONTENT_LAYER = "relu4_2"
"""The transfer's content layer when the config names none (Gatys et al. 2016)."""


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


def _method_args(plan: Any, spec: Experiment, values: dict) -> list[str]:
    """Scale 0 (method ``unguided``) samples without guidance; the verb still takes a method: the first."""
    entries = method_entries(plan.config[spec.name])
    return ["--method", quoted(values["method"] if values["scale"] else next(iter(entries)))]


def _network_args(plan: Any, spec: Experiment, values: dict) -> list[str]:
    """VGG-19, the default network, takes the config's weights and pooling; another network is named."""
    network = values.get("network", DEFAULT_NETWORK)
    if network == DEFAULT_NETWORK:
        return [arg for setting in VGG_FLAGS for arg in setting.args(plan, spec, values)]
    return ["--network", quoted(network), *DEVICE.args(plan, spec, values)]


TEXT_FLAGS = (
    Setting("negative_prompt", None, omit=("",), when="prompt"),
    Setting("cfg_scale", None, when="prompt"),
    Setting("decoder", "vae", omit=("vae",)),
    Setting("vae_checkpointing", False, switch=True),
)
"""A text-conditioned model's negative prompt and CFG scale (with a prompt), and a latent model's decoder
options (none for a pixel model: the config leaves them out)."""
SAMPLE = (Setting("scheduler", "ddim"), Setting("steps"), Setting("eta", 0.0))
"""The sampler flags of both guidance experiments."""


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
                    f"{methods_figure_stem(slug, network)}_matched.png",
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
                Axis("image", "images", IMAGE, flag="--image"),
                Axis("layer", "layers", flag="--layer"),
                Axis("pooling", "poolings", fallback="pooling", flag="--pooling"),
                Axis("seed", "seeds", "seed", flag="--seed"),
            ),
            batched="layer",
            command=(
                "image",
                "layer",
                Setting("size"),
                Setting("steps"),
                Setting("optimizer", "lbfgs"),
                Setting("tv_weight", 0),
                "seed",
                DEVICE,
                WEIGHTS,
                "pooling",
            ),
            reference="image",
            figures=lambda config: ["inversion_grid.png", "inversion_error.png"],
        ),
        Experiment(
            name="texture",
            title="Texture synthesis",
            verb="texture",
            axes=(
                Axis("style", "styles", IMAGE, flag="--style"),
                Axis("layers", "layer_sets", "layers", flag="--layers"),
                Axis("loss", "losses", flag="--loss"),
                Axis("seed", "seeds", "seed", flag="--seed"),
            ),
            batched=("layers", "loss"),
            command=("style", "layers", "loss", *OPTIMIZE, "seed", *VGG_FLAGS),
            reference="style",
            combinations=_texture_combinations,
            figures=lambda config: ["texture_layers_grid.png", "texture_losses_grid.png", "texture_gram_vs_layers.png"],
        ),
        Experiment(
            name="transfer",
            title="Style transfer",
            verb="transfer",
            axes=(
                Axis("content", "contents", IMAGE, flag="--content"),
                Axis("style", "styles", IMAGE, flag="--style"),
                Axis("loss", "losses", flag="--loss"),
                Axis("seed", "seeds", "seed", flag="--seed"),
            ),
            batched="loss",
            command=(
                "content",
                "style",
                Setting("layers", render=",".join),
                "loss",
                Setting("content_layer", CONTENT_LAYER),
                Setting("style_weight", 10),
                *OPTIMIZE,
                "seed",
                *VGG_FLAGS,
            ),
            reference="style",
            baseline=lambda plan, values: plan.image(values["content"]),
            figures=lambda config: ["transfer_grid.png"],
            sized_layers=lambda section: [section["layers"] + [section.get("content_layer", CONTENT_LAYER)]],
        ),
        Experiment(
            name="guidance",
            title="Style-guided diffusion sampling",
            verb="sample",
            axes=(
                Axis("model", "models", "model", flag="--model"),
                Axis("style", "styles", IMAGE, flag="--style"),
                Axis("loss", "losses", flag="--loss"),
                Axis("layers", "layer_sets", "layers", flag="--layers"),
                Axis("window", "windows", "window", flag="--window"),
                Axis("method", "methods", flag="--method"),
                Axis("normalization", "normalizations", default="per_step", flag="--normalize"),
                Axis("scale", "scales", "scale", flag="--scale"),
                Axis("seed", "seeds", "seed", flag="--seeds"),
            ),
            batched="method",
            grouped="seed",
            command=(
                "model",
                "style",
                "scale",
                "method",
                "normalization",
                "loss",
                "layers",
                *SAMPLE,
                "window",
                Setting("recurrence", 1),
                "seed",
                *VGG_FLAGS,
            ),
            reference="style",
            canonical=_unguided_canonical,
            baseline=lambda plan, values: _unscaled(plan, "guidance", values),
            gpu_always=True,
            category="Guided diffusion",
            figures=lambda config: _guidance_figures(config.get("guidance", {}), "guidance"),
        ),
        Experiment(
            name="guidance_methods",
            title="Guidance methods compared",
            verb="sample",
            axes=(
                Axis("model", "models", "model", flag="--model"),
                Axis("prompt", "prompts", "prompt", default="", flag="--prompt"),
                Axis("style", "styles", IMAGE, flag="--style"),
                Axis("loss", "losses", flag="--loss"),
                Axis("network", "networks", "network", default=DEFAULT_NETWORK, flag="--network", argv=_network_args),
                Axis("layers", "layer_sets", "layers", flag="--layers"),
                Axis("method", "methods", flag="--method", argv=_method_args),
                Axis("scale", "scales", "scale", flag="--scale"),
                Axis("seed", "seeds", "seed", flag="--seeds"),
            ),
            batched="method",
            grouped="seed",
            command=(
                "model",
                "prompt",
                *TEXT_FLAGS,
                "style",
                "scale",
                "method",
                "loss",
                "layers",
                *SAMPLE,
                "seed",
                Knobs(),
                "network",
            ),
            reference="style",
            canonical=_methods_canonical,
            baseline=lambda plan, values: _unscaled(plan, "guidance_methods", values),
            gpu_always=True,
            metrics_kind="guidance",
            category="Guided diffusion",
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
