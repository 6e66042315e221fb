"""The guidance methods (stylediff.diffusion.methods): each one's defining property, on a tiny random
UNet (and on the analytic Gaussian model where an identity must hold exactly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stylediff.core.seeding import derived_seed
from stylediff.diffusion import METHODS, GuidedSampler, load_model, make_method, make_scheduler
from stylediff.diffusion.analytic import GaussianDenoiser, QuadraticLoss
from stylediff.diffusion.methods.base import Evaluations, GuidanceMethod

from .conftest import Counting, stylediff

diffusers = pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "data" / "styles" / "starry_night.jpg"
FAST = {"ugd": {"recurrence": 2}, "freedom": {"window": (0.0, 1.0), "travel_window": (0.3, 0.7)}}
"""Knobs that keep the tests fast (a 6-step run of UGD's default 6 recurrences is 36 passes)."""


@pytest.fixture(scope="module")
def model(tiny_ddpm_dir):
    return load_model(tiny_ddpm_dir)


@pytest.fixture(scope="module")
def style_loss():
    from stylediff.core.images import load_image
    from stylediff.networks.vgg19 import load_vgg19
    from stylediff.nst.losses import style_objective

    return style_objective(load_vgg19(), load_image(STYLE, 32), ["relu1_1", "relu2_1"])


def pipeline_images(pipe, seeds, steps, **kwargs) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    images = pipe(
        batch_size=len(seeds), generator=generators, num_inference_steps=steps, output_type="pt", **kwargs
    ).images
    images = torch.as_tensor(images)
    return images.permute(0, 3, 1, 2) if images.shape[-1] == 3 else images


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("scheduler,eta", [("ddim", 0.0), ("ddim", 0.6), ("ddpm", None)])
def test_scale_zero_reproduces_the_diffusers_pipeline(model, style_loss, name, scheduler, eta):
    seeds, steps = [3, 11], 6
    pipe_cls = diffusers.DDIMPipeline if scheduler == "ddim" else diffusers.DDPMPipeline
    kwargs = {"eta": eta} if eta is not None else {}
    expected = pipeline_images(pipe_cls(unet=model.unet, scheduler=model.scheduler(scheduler)), seeds, steps, **kwargs)
    out = GuidedSampler(model.unet, model.scheduler(scheduler), style_loss, make_method(name, scale=0.0))(
        seeds, num_inference_steps=steps, eta=eta or 0.0, progress=False
    )
    assert out.images.shape == expected.shape == (2, 3, 16, 16)
    assert (out.images - expected).abs().max().item() <= 1e-5
    assert not any(record["guided"] for record in out.history)


OBJECTIVE_METHODS = [name for name, cls in METHODS.items() if cls.needs_objective]
"""The methods that guide by the objective (attention_distillation reads the UNet's attention instead:
tests/test_attention_distillation.py)."""


@pytest.mark.parametrize("name", OBJECTIVE_METHODS)
def test_gradient_path_and_evaluations_are_what_the_method_declares(model, style_loss, name):
    """Backward hooks on the UNet and a counting objective: whether the gradient goes through the UNet,
    and the UNet/objective evaluations of every step, equal what `stylediff methods` says."""
    steps, batch = 5, 2
    method = make_method(name, **{**FAST.get(name, {}), "scale": METHODS[name]().scale})
    objective = Counting(style_loss, batch)
    counts = {"forward": 0, "backward": 0}
    hooks = [
        model.unet.conv_in.register_forward_hook(lambda *a: counts.__setitem__("forward", counts["forward"] + 1)),
        model.unet.conv_in.register_full_backward_hook(
            lambda *a: counts.__setitem__("backward", counts["backward"] + 1)
        ),
    ]
    per_step = []
    try:

        def record(info):
            per_step.append((counts["forward"], counts["backward"], objective.forward, objective.backward))

        GuidedSampler(model.unet, model.scheduler("ddim"), objective, method)(
            [0, 1], num_inference_steps=steps, progress=False, callback=record
        )
    finally:
        for hook in hooks:
            hook.remove()
    previous = (0, 0, 0, 0)
    for index, totals in enumerate(per_step):
        measured = Evaluations(*(now - before for now, before in zip(totals, previous)))
        assert measured == method.evaluations(index, steps), (name, index)
        previous = totals
    guided = [method.evaluations(i, steps).unet_backward for i in range(steps)]
    assert (sum(guided) > 0) == type(method).differentiates_unet, name
    assert sum(method.evaluations(i, steps).objective_backward for i in range(steps)) > 0


@pytest.fixture(scope="module")
def demo_model():
    """The embedded pretrained demo model: the methods' default scales are tuned on it."""
    return load_model(ROOT / "models" / "ddpm-emoji-faces-32")


@pytest.mark.parametrize("name", OBJECTIVE_METHODS)
def test_a_larger_scale_lowers_the_final_style_loss(demo_model, style_loss, name):
    """For every method on the demo model: scale 0, its default/4 and its default, same seeds: the
    style loss falls."""
    default = METHODS[name]().scale
    losses = []
    for scale in (0.0, default / 4, default):
        method = make_method(name, **{**FAST.get(name, {}), "scale": scale})
        out = GuidedSampler(demo_model.unet, demo_model.scheduler("ddim"), style_loss, method)(
            [1, 2], num_inference_steps=10, progress=False
        )
        losses.append(torch.tensor(out.losses))
    assert (losses[1] < losses[0]).all() and (losses[2] < losses[1]).all(), (name, losses)


def test_recurrence_renoises_by_the_forward_process_with_its_own_stream(model):
    """Between passes x_t = √(ᾱ_t/ᾱ_prev)·x_{t−1} + √(1 − ᾱ_t/ᾱ_prev)·ξ, ξ from the recurrence stream of
    the image's seed (not the sampler's), and every pass draws the unguided run's step noise."""
    inputs, outputs = [], []

    class Plain(GuidanceMethod):  # a "guided" pass that changes nothing: the scheduler's own step
        name = "plain"

        def pass_evaluations(self):
            return Evaluations(unet_forward=1)

        def guided_pass(self, ctx, x):
            inputs.append(x.clone())
            prev = ctx.scheduler_step(ctx.unet(x), x).prev_sample
            again = ctx.scheduler_step(ctx.unet(x), x).prev_sample  # the same step noise each call
            assert torch.equal(prev, again)
            outputs.append(prev.clone())
            return prev

    scheduler = model.scheduler("ddpm")  # DDPM draws step noise: every pass must draw the same
    method = Plain(scale=1.0, recurrence=3, window=(0.3, 0.4))  # step 2 of 4 only
    GuidedSampler(model.unet, scheduler, lambda images: images.sum(dim=(1, 2, 3)), method)(
        [4], num_inference_steps=4, progress=False
    )
    assert len(inputs) == 3
    t, prev_t = scheduler.timesteps[1], scheduler.timesteps[2]
    ratio = scheduler.alphas_cumprod[t] / scheduler.alphas_cumprod[prev_t]
    stream = torch.Generator().manual_seed(derived_seed(4, "recurrence"))
    for repeat in (1, 2):
        xi = torch.randn((1, 3, 16, 16), generator=stream)
        assert torch.allclose(inputs[repeat], ratio.sqrt() * outputs[repeat - 1] + (1 - ratio).sqrt() * xi, atol=1e-6)


def test_dps_steps_along_the_unsquared_residual_norm(model):
    """DPS: ∇√L, so a loss scaled by 4 gives a step scaled by 2 (a squared-norm rule would give 4)."""
    rms = {}
    for factor in (1.0, 4.0):
        objective = lambda images, f=factor: f * (images - 0.3).pow(2).flatten(1).sum(1)  # noqa: E731
        out = GuidedSampler(model.unet, model.scheduler("ddim"), objective, make_method("dps", scale=0.05))(
            [5], num_inference_steps=4, progress=False
        )
        rms[factor] = out.history[0]["step_rms"][0]
    assert rms[4.0] / rms[1.0] == pytest.approx(2.0, rel=1e-4)


def analytic(std=0.2):
    scheduler = make_scheduler(
        "ddim",
        {"num_train_timesteps": 1000, "beta_schedule": "linear", "clip_sample": False, "prediction_type": "epsilon"},
    )
    return GaussianDenoiser(scheduler.alphas_cumprod, mean=0.0, std=std), scheduler


def test_tfg_with_mpgd_settings_gives_mpgd_s_sample():
    """TFG with ρ = 0, N_iter = 1, γ = 0, a constant μ schedule and log p = −L is TFG's own MPGD baseline (mpgd
    with step_schedule constant, gradient squared): the same sample, on the analytic model (whose x̂0 needs no
    clipping)."""
    unet, scheduler = analytic()
    loss = QuadraticLoss(target=0.5)
    seeds = [0, 1, 2, 3]
    tfg = GuidedSampler(
        unet,
        scheduler,
        loss,
        make_method(
            "tfg", scale=1.0, rho=0.0, mu=0.3, inner_steps=1, variance=0.0, mu_schedule="constant", log_prob="squared"
        ),
        guidance_size=4,
    )
    mpgd = GuidedSampler(
        unet,
        make_scheduler("ddim", scheduler.config),
        loss,
        make_method("mpgd", scale=0.3, step_schedule="constant", gradient="squared"),
        guidance_size=4,
    )
    a, b = tfg(seeds, num_inference_steps=10, progress=False), mpgd(seeds, num_inference_steps=10, progress=False)
    assert (a.images - a.images.mean()).abs().max() > 0.01  # not a constant image
    assert torch.allclose(a.images, b.images, atol=1e-6)
    reference = GuidedSampler(
        unet, make_scheduler("ddim", scheduler.config), loss, make_method("mpgd", scale=0.3, gradient="squared")
    )(seeds, num_inference_steps=10, progress=False)
    assert (reference.images - b.images).abs().max() > 1e-3  # the original 1/√ᾱ_prev schedule differs


def test_analytic_denoiser_samples_its_gaussian():
    """The exact ε-predictor's unguided samples are N(m, s²I): mean and std within 4 standard errors.
    DDIM (η = 0) integrates the probability-flow ODE, exact in the limit of many steps: at 1000 steps
    the std is 0.199 of 0.2 (at 50 steps 0.176: the sampler's own discretisation bias)."""
    unet, scheduler = analytic(std=0.2)
    unet.mean = 0.3
    out = GuidedSampler(unet, scheduler)(list(range(400)), num_inference_steps=1000, progress=False)
    x = out.images * 2 - 1  # model space
    n = x.numel()
    assert abs(x.mean().item() - 0.3) < 4 * 0.2 / n**0.5
    assert abs(x.std().item() - 0.2) < 4 * 0.2 / (2 * n) ** 0.5


def test_methods_json_and_sample_flags_name_every_registered_method():
    """(The schema's enums and --method's choices: tests/test_registries.py.)"""
    from stylediff.cli import build_parser

    names = list(METHODS)
    parser = build_parser()
    knobs = {knob for cls in METHODS.values() for knob in cls.knobs()}
    sample = parser._subparsers._group_actions[0].choices["sample"]
    sample.format_help()  # builds the deferred method groups
    assert knobs <= {action.dest for action in sample._actions}, "every knob of every method is a sample flag"
    printed = stylediff("methods", "--json").stdout
    rows = json.loads(printed)
    assert [row["name"] for row in rows] == names
    for row in rows:
        assert {"name", "paper", "differentiates_unet", "evaluations", "defaults", "scale_range"} <= set(row)
        low, high = row["scale_range"]
        assert 0 < low < row["defaults"]["scale"] < high, row["name"]
