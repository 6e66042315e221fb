"""The sampler, the schedule and model loading (stylediff.diffusion) on a tiny randomly initialised UNet
saved as a diffusers folder. The guidance methods themselves: tests/test_methods.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylediff.core.errors import ConfigError, NumericalError, ResourceError, WeightsError
from stylediff.diffusion import GuidedSampler, default_guidance_size, load_model, make_method, make_scheduler
from stylediff.diffusion.schedule import Schedule

from .conftest import fill_hub_cache

diffusers = pytest.importorskip("diffusers")

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "starry_night.jpg"
LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(scope="module")
def model(tiny_ddpm_dir):
    return load_model(tiny_ddpm_dir)


@pytest.fixture(scope="module")
def style_loss():
    from stylediff.core.images import load_image
    from stylediff.networks.vgg19 import load_vgg19
    from stylediff.nst.losses import style_objective

    return style_objective(load_vgg19(), load_image(STYLE, 32), LAYERS)


def sampler(model, name="ddim", objective=None, method=None, **kwargs):
    return GuidedSampler(model.unet, model.scheduler(name), objective, method, **kwargs)


def test_load_model_records_provenance(model):
    assert 100_000 < model.info["parameters"] < 1_000_000
    assert model.info["source"] == "local" and model.info["weights_file"].startswith("unet/")
    assert model.info["layout"] == "pipeline" and len(model.info["sha256"]) == 64
    assert not any(p.requires_grad for p in model.unet.parameters())
    assert model.scheduler("ddim").__class__.__name__ == "DDIMScheduler"


def test_window_outside_trajectory_and_recurrence_at_scale_zero_change_nothing(model, style_loss):
    base = sampler(model, "ddpm")([5], num_inference_steps=4, progress=False)
    for method in (make_method("x0", scale=0.5, window=(0.0, 0.0)), make_method("x0", scale=0.0, recurrence=3)):
        out = sampler(model, "ddpm", style_loss, method)([5], num_inference_steps=4, progress=False)
        assert torch.equal(out.images, base.images)


def test_window_selects_steps():
    method = make_method("x0", scale=1.0, window=(0.0, 0.5))
    assert [method.active(i, 10) for i in range(10)] == [True] * 5 + [False] * 5
    late = make_method("x0", scale=1.0, window=(0.7, 1.0))
    assert [late.active(i, 10) for i in range(10)] == [False] * 7 + [True] * 3
    assert not make_method("x0", scale=0.0).active(0, 10)


@pytest.mark.parametrize("name,eta", [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)])
def test_schedule_coefficients_are_the_derivatives_of_the_scheduler_step(model, name, eta):
    """x_{t−1} is linear in (x̂0, ε̂): c_x0 and c_ε predict the scheduler's own step for a moved pair."""
    scheduler = make_scheduler(name, {**model.scheduler_config, "clip_sample": False})
    scheduler.set_timesteps(10)
    schedule = Schedule(scheduler)
    index = 3
    t = scheduler.timesteps[index]
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    d_eps = 0.1 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    kwargs = {"eta": eta} if name == "ddim" else {}
    step = lambda e: scheduler.step(e, t, x, generator=torch.Generator().manual_seed(9), **kwargs).prev_sample  # noqa: E731
    moved = step(eps + d_eps) - step(eps)  # x_t held, so x̂0 follows ε̂
    assert torch.allclose(moved, schedule.shift_for_eps(t, index, eta) * d_eps, atol=1e-5)
    predicted = (
        schedule.x0_coefficient(t, index) * (-(1 - schedule.alpha_bar(t)).sqrt() / schedule.alpha_bar(t).sqrt())
        + schedule.eps_coefficient(t, index, eta)
    ) * d_eps
    assert torch.allclose(moved, predicted, atol=1e-5)


def test_x0_step_is_the_ddim_update_from_the_corrected_x0(model):
    """With a constant-gradient loss, x_{t-1} = √ᾱ_prev·(x̂0 − s·σ_t·g·50/n) + √(1−ᾱ_prev)·ε exactly."""
    scheduler = make_scheduler("ddim", {**model.scheduler_config, "clip_sample": False})
    steps, scale = 10, 0.2
    objective = lambda images: images.sum(dim=(1, 2, 3))  # noqa: E731  d/dx0 = 0.5 per pixel (of [-1,1] x0)
    records = []
    out = GuidedSampler(
        model.unet, scheduler, objective, make_method("x0", scale=scale, normalize="none"), guidance_size=16
    )([2], num_inference_steps=steps, progress=False, callback=lambda info: records.append(info["x"]))
    scheduler.set_timesteps(steps)
    index = 4
    t = scheduler.timesteps[index]
    x = records[index - 1]
    with torch.no_grad():
        eps = model.unet(x, t).sample
    ab = scheduler.alphas_cumprod[t]
    ab_prev = scheduler.alphas_cumprod[t - 1000 // steps]
    x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt() - scale * (1 - ab).sqrt() * 0.5 * 50 / steps
    expected = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    assert torch.allclose(records[index], expected, atol=1e-5)
    assert out.images.shape == (1, 3, 16, 16)


def test_per_image_seeds_do_not_depend_on_the_batch(model, style_loss):
    method = make_method("x0", scale=0.2)
    batch = sampler(model, "ddpm", style_loss, method)([7, 8, 9], num_inference_steps=5, progress=False)
    alone = sampler(model, "ddpm", style_loss, method)(8, num_inference_steps=5, progress=False)
    # same noise draws; batched kernels may round differently in the last float bits only
    assert (alone.images[0] - batch.images[1]).abs().max().item() < 1e-3
    assert (batch.images[0] - batch.images[1]).abs().max().item() > 0.05


def test_out_of_memory_splits_the_batch_and_gives_the_same_images(model, style_loss, monkeypatch):
    method = make_method("x0", scale=0.2)
    whole = sampler(model, "ddim", style_loss, method)([3, 4, 5], num_inference_steps=4, progress=False)
    split_sampler = sampler(model, "ddim", style_loss, method)
    real_sample, tried = split_sampler._sample, []

    def fits_one_image(seeds, *args):  # a device with room for a single image
        tried.append(len(seeds))
        if len(seeds) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_sample(seeds, *args)

    monkeypatch.setattr(split_sampler, "_sample", fits_one_image)
    with pytest.warns(UserWarning) as warned:
        split = split_sampler([3, 4, 5], num_inference_steps=4, progress=False)
    assert [str(w.message).split(";")[0] for w in warned] == [
        "out of memory at batch size 3",
        "out of memory at batch size 2",
    ]
    assert tried == [3, 2, 1, 1, 1] and split.batches == [1, 1, 1] and split.seeds == [3, 4, 5]
    assert (split.images - whole.images).abs().max().item() < 1e-3
    assert split.losses == pytest.approx(whole.losses, rel=1e-3)
    assert len(split.history) == 4 and len(split.history[0]["loss"]) == 3

    monkeypatch.setattr(split_sampler, "_sample", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(ResourceError, match="out of cpu memory sampling one image"):
        split_sampler([3], num_inference_steps=4, progress=False)


def test_callback_sees_every_step_and_history_records_it(model, style_loss):
    seen = []
    out = sampler(model, "ddim", style_loss, make_method("x0", scale=0.1, window=(0.5, 1.0)))(
        [1], num_inference_steps=4, progress=False, callback=seen.append
    )
    assert [info["step"] for info in seen] == [1, 2, 3, 4]
    assert [info["guided"] for info in seen] == [False, False, True, True]
    assert all(info["x"].shape == (1, 3, 16, 16) for info in seen)
    assert [record["guided"] for record in out.history] == [False, False, True, True]
    assert "loss" in out.history[-1] and "x" not in out.history[-1]


def test_user_objective_mean_colour(model):
    target = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)

    def redness(images):  # any differentiable callable (N,3,H,W) in [0,1] -> (N,)
        return (images.mean(dim=(2, 3), keepdim=True) - target).pow(2).sum(dim=(1, 2, 3))

    losses = [
        sampler(model, "ddim", redness, make_method("x0", scale=scale))(
            [0], num_inference_steps=6, progress=False
        ).losses[0]
        for scale in (0.0, 1.0)
    ]
    assert losses[1] < 0.5 * losses[0]


def test_non_finite_loss_is_a_numerical_error_unless_clipped(model):
    def broken(images):
        return images.sum(dim=(1, 2, 3)) * float("nan")

    with pytest.raises(NumericalError, match=r"step 1/3 .*scale 0\.1"):
        sampler(model, "ddim", broken, make_method("x0", scale=0.1))([0], num_inference_steps=3, progress=False)
    guarded = sampler(model, "ddim", broken, make_method("x0", scale=0.1, clip_grad=0.05))
    assert torch.isfinite(guarded([0], num_inference_steps=3, progress=False).images).all()


def test_bf16_on_cpu_is_close_to_fp32(model):
    """bf16 autocast on the CPU, on the embedded demo model (8 DDIM steps, 2 seeds, Gram loss at
    relu1_1…relu3_1). Measured: mean |Δ| 0.003 (through_unet 0.1) to 0.008 (x0 0.05) in [0, 1], max 0.08;
    final style losses within 3 % (20 steps and 4 seeds: the same mean |Δ|, losses within 7 %, at 5× the
    time: bf16 runs at 1/20 of fp32's speed on an AVX2 CPU). Tolerances: mean |Δ| < 0.02, losses within 12 %."""
    from stylediff.core.images import load_image
    from stylediff.networks.vgg19 import load_vgg19
    from stylediff.nst.losses import style_objective

    demo = load_model(Path(__file__).resolve().parents[1] / "models" / "ddpm-emoji-faces-32")
    objective = style_objective(load_vgg19(), load_image(STYLE, 64), LAYERS)
    for name, scale in (("x0", 0.05), ("through_unet", 0.1)):
        runs = {
            precision: GuidedSampler(demo.unet, demo.scheduler("ddim"), objective, make_method(name, scale=scale))(
                [0, 1], num_inference_steps=8, precision=precision, progress=False
            )
            for precision in ("fp32", "bf16")
        }
        difference = (runs["fp32"].images - runs["bf16"].images).abs()
        assert 0 < difference.mean().item() < 0.02, name
        assert runs["bf16"].losses == pytest.approx(runs["fp32"].losses, rel=0.12), name
    with pytest.raises(ConfigError, match="fp16 autocast needs a CUDA device"):
        sampler(model)([0], num_inference_steps=2, precision="fp16", progress=False)


def test_missing_models_are_one_line_weights_errors(tmp_path):
    with pytest.raises(WeightsError) as missing:
        load_model(tmp_path / "no-such-model")
    with pytest.raises(WeightsError) as empty:
        load_model(tmp_path)
    with pytest.raises(WeightsError) as hub:
        load_model("stylediff-test/no-such-model", local_files_only=True, cache_dir=tmp_path)
    for error in (missing, empty, hub):
        assert "\n" not in str(error.value)
    assert "no such folder" in str(missing.value)
    assert "stylediff weights fetch --models stylediff-test/no-such-model" in str(hub.value)
    assert "local diffusers folder" in str(hub.value)


@pytest.mark.parametrize("layout", ["pipeline", "flat"])
def test_hub_models_load_offline_in_either_layout(tmp_path, layout, monkeypatch):
    """The real architecture of google/ddpm-cifar10-32 (random weights), cached by the test under that id
    in the pipeline layout (unet/, scheduler/) or the flat one (config.json at the root), loads with
    HF_HUB_OFFLINE=1 and records the commit and the weights' sha256."""
    import hashlib

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=32,
        block_out_channels=(128, 256, 256, 256),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )
    saved = tmp_path / "saved"
    unet.save_pretrained(saved)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000)
    scheduler.save_pretrained(saved)
    prefix = "unet/" if layout == "pipeline" else ""
    files = {
        f"{prefix}config.json": (saved / "config.json").read_bytes(),
        f"{prefix}diffusion_pytorch_model.safetensors": (saved / "diffusion_pytorch_model.safetensors").read_bytes(),
        ("scheduler/" if layout == "pipeline" else "") + "scheduler_config.json": (
            saved / "scheduler_config.json"
        ).read_bytes(),
    }
    cache = tmp_path / "hub"
    commit = fill_hub_cache(cache, "google/ddpm-cifar10-32", files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = load_model("google/ddpm-cifar10-32", cache_dir=cache, local_files_only=True)
    assert loaded.info["layout"] == layout and loaded.info["revision"] == commit
    assert loaded.info["sha256"] == hashlib.sha256(files[f"{prefix}diffusion_pytorch_model.safetensors"]).hexdigest()
    assert loaded.info["parameters"] == sum(p.numel() for p in unet.parameters())
    assert loaded.scheduler_config["num_train_timesteps"] == 1000
    state = dict(unet.state_dict())
    assert all(torch.equal(state[k], v) for k, v in loaded.unet.state_dict().items())


def test_config_validation_and_helpers(model):
    for bad in ({"normalize": "l2"}, {"scale": -1.0}, {"window": (0.8, 0.2)}, {"recurrence": 0}, {"clip_grad": 0.0}):
        with pytest.raises(ConfigError):
            make_method("x0", **bad)
    with pytest.raises(ConfigError, match="unknown guidance method 'pixels'; valid guidance methods: x0"):
        make_method("pixels")
    with pytest.raises(ConfigError, match="method dps has no knob --inner-steps; its knobs:"):
        make_method("dps", inner_steps=3)
    with pytest.raises(ConfigError):
        make_scheduler("euler", model.scheduler_config)
    with pytest.raises(ConfigError):
        GuidedSampler(model.unet, model.scheduler("ddim"), None, make_method("x0", scale=1.0))
    assert default_guidance_size(32, 16) == 64 and default_guidance_size(256, 16) == 256
