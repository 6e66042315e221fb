"""What every registered loss, feature network, guidance method and metric promises, checked on each one
(and on throw-away registrations, below: the recipes of docs/concepts.md): tiny sizes, so the whole module runs in
seconds.

* a style loss: one finite value per image ``(N,)`` in the images' dtype, a finite gradient, the same after
  ``.to(float64)``, its targets kept as buffers, a row in the docs;
* a feature network (where its weights are present; CLIP and CSD as tiny random checkpoints): every layer's
  activation ``(N, C, H, W)`` with at least one position at ``min_size``, frozen, a gradient to the input;
* a guidance method: its default scale inside its scale range, every knob a ``stylediff sample`` flag, one
  guided step on a tiny random UNet giving a finite x_{t−1} of the sample's shape, a page in the docs and nav;
* a metric: its columns and kinds declared and valid, what it computes among its columns, a docs row.
"""

from __future__ import annotations

import re
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch

from stylediff.core.images import load_image
from stylediff.core.seeding import ImageStreams, drawing_from
from stylediff.diffusion.methods import METHODS
from stylediff.evaluation.metrics import METRICS
from stylediff.networks import NETWORKS, load_network, network_available, network_status
from stylediff.nst.losses import STYLE_LOSSES

from .conftest import ROOT, docs_problems, naming, run_main, save_tiny_ddpm, schema_problems

LOSS_LAYERS = ["relu1_1", "relu2_1"]
SIDE = 16
"""Image side of the loss and metric checks: enough for relu2_1 (one pooling)."""


def no_docs_problems(name: str) -> None:
    problems = naming(docs_problems(), name)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------- losses
def check_loss(name: str, network) -> None:
    from stylediff.nst.losses import style_objective

    generator = torch.Generator().manual_seed(0)
    style = torch.rand(1, 3, SIDE, SIDE, generator=generator)
    images = torch.rand(2, 3, SIDE, SIDE, generator=generator, requires_grad=True)
    objective = style_objective(network, style, LOSS_LAYERS, name)
    with drawing_from(ImageStreams([1, 2])):  # a loss that draws random numbers draws them per image
        value = objective(images)
    assert value.shape == (2,) and value.dtype == torch.float32 and torch.isfinite(value).all(), value
    value.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0, f"{name}: no gradient to the image"
    term = objective.terms["style"]
    held = []
    for layer in term.layers:
        target = term.target(layer)
        held += [term.scale(layer), *(target if isinstance(target, tuple) else [target])]
    buffers = [buffer for _, buffer in objective.named_buffers()]
    assert all(any(part is buffer for buffer in buffers) for part in held), f"{name}: a target is not a buffer"
    objective.to(torch.float64)
    with drawing_from(ImageStreams([1, 2])):
        again = objective(images.detach().double())
    assert again.shape == (2,) and again.dtype == torch.float64 and torch.isfinite(again).all()
    objective.to(torch.float32)


@pytest.mark.parametrize("name", list(STYLE_LOSSES))
def test_loss_contract(name, vgg):
    check_loss(name, vgg)
    no_docs_problems(name)


# -------------------------------------------------------------------------------------- networks
@pytest.fixture
def stand_ins(tiny_clip_vision, tiny_csd) -> dict[str, object]:
    """Tiny random weights for the networks whose real ones a test machine does not have, by module."""
    return {"clip": tiny_clip_vision, "csd": tiny_csd}


def present_network(name: str, stand_ins: dict):
    """The registered network ``name`` with its own weights, or on a tiny stand-in, or None (skip)."""
    if network_available(name):
        return load_network(name)
    stand_in = stand_ins.get(NETWORKS[name].module)
    return None if stand_in is None else load_network(name, path=stand_in)


def check_network(network) -> None:
    name = network.name
    assert network.layers and set(network.style_layers) <= set(network.layers), name
    assert network.content_layer in network.layers, name
    assert not network.training and not any(p.requires_grad for p in network.parameters()), f"{name} is not frozen"
    side = network.min_size(network.layers)
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0), requires_grad=True)
    features = network(images, list(network.layers))
    assert set(features) == set(network.layers), name
    for layer, activation in features.items():
        assert activation.dim() == 4 and activation.shape[0] == 2, (name, layer, activation.shape)
        assert min(activation.shape[-2:]) >= 1 and torch.isfinite(activation).all(), (name, layer)
    deepest = max(network.style_layers, key=network.layers.index)
    features[deepest].pow(2).sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0, f"{name}: no gradient to the input"


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_contract(name, stand_ins):
    network = present_network(name, stand_ins)
    if network is None:
        pytest.skip(network_status(name))
    assert network.name == name
    check_network(network)
    no_docs_problems(name)


# --------------------------------------------------------------------------------------- methods
def check_method(name: str, model) -> None:
    from stylediff.cli import build_parser
    from stylediff.diffusion import GuidedSampler, make_method

    cls = METHODS[name]
    low, high = cls.scale_range
    assert 0 < low <= cls().scale <= high, f"{name}: default scale {cls().scale} outside {cls.scale_range}"
    sample = build_parser()._subparsers._group_actions[0].choices["sample"]
    sample.format_help()  # builds the method groups
    flags = {action.dest for action in sample._actions}
    assert set(cls.knobs()) <= flags, f"{name}: knobs {set(cls.knobs()) - flags} are no sample flags"
    steps = []
    method = make_method(name, scale=cls().scale, window=(0.0, 1.0))
    side = model.unet.config.sample_size
    references = {
        ref: torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)) for ref in method.needs_references
    }
    objective = (lambda x: (x - 0.5).pow(2).mean(dim=(1, 2, 3))) if method.needs_objective else None
    sampler = GuidedSampler(model.unet, model.scheduler("ddim"), objective, method, references=references)
    sampler([0, 1], num_inference_steps=1, progress=False, callback=steps.append)
    (step,) = steps
    assert step["guided"] and step["x"].shape == (2, *sampler.sample_shape)
    assert torch.isfinite(step["x"]).all(), f"{name}: a non-finite x_(t-1)"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random pixel UNet with self-attention in a down and an up block: every method's needs (an
    attention-based rule reads the decoder's self-attention) on the smallest UNet that has them."""
    from stylediff.diffusion import load_model

    return load_model(save_tiny_ddpm(tmp_path_factory.mktemp("tiny-attention-ddpm"), attention=True))


@pytest.mark.parametrize("name", list(METHODS))
def test_method_contract(name, tiny_model):
    check_method(name, tiny_model)
    no_docs_problems(name)


# --------------------------------------------------------------------------------------- metrics
def check_metric(name: str, scorer, images) -> None:
    from stylediff.evaluation.metrics import Item
    from stylediff.workflow.experiments import METRIC_KINDS

    metric = METRICS[name]()
    columns = metric.columns()
    assert columns and len(set(columns)) == len(columns) and all(isinstance(c, str) for c in columns), name
    assert metric.label and isinstance(metric.higher_is_better, bool), name
    assert metric.kinds and set(metric.kinds) <= set(METRIC_KINDS), f"{name}: kinds {metric.kinds}"
    for kind in metric.kinds:
        item = Item(
            kind=kind,
            image=torch.rand(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3)),
            config={"layer": LOSS_LAYERS[0], "content_layer": LOSS_LAYERS[0], "size": SIDE},
            reference_path=str(images["reference"]),
            baseline_path=str(images["baseline"]),
        )
        values = metric.compute(scorer, item)
        assert set(values) <= set(columns), f"{name} computed undeclared columns {set(values) - set(columns)}"


@pytest.fixture(scope="module")
def metric_inputs(tmp_path_factory):
    """A scorer with nothing optional (no LPIPS, held-out networks or text score) and two small images."""
    from stylediff.core.images import save_image
    from stylediff.evaluation.scorer import Scorer

    folder = tmp_path_factory.mktemp("metric-contract")
    images = {}
    for seed, key in enumerate(("reference", "baseline")):
        images[key] = folder / f"{key}.png"
        save_image(torch.rand(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed)), images[key])
    return Scorer(lpips=False, heldout=False, text_score=False), images


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_contract(name, metric_inputs):
    check_metric(name, *metric_inputs)
    no_docs_problems(name)


# ------------------------------------------------------------------ the recipes of docs/concepts.md
def recipe(title: str) -> str:
    """The paragraph of docs/concepts.md "Adding things" that starts with ``**TITLE:**``."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    found = re.search(rf"^\*\*{re.escape(title)}:\*\*(.*?)(?=^\*\*|^#|\Z)", text, flags=re.S | re.M)
    assert found, f"docs/concepts.md has no recipe **{title}:**"
    return found.group(1)


def check_recipe_names(title: str, cls, base, also=()) -> None:
    """What the throw-away class sets is what its base class declares and what the recipe names (a renamed
    attribute fails here until the recipe says the new name)."""
    text = recipe(title)
    knobs = set(cls.knobs()) - set(base.knobs()) if hasattr(cls, "knobs") else set()
    for attr in [name for name in vars(cls) if not name.startswith("_") and name not in knobs]:
        assert hasattr(base, attr), f"{base.__name__} declares no {attr}"
        assert re.search(rf"`{attr}\b", text), f"the recipe **{title}:** does not name `{attr}`"
    for attr in also:
        assert re.search(rf"`{attr}\b", text), f"the recipe **{title}:** does not name `{attr}`"


def help_and_parse(capsys, monkeypatch, verb: str, argv: list[str]) -> str:
    """``stylediff VERB --help`` (one option per line) after checking that ``VERB ARGV`` parses."""
    from stylediff.cli import build_parser

    build_parser().parse_args([verb, *argv])
    monkeypatch.setenv("COLUMNS", "2000")
    code, out, _ = run_main(capsys, [verb, "--help"])
    assert code == 0
    return out


@contextmanager
def registered(registry, cls):
    registry.register(cls)
    try:
        yield cls.name
    finally:
        del registry[cls.name]


def test_recipe_a_style_loss(capsys, monkeypatch, vgg):
    from stylediff.nst.losses import StyleLoss

    class ChannelMeans(StyleLoss):
        name = "throwaway_loss"

        def represent(self, features):
            return features.flatten(2).mean(dim=2)

        def compare(self, rep, target):
            return (rep - target).pow(2).mean(dim=1)

        def magnitude(self, target):
            return target.pow(2).mean()

    check_recipe_names("A style loss", ChannelMeans, StyleLoss)
    with registered(STYLE_LOSSES, ChannelMeans) as name:
        text = help_and_parse(capsys, monkeypatch, "texture", ["--style", "s", "--out", "o", "--loss", name])
        assert f", {name} (default: gram)" in text
        assert schema_problems() == [f"schemas/config.schema.yaml $defs.loss.enum: add {name!r}"]
        assert naming(docs_problems(), name) == [
            f"docs/part1/losses.md: add the table row '| `{name}` | statistic | distance |'"
        ]
        check_loss(name, vgg)
    assert not schema_problems()


def test_recipe_a_guidance_method(capsys, monkeypatch, tiny_model):
    from stylediff.diffusion.methods import Evaluations, GuidanceMethod
    from stylediff.diffusion.methods.base import knob, x0_gradient

    @dataclass
    class Nudge(GuidanceMethod):
        name = "throwaway_method"
        paper = "nobody, a method made up to test the recipe"
        reference = "tests/test_contracts.py"
        differentiates_unet = False
        scale_range = (0.5, 2.0)
        scale: float = 1.0
        push: float = knob(0.5, "how far x0-hat moves down the gradient")

        def pass_evaluations(self) -> Evaluations:
            return Evaluations(unet_forward=1, objective_forward=1, objective_backward=1)

        def guided_pass(self, ctx, x):
            with torch.no_grad():
                out = ctx.unet(x)
            base = ctx.base_step(out, x)
            loss, grad = x0_gradient(ctx, base.x0)
            grad = ctx.check_finite(loss, grad, self.scale)
            return ctx.finish(base, d_x0=-self.scale * self.push * grad)

    check_recipe_names("A guidance method", Nudge, GuidanceMethod, also=("knob",))
    with registered(METHODS, Nudge) as name:
        argv = ["--model", "m", "--style", "s", "--out", "o", "--method", name, "--push", "0.7"]
        text = help_and_parse(capsys, monkeypatch, "sample", argv)
        assert f", {name} (stylediff methods describes them)" in text and f"{name}: {Nudge.paper}" in text
        assert schema_problems() == [f"schemas/config.schema.yaml $defs.method.enum: add {name!r}"]
        assert [line.split(":")[0] for line in naming(docs_problems(), name)] == [
            "docs/part2/methods/index.md",
            f"docs/part2/methods/{name}.md",
            "mkdocs.yml nav (Guidance methods)",
        ]
        check_method(name, tiny_model)


def test_recipe_a_feature_network(capsys, monkeypatch):
    from torch import nn

    from stylediff.networks import NetworkSpec
    from stylediff.networks.base import FeatureNetwork

    class TwoConvs(FeatureNetwork):
        name = "throwaway_network"
        layers = ("conv1", "relu1", "pool1", "conv2", "relu2")
        style_layers = ("relu1", "relu2")
        content_layer = "relu2"

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
            self._freeze()

        def min_size(self, layers):
            return 2 if set(self.check_layers(layers)) & {"pool1", "conv2", "relu2"} else 1

        def provenance(self):
            return {"name": self.name, "weights": "random (seed 0)"}

        def forward(self, images, layers):
            out = {"conv1": self.conv1(images)}
            out["relu1"] = out["conv1"].relu()
            out["pool1"] = nn.functional.max_pool2d(out["relu1"], 2)
            out["conv2"] = self.conv2(out["pool1"])
            out["relu2"] = out["conv2"].relu()
            return {name: out[name] for name in layers}

    module = types.ModuleType("stylediff.networks.throwaway")
    module.load = lambda name, path: TwoConvs()
    module.available = lambda name, path: True
    check_recipe_names("A feature network", TwoConvs, FeatureNetwork, also=("load", "available", "NetworkSpec"))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with registered(NETWORKS, NetworkSpec("throwaway_network", "throwaway", "Throwaway", "nothing to fetch")) as name:
        text = help_and_parse(capsys, monkeypatch, "texture", ["--style", "s", "--out", "o", "--network", name])
        assert f", {name} (default: VGG-19 of --weights)" in text
        assert run_main(capsys, ["layers", "--network", name])[1].split() == list(TwoConvs.layers)
        assert schema_problems() == [f"schemas/config.schema.yaml $defs.network.enum: add {name!r}"]
        assert [line.split(" ")[0].rstrip(":") for line in naming(docs_problems(), name)] == [
            "stylediff/networks/__init__.py",
            "docs/reference/losses.md",
        ]
        check_network(load_network(name))


def test_recipe_a_metric(metric_inputs):
    from stylediff.evaluation.document import image_metrics
    from stylediff.evaluation.metrics import Metric

    class Brightness(Metric):
        name = "throwaway_metric"
        label = "mean brightness"
        kinds = ("texture",)
        higher_is_better = True

        def compute(self, scorer, item):
            return {self.name: item.image.mean().item()}

    check_recipe_names("A metric", Brightness, Metric)
    scorer, images = metric_inputs
    with registered(METRICS, Brightness) as name:
        assert not schema_problems()  # the schema names no metric
        assert naming(docs_problems(), name) == [
            f"docs/workflow/metrics.md: add the table row '| `{name}` | columns | kinds | what |'"
        ]
        check_metric(name, scorer, images)
        document = image_metrics(scorer, "texture", images["baseline"], images["reference"])
        assert document["metrics"][name] == pytest.approx(load_image(images["baseline"]).mean().item())
