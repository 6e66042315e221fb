"""A content image in (stylediff.diffusion.starts, the sampler's ``start``, ``stylediff sample --content``):
at scale 0 an SDEdit start is diffusers' ``StableDiffusionImg2ImgPipeline`` on the tiny Stable Diffusion,
and a hand transcription of its steps on the pixel and latent demo models; DDIM inversion gives the content
back better than SDEdit does; the loop keeps the steps' global indices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stylediff.cli import main
from stylediff.core.errors import ConfigError
from stylediff.core.images import load_image
from stylediff.core.seeding import image_generators
from stylediff.diffusion import METHODS, GuidedSampler, load_model, make_method
from stylediff.diffusion.starts import ContentStart, first_index

from .test_latent import PROMPT, sd_dir  # noqa: F401  (the tiny Stable Diffusion folder fixture)

diffusers = pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
PIXEL, LATENT = ROOT / "models" / "ddpm-emoji-faces-32", ROOT / "models" / "ldm-emoji-faces-32"
STYLE = ROOT / "data" / "styles" / "starry_night.jpg"


def held_out_face(index: int = 0) -> torch.Tensor:
    """Held-out face ``index`` of the demo models (row 1 of ldm-emoji-faces-32/reconstructions.png, 2x nearest)."""
    import numpy as np
    from PIL import Image

    grid = np.asarray(Image.open(LATENT / "reconstructions.png").convert("RGB"))[::2, ::2]
    face = grid[:32, index * 32 : (index + 1) * 32]
    return torch.from_numpy(face.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255


def last_x(sampler, seeds, steps, **kwargs):
    seen = {}
    out = sampler(
        seeds, num_inference_steps=steps, progress=False, callback=lambda info: seen.update(x=info["x"]), **kwargs
    )
    return seen["x"], out


def hand_img2img(model, scheduler, content, seeds, steps, strength, eta=None):
    """StableDiffusionImg2ImgPipeline's steps (get_timesteps, prepare_latents, the loop) without text: the
    VAE's latent_dist.sample(generator i) of image i (identity 2x − 1 for pixels), then randn_tensor from the
    same generators, add_noise at the first remaining timestep, scheduler.step over the rest."""
    from diffusers.utils.torch_utils import randn_tensor

    generators = image_generators(seeds)
    generator = generators if len(seeds) > 1 else generators[0]
    scheduler.set_timesteps(steps)
    init_timestep = min(int(steps * strength), steps)
    t_start = max(steps - init_timestep, 0)
    timesteps = scheduler.timesteps[t_start:]
    image = (content * 2 - 1).repeat(len(seeds), 1, 1, 1)
    with torch.no_grad():
        if "vae" in model.components:
            vae = model.components["vae"]
            x0 = torch.cat([vae.encode(image[i : i + 1]).latent_dist.sample(generators[i]) for i in range(len(seeds))])
            x0 = x0 * vae.config.scaling_factor
        else:
            x0 = image
        noise = randn_tensor(x0.shape, generator=generator)
        x = scheduler.add_noise(x0, noise, timesteps[:1].repeat(len(seeds)))
        kwargs = {} if eta is None else {"eta": eta}
        for t in timesteps:
            x = scheduler.step(model.unet(x, t).sample, t, x, generator=generator, **kwargs).prev_sample
    return x


def test_first_index_is_get_timesteps():
    assert first_index(50, 0.6) == 20 and first_index(50, 0.8) == 10 and first_index(4, 0.6) == 2
    assert first_index(10, 1.0) == 0 and first_index(10, 0.15) == 9  # int() truncates, as diffusers
    with pytest.raises(ConfigError, match="no step"):
        first_index(4, 0.2)
    with pytest.raises(ConfigError):
        ContentStart(torch.zeros(1, 3, 8, 8), 0.0)
    with pytest.raises(ConfigError):
        ContentStart(torch.zeros(1, 3, 8, 8), 0.5, "noise")


def test_sdedit_at_scale_zero_is_the_img2img_pipeline_on_tiny_sd(sd_dir):  # noqa: F811
    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(sd_dir)
    pipe.set_progress_bar_config(disable=True)
    model = load_model(sd_dir)
    content = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for seeds, steps, strength, eta, cfg in (
        ([3], 10, 0.6, 0.0, 7.5),
        ([3, 11], 10, 0.6, 0.5, 3.0),
        ([5, 6], 4, 0.75, 0.0, 7.5),
    ):
        expected = pipe(
            [PROMPT] * len(seeds),
            image=content,
            negative_prompt=["wider"] * len(seeds),
            strength=strength,
            guidance_scale=cfg,
            num_inference_steps=steps,
            eta=eta,
            generator=[torch.Generator().manual_seed(s) for s in seeds]
            if len(seeds) > 1
            else torch.Generator().manual_seed(seeds[0]),
            output_type="latent",
        ).images
        scheduler = model.scheduler("ddim")
        adapter = model.adapter(scheduler, prompt=PROMPT, negative_prompt="wider", cfg_scale=cfg)
        x, out = last_x(GuidedSampler(adapter, scheduler), seeds, steps, eta=eta, start=ContentStart(content, strength))
        assert (x - expected).abs().max().item() <= 1e-5
        assert out.start["t_start"] == first_index(steps, strength) and len(out.step_seconds) == int(steps * strength)


@pytest.mark.parametrize(
    "path,name,eta", [(PIXEL, "ddim", 0.0), (PIXEL, "ddim", 0.5), (PIXEL, "ddpm", None), (LATENT, "ddim", 0.0)]
)
def test_sdedit_at_scale_zero_is_the_hand_transcription_on_the_demo_models(path, name, eta):
    model = load_model(path)
    content, seeds, steps, strength = held_out_face(1), [2, 7], 8, 0.6
    expected = hand_img2img(model, model.scheduler(name), content, seeds, steps, strength, eta)
    scheduler = model.scheduler(name)
    x, _ = last_x(
        GuidedSampler(model.adapter(scheduler), scheduler),
        seeds,
        steps,
        eta=eta or 0.0,
        start=ContentStart(content, strength),
    )
    assert torch.equal(x, expected)


@pytest.mark.parametrize("name", [name for name in METHODS])
def test_every_method_at_scale_zero_is_the_unguided_content_start(name):
    model = load_model(PIXEL)
    scheduler = model.scheduler("ddim")
    start = ContentStart(held_out_face(2), 0.5)
    base, _ = last_x(GuidedSampler(model.adapter(scheduler), scheduler), [4], 4, start=start)
    guided = GuidedSampler(
        model.adapter(scheduler), scheduler, lambda images: images.mean((1, 2, 3)), make_method(name, scale=0.0)
    )
    x, _ = last_x(guided, [4], 4, start=start)
    assert torch.equal(x, base)


def test_the_loop_runs_the_remaining_steps_with_their_global_indices():
    """DDPM with recurrence: the step's index is its place in the full schedule (ᾱ_prev, windows, schedules)."""
    model = load_model(PIXEL)
    scheduler = model.scheduler("ddpm")
    seen = []
    method = make_method("x0", scale=0.05, recurrence=2, window=(0.5, 1.0))
    sampler = GuidedSampler(model.adapter(scheduler), scheduler, lambda images: images.mean((1, 2, 3)), method)
    out = sampler(
        [1], num_inference_steps=10, progress=False, start=ContentStart(held_out_face(), 0.7), callback=seen.append
    )
    assert [info["step"] for info in seen] == list(range(4, 11))
    assert [info["t"] for info in seen] == [int(t) for t in scheduler.timesteps[3:]]
    assert (
        [info["guided"] for info in seen]
        == [method.active(i, 10) for i in range(3, 10)]
        == [False, False, True, True, True, True, True]
    )
    assert torch.isfinite(out.images).all()


def test_ddim_inversion_gives_the_content_back_better_than_sdedit():
    """From held-out faces at strength 0.6, DDIM inversion then sampling gives the face back (the same for
    every seed: nothing is drawn) at under half SDEdit's error for every seed; inversion needs DDIM."""
    model = load_model(PIXEL)
    scheduler = model.scheduler("ddim")
    sampler = GuidedSampler(model.adapter(scheduler), scheduler)
    for face in (0, 3):
        content, errors = held_out_face(face), {}
        for kind in ("inversion", "sdedit"):
            out = sampler([5, 6, 7], num_inference_steps=20, progress=False, start=ContentStart(content, 0.6, kind))
            errors[kind] = (out.images - content).pow(2).mean((1, 2, 3)).sqrt()
            assert out.start == {"start": kind, "strength": 0.6, "t_start": 8, "first_t": int(scheduler.timesteps[8])}
        assert torch.equal(errors["inversion"], errors["inversion"][:1].expand(3))
        assert errors["inversion"].max() < errors["sdedit"].min() / 2
    ddpm = model.scheduler("ddpm")
    with pytest.raises(ConfigError, match="DDIM"):
        GuidedSampler(model.adapter(ddpm), ddpm)(
            [5], num_inference_steps=4, progress=False, start=ContentStart(content, 0.5, "inversion")
        )


def test_a_content_of_another_size_is_a_config_error():
    model = load_model(PIXEL)
    scheduler = model.scheduler("ddim")
    with pytest.raises(ConfigError, match="64x64 px"):
        GuidedSampler(model.adapter(scheduler), scheduler)(
            [0], num_inference_steps=4, progress=False, start=ContentStart(torch.rand(1, 3, 64, 64), 0.5)
        )


def sample_cli(tmp_path, *extra):
    from PIL import Image

    face = tmp_path / "face.png"
    Image.fromarray((held_out_face(3)[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(face)
    args = [
        "sample",
        "--model",
        str(PIXEL),
        "--style",
        str(STYLE),
        "--content",
        str(face),
        "--layers",
        "relu1_1,relu2_1",
    ]
    return main([*args, "--steps", "5", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "out.png"), *extra])


def test_cli_content_runs_the_remaining_steps_and_records_the_start(tmp_path):
    assert sample_cli(tmp_path, "--strength", "0.6", "--method", "tfg", "--scale", "1") == 0
    guidance = json.loads((tmp_path / "out.json").read_text())["guidance"]
    content = guidance["content"]
    assert content["start"] == "sdedit" and content["t_start"] == 2 and content["strength"] == 0.6
    assert content["content_weight"] == 0.1 and content["content_loss"] == "features" and len(content["sha256"]) == 64
    per_step = METHODS.lookup("tfg")(scale=1.0).pass_evaluations().unet_forward
    assert guidance["evaluations"]["unet_forward"] == 3 * per_step  # the 3 steps run, not all 5


def test_cli_content_errors_are_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "sample",
                "--model",
                str(PIXEL),
                "--style",
                str(STYLE),
                "--strength",
                "0.5",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "--strength and --start need a --content image" in capsys.readouterr().err
    assert sample_cli(tmp_path, "--strength", "0.05") == 2
    assert "no step to run" in capsys.readouterr().err
    assert sample_cli(tmp_path, "--method", "attention_distillation", "--ad-mode", "optimize", "--strength", "0.5") == 2
    assert "takes no --strength" in capsys.readouterr().err


def test_cli_lpips_content_term_keeps_the_content_closer(tmp_path):
    """--content-loss lpips: the objective adds LPIPS (AlexNet) to the content; a large weight keeps the
    TFG-guided image closer to the content (by LPIPS) than no content term does."""
    from stylediff.evaluation.lpips import lpips_to
    from stylediff.weights.backbones import backbone_path

    if not backbone_path("alex").is_file():
        pytest.skip("needs the AlexNet backbone (stylediff weights fetch)")
    distances = []
    for weight in ("0", "10"):
        run = tmp_path / weight
        run.mkdir()
        assert (
            sample_cli(run, "--method", "x0", "--scale", "0.05", "--content-loss", "lpips", "--content-weight", weight)
            == 0
        )
        image = load_image(run / "out.png")
        distances.append(lpips_to(held_out_face(3))(image).item())
    assert distances[1] < distances[0]
