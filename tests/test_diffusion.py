"""Guided sampling (stylediff.diffusion) on a tiny randomly initialised UNet saved as a diffusers folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylediff.diffusion import (GuidanceConfig, StyleGuidedSampler, default_guidance_size, image_grid, load_model,
                                 make_scheduler)
from stylediff.errors import ConfigError, NumericalError, ResourceError, WeightsError

diffusers = pytest.importorskip("diffusers")

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "starry_night.jpg"
LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


def tiny_unet(seed: int = 0):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                 block_out_channels=(32, 32), norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-ddpm")
    diffusers.DDPMPipeline(unet=tiny_unet(), scheduler=diffusers.DDPMScheduler(num_train_timesteps=1000)
                           ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def style_loss():
    from stylediff.images import load_image
    from stylediff.losses import style_objective
    from stylediff.vgg import load_vgg19

    return style_objective(load_vgg19(), load_image(STYLE, 32), LAYERS)


def pipeline_images(pipe, seeds, steps, **kwargs) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    images = pipe(batch_size=len(seeds), generator=generators, num_inference_steps=steps, output_type="pt",
                  **kwargs).images
    images = torch.as_tensor(images)
    return images.permute(0, 3, 1, 2) if images.shape[-1] == 3 else images


def test_load_model_records_provenance(model, model_dir):
    assert 100_000 < model.info["parameters"] < 1_000_000
    assert model.info["source"] == "local" and model.info["weights_file"].startswith("unet/")
    assert len(model.info["sha256"]) == 64
    assert not any(p.requires_grad for p in model.unet.parameters())
    assert model.scheduler("ddim").__class__.__name__ == "DDIMScheduler"


@pytest.mark.parametrize("name,eta", [("ddim", 0.0), ("ddim", 0.6), ("ddpm", None)])
def test_scale_zero_reproduces_diffusers_pipeline(model, style_loss, name, eta):
    seeds, steps = [3, 11], 6
    pipe_cls = diffusers.DDIMPipeline if name == "ddim" else diffusers.DDPMPipeline
    kwargs = {"eta": eta} if eta is not None else {}
    expected = pipeline_images(pipe_cls(unet=model.unet, scheduler=model.scheduler(name)), seeds, steps, **kwargs)
    sampler = StyleGuidedSampler(model.unet, model.scheduler(name), style_loss, GuidanceConfig(scale=0.0))
    out = sampler(seeds, num_inference_steps=steps, eta=eta or 0.0, progress=False)
    assert out.images.shape == expected.shape == (2, 3, 16, 16)
    assert (out.images - expected).abs().max().item() <= 1e-5
    assert len(out.losses) == 2 and all(loss > 0 for loss in out.losses)
    assert not any(record["guided"] for record in out.history)


def test_window_outside_trajectory_and_recurrence_at_scale_zero_change_nothing(model, style_loss):
    base = StyleGuidedSampler(model.unet, model.scheduler("ddpm"))([5], num_inference_steps=4, progress=False)
    for config in (GuidanceConfig(scale=0.5, window=(0.0, 0.0)), GuidanceConfig(scale=0.0, recurrence=3)):
        out = StyleGuidedSampler(model.unet, model.scheduler("ddpm"), style_loss, config)(
            [5], num_inference_steps=4, progress=False)
        assert torch.equal(out.images, base.images)


def test_window_selects_steps():
    config = GuidanceConfig(scale=1.0, window=(0.0, 0.5))
    assert [config.active(i, 10) for i in range(10)] == [True] * 5 + [False] * 5
    late = GuidanceConfig(scale=1.0, window=(0.7, 1.0))
    assert [late.active(i, 10) for i in range(10)] == [False] * 7 + [True] * 3
    assert not GuidanceConfig(scale=0.0).active(0, 10)


def test_gradient_through_unet_reaches_x_t_and_x0_mode_skips_unet(model, style_loss):
    scheduler = model.scheduler("ddim")
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[3]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    calls = []
    handle = model.unet.conv_in.register_full_backward_hook(lambda *args: calls.append(1))
    try:
        for mode in ("through_unet", "x0"):
            calls.clear()
            sampler = StyleGuidedSampler(model.unet, scheduler, style_loss, GuidanceConfig(scale=1.0, mode=mode))
            grad, loss, _, _, x0 = sampler.guidance_gradient(x, t)
            assert grad.shape == x.shape and torch.isfinite(grad).all() and torch.isfinite(loss).all()
            assert (grad.flatten(1).norm(dim=1) > 0).all(), mode
            assert bool(calls) == (mode == "through_unet"), mode
            if mode == "x0":  # the gradient is the objective's at x0-hat itself: check against autograd
                leaf = x0.clone().requires_grad_(True)
                style_loss(sampler.to_objective_input(leaf)).sum().backward()
                assert torch.allclose(grad, leaf.grad, rtol=1e-4, atol=1e-8)
            else:  # and differs from it: the UNet's Jacobian is in the chain
                through = grad
    finally:
        handle.remove()
    assert not torch.allclose(through, grad)


@pytest.mark.parametrize("mode,scales", [("x0", (0.0, 0.005, 0.03)), ("through_unet", (0.0, 0.3))])
def test_larger_scale_lowers_final_style_loss(model, style_loss, mode, scales):
    losses = []
    for scale in scales:
        sampler = StyleGuidedSampler(model.unet, model.scheduler("ddim"), style_loss,
                                     GuidanceConfig(scale=scale, mode=mode))
        out = sampler([1, 2], num_inference_steps=6, progress=False)
        losses.append(torch.tensor(out.losses))
    for lower, higher in zip(losses[1:], losses[:-1]):
        assert (lower < 0.9 * higher).all(), (mode, losses)


def test_x0_step_is_the_ddim_update_from_the_corrected_x0(model):
    """With a constant-gradient loss, x_{t-1} = √ᾱ_prev·(x̂0 − s·σ_t·g·50/n) + √(1−ᾱ_prev)·ε exactly."""
    scheduler = make_scheduler("ddim", {**model.scheduler_config, "clip_sample": False})
    steps, index, scale = 10, 4, 0.2
    objective = lambda images: images.sum(dim=(1, 2, 3))  # noqa: E731  d/dx0 = 0.5 per pixel (of [-1,1] x0)
    sampler = StyleGuidedSampler(model.unet, scheduler, objective,
                                 GuidanceConfig(scale=scale, mode="x0", normalize="none", guidance_size=16))
    scheduler.set_timesteps(steps)
    t = scheduler.timesteps[index]
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    prev = sampler.step(x, t, index, steps, None)
    with torch.no_grad():
        eps = model.unet(x, t).sample
    ab = scheduler.alphas_cumprod[t]
    ab_prev = scheduler.alphas_cumprod[t - 1000 // steps]
    x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt() - scale * (1 - ab).sqrt() * 0.5 * 50 / steps
    expected = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    assert torch.allclose(prev, expected, atol=1e-5)


@pytest.mark.parametrize("normalize", ["per_step", "first_step", "none"])
def test_gradient_normalisation_rules(model, normalize):
    """per_step: ĝ = g·‖ε‖/‖g‖ each step; first_step: the first guided step's ratio, kept;
    none: ĝ = g. Two steps with gradients of different sizes tell the three apart."""
    scheduler = make_scheduler("ddim", model.scheduler_config)
    sampler = StyleGuidedSampler(model.unet, scheduler, lambda images: images.sum(dim=(1, 2, 3)),
                                 GuidanceConfig(scale=0.5, mode="through_unet", normalize=normalize))
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[2]
    sigma = (1 - scheduler.alphas_cumprod[t]).sqrt()
    generator = torch.Generator().manual_seed(3)
    grads = [torch.randn(2, 3, 8, 8, generator=generator) * size for size in (1.0, 40.0)]
    eps = [torch.randn(2, 3, 8, 8, generator=generator) * size for size in (1.0, 2.0)]
    loss = torch.zeros(2)
    deltas = [sampler._guidance_step(g, loss, e, t, index, 10) for index, (g, e) in enumerate(zip(grads, eps))]

    def norm(x):
        return x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)

    ratio = {"per_step": norm(eps[1]) / norm(grads[1]), "first_step": norm(eps[0]) / norm(grads[0]),
             "none": torch.ones(2, 1, 1, 1)}[normalize]
    assert torch.allclose(deltas[1], 0.5 * sigma * grads[1] * ratio, rtol=1e-5)
    if normalize != "none":  # both rescaling rules give the first step the size of ε
        assert torch.allclose(norm(deltas[0]), 0.5 * sigma * norm(eps[0]), rtol=1e-5)


def test_first_step_normalisation_restarts_with_each_call(model, style_loss):
    sampler = StyleGuidedSampler(model.unet, model.scheduler("ddim"), style_loss,
                                 GuidanceConfig(scale=0.3, mode="x0", normalize="first_step"))
    first, second = (sampler([4], num_inference_steps=4, progress=False) for _ in range(2))
    assert torch.equal(first.images, second.images)
    per_step = StyleGuidedSampler(model.unet, model.scheduler("ddim"), style_loss,
                                  GuidanceConfig(scale=0.3, mode="x0"))([4], num_inference_steps=4, progress=False)
    assert not torch.equal(first.images, per_step.images)


@pytest.mark.parametrize("name,eta", [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)])
def test_through_unet_step_is_the_scheduler_step_with_guided_eps(model, name, eta):
    """Without clipping, step(ε) + k_t·Δ equals the scheduler's own step with ε̂ = ε + s·σ_t·g (D&N)."""
    scheduler = make_scheduler(name, {**model.scheduler_config, "clip_sample": False})
    steps, index, scale = 10, 3, 0.3
    objective = lambda images: images.sum(dim=(1, 2, 3))  # noqa: E731  d/dx_t = 0.5·(∂x0/∂x_t)ᵀ·1
    sampler = StyleGuidedSampler(model.unet, scheduler, objective,
                                 GuidanceConfig(scale=scale, mode="through_unet", normalize="none", guidance_size=16))
    scheduler.set_timesteps(steps)
    t = scheduler.timesteps[index]
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    prev = sampler.step(x, t, index, steps, torch.Generator().manual_seed(9), eta)
    grad = sampler.guidance_gradient(x, t)[0]
    with torch.no_grad():
        eps = model.unet(x, t).sample
    guided = eps + scale * (1 - scheduler.alphas_cumprod[t]).sqrt() * grad
    kwargs = {"eta": eta} if name == "ddim" else {}
    expected = scheduler.step(guided, t, x, generator=torch.Generator().manual_seed(9), **kwargs).prev_sample
    assert (prev - x).abs().max() > 1e-3
    assert torch.allclose(prev, expected, atol=1e-5)


def test_per_image_seeds_do_not_depend_on_the_batch(model, style_loss):
    config = GuidanceConfig(scale=0.2, mode="x0")
    batch = StyleGuidedSampler(model.unet, model.scheduler("ddpm"), style_loss, config)(
        [7, 8, 9], num_inference_steps=5, progress=False)
    alone = StyleGuidedSampler(model.unet, model.scheduler("ddpm"), style_loss, config)(
        8, num_inference_steps=5, progress=False)
    # same noise draws; batched kernels may round differently in the last float bits only
    assert (alone.images[0] - batch.images[1]).abs().max().item() < 1e-3
    assert (batch.images[0] - batch.images[1]).abs().max().item() > 0.05


def test_out_of_memory_splits_the_batch_and_gives_the_same_images(model, style_loss, monkeypatch):
    config = GuidanceConfig(scale=0.2, mode="x0")
    whole = StyleGuidedSampler(model.unet, model.scheduler("ddim"), style_loss, config)(
        [3, 4, 5], num_inference_steps=4, progress=False)
    sampler = StyleGuidedSampler(model.unet, model.scheduler("ddim"), style_loss, config)
    real_sample, tried = sampler._sample, []

    def fits_one_image(seeds, *args):  # a device with room for a single image
        tried.append(len(seeds))
        if len(seeds) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_sample(seeds, *args)

    monkeypatch.setattr(sampler, "_sample", fits_one_image)
    with pytest.warns(UserWarning, match="out of memory at batch size 3"):
        split = sampler([3, 4, 5], num_inference_steps=4, progress=False)
    assert tried == [3, 2, 1, 1, 1] and split.batches == [1, 1, 1] and split.seeds == [3, 4, 5]
    assert (split.images - whole.images).abs().max().item() < 1e-3
    assert split.losses == pytest.approx(whole.losses, rel=1e-3)
    assert len(split.history) == 4 and len(split.history[0]["loss"]) == 3

    monkeypatch.setattr(sampler, "_sample", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(ResourceError, match="out of cpu memory sampling one image"):
        sampler([3], num_inference_steps=4, progress=False)


def test_recurrence_repeats_guided_steps_and_keeps_noise_aligned(model, style_loss):
    runs = {}
    for k in (1, 2):
        config = GuidanceConfig(scale=0.2, mode="x0", recurrence=k, window=(0.0, 0.5))
        runs[k] = StyleGuidedSampler(model.unet, model.scheduler("ddpm"), style_loss, config)(
            [4], num_inference_steps=6, progress=False)
    assert not torch.equal(runs[1].images, runs[2].images)
    assert torch.isfinite(runs[2].images).all()


def test_user_objective_mean_colour(model):
    target = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)

    def redness(images):  # any differentiable callable (N,3,H,W) in [0,1] -> (N,)
        return (images.mean(dim=(2, 3), keepdim=True) - target).pow(2).sum(dim=(1, 2, 3))

    losses = [StyleGuidedSampler(model.unet, model.scheduler("ddim"), redness, GuidanceConfig(scale=scale))(
        [0], num_inference_steps=6, progress=False).losses[0] for scale in (0.0, 1.0)]
    assert losses[1] < 0.5 * losses[0]


def test_non_finite_loss_is_a_numerical_error_unless_clipped(model):
    def broken(images):
        return images.sum(dim=(1, 2, 3)) * float("nan")

    sampler = StyleGuidedSampler(model.unet, model.scheduler("ddim"), broken, GuidanceConfig(scale=0.1))
    with pytest.raises(NumericalError, match=r"step 1/3 .*scale 0\.1"):
        sampler([0], num_inference_steps=3, progress=False)
    guarded = StyleGuidedSampler(model.unet, model.scheduler("ddim"), broken,
                                 GuidanceConfig(scale=0.1, clip_grad=0.05))
    assert torch.isfinite(guarded([0], num_inference_steps=3, progress=False).images).all()


def test_missing_models_are_one_line_weights_errors(tmp_path):
    with pytest.raises(WeightsError) as missing:
        load_model(tmp_path / "no-such-model")
    with pytest.raises(WeightsError) as empty:
        load_model(tmp_path)
    with pytest.raises(WeightsError) as hub:
        load_model("stylediff-test/no-such-model", local_files_only=True, cache_dir=tmp_path)
    for error in (missing, empty, hub):
        assert "\n" not in str(error.value)
    assert "not found" in str(missing.value)
    assert "huggingface-cli download stylediff-test/no-such-model" in str(hub.value)
    assert "local diffusers folder" in str(hub.value)


def test_config_validation_and_helpers(model):
    for bad in ({"mode": "pixels"}, {"normalize": "l2"}, {"scale": -1.0}, {"window": (0.8, 0.2)}, {"recurrence": 0},
                {"clip_grad": 0.0}, {"layers": ("relu9_1",)}):
        with pytest.raises(Exception) as info:
            GuidanceConfig(**bad)
        assert "stylediff" in type(info.value).__module__
    with pytest.raises(ConfigError):
        make_scheduler("euler", model.scheduler_config)
    with pytest.raises(ConfigError):
        StyleGuidedSampler(model.unet, model.scheduler("ddim"), None, GuidanceConfig(scale=1.0))
    assert default_guidance_size(32, 16) == 64 and default_guidance_size(256, 16) == 256
    assert image_grid(torch.zeros(3, 3, 4, 4), padding=1).shape == (1, 3, 6, 16)
    assert image_grid(torch.zeros(3, 3, 4, 4), columns=2, padding=1).shape == (1, 3, 11, 11)
