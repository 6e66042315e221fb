"""Latent models through the model adapter (stylediff.diffusion.adapters): tiny random Stable Diffusion,
SDXL and LDM pipelines built from diffusers' own test configurations, saved to a temporary folder
and loaded back through ``load_model`` and ``stylediff sample --model``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylediff.cli import main
from stylediff.diffusion import METHODS, GuidedSampler, load_model, make_method

from .conftest import PROMPT, Counting, build_tiny_sd, clip_tokenizer, fill_hub_cache, sample_argv, tiny_vae
from .conftest import sd_ddim as ddim

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "starry_night.jpg"
FAST = {
    "ugd": {"recurrence": 2},
    "freedom": {"window": (0.0, 1.0), "travel_window": (0.3, 0.7)},
    "lgd": {"mc_samples": 2},
}
"""Knobs that keep the tests fast (UGD's 6 recurrences, FreeDoM's window on a 4-step run, LGD's 10 samples)."""
SCALES = {
    "x0": (0.03, 0.3),
    "through_unet": (0.1, 1.0),
    "classifier": (1e2, 1e4),
    "dps": (10.0, 100.0),
    "freedom": (0.2, 1.0),
    "ugd": (1e2, 1e4),
    "mpgd": (1.0, 10.0),
    "tfg": (1.0, 30.0),
    "lgd": (1e3, 1e5),
}
"""Scales tried per method on the random tiny SD (its losses and CFG corrections are not a real model's)."""


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    """diffusers' ``StableDiffusionPipelineFastTests.get_dummy_components`` (32² latents, 64² images)."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "pipe")


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory) -> Path:
    """diffusers' ``StableDiffusionXLPipelineFastTests.get_dummy_components`` with a DDIM scheduler."""
    folder = tmp_path_factory.mktemp("tiny-sdxl")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(2, 4),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=1,
    )
    vae = tiny_vae((32, 64), 32)
    config = transformers.CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=5,
        pad_token_id=1,
        vocab_size=1000,
        hidden_act="gelu",
        projection_dim=32,
    )
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(config)
    torch.manual_seed(0)
    text_2 = transformers.CLIPTextModelWithProjection(config)
    tokenizer = clip_tokenizer(folder / "vocab")
    diffusers.StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text,
        text_encoder_2=text_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=ddim(),
        image_encoder=None,
        feature_extractor=None,
        add_watermarker=False,
    ).save_pretrained(folder / "pipe")
    return folder / "pipe"


@pytest.fixture(scope="module")
def ldm_dir(tmp_path_factory) -> Path:
    """An unconditional ``LDMPipeline``: ``UNet2DModel`` on the latents of a ``VQModel`` (8² latents, 16² images)."""
    folder = tmp_path_factory.mktemp("tiny-ldm")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 8),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    torch.manual_seed(0)
    vqvae = diffusers.VQModel(
        block_out_channels=[8, 8],
        in_channels=3,
        out_channels=3,
        norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=3,
        num_vq_embeddings=16,
    )
    diffusers.LDMPipeline(vqvae=vqvae, unet=unet, scheduler=ddim()).save_pretrained(folder / "pipe")
    return folder / "pipe"


@pytest.fixture(scope="module")
def tiny_decoder_dir(tmp_path_factory) -> Path:
    """A random ``AutoencoderTiny`` (TAESD's architecture, 2 blocks: the tiny SD's factor 2)."""
    folder = tmp_path_factory.mktemp("tiny-taesd")
    torch.manual_seed(0)
    diffusers.AutoencoderTiny(
        encoder_block_out_channels=(4, 4),
        decoder_block_out_channels=(4, 4),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def style_loss():
    from stylediff.core.images import load_image
    from stylediff.networks.vgg19 import load_vgg19
    from stylediff.nst.losses import style_objective

    return style_objective(load_vgg19(), load_image(STYLE, 64), ["relu1_1", "relu2_1"])


def latents_of(model, method, seeds, steps, objective, eta=0.0, **options):
    """The sampler's last x (latents) and its output, through the model's adapter."""
    scheduler = model.scheduler("ddim")
    adapter = model.adapter(scheduler, **options)
    last = {}
    out = GuidedSampler(adapter, scheduler, objective, method)(
        seeds, num_inference_steps=steps, eta=eta, progress=False, callback=lambda info: last.update(x=info["x"])
    )
    return last["x"], out


def pipe_of(folder, cls):
    pipe = cls.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("name", list(METHODS))
def test_scale_zero_reproduces_stable_diffusion_pipeline(sd_dir, style_loss, name):
    seeds, steps = [3, 11], 4
    pipe = pipe_of(sd_dir, diffusers.StableDiffusionPipeline)
    for eta, cfg in ((0.0, 7.5), (0.5, 3.0)):
        expected = pipe(
            [PROMPT] * 2,
            negative_prompt=["wider"] * 2,
            guidance_scale=cfg,
            num_inference_steps=steps,
            eta=eta,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
            output_type="latent",
        ).images
        x, out = latents_of(
            load_model(sd_dir),
            make_method(name, scale=0.0),
            seeds,
            steps,
            style_loss,
            eta=eta,
            prompt=PROMPT,
            negative_prompt="wider",
            cfg_scale=cfg,
        )
        assert (x - expected).abs().max().item() <= 1e-5
        assert out.images.shape == (2, 3, 64, 64)


def test_scale_zero_reproduces_sdxl_and_ldm_pipelines(sdxl_dir, ldm_dir, style_loss):
    seeds, steps = [5], 3
    pipe = pipe_of(sdxl_dir, diffusers.StableDiffusionXLPipeline)
    expected = pipe(
        PROMPT,
        guidance_scale=5.0,
        num_inference_steps=steps,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(5),
        output_type="latent",
    ).images
    x, _ = latents_of(
        load_model(sdxl_dir), make_method("tfg", scale=0.0), seeds, steps, style_loss, prompt=PROMPT, cfg_scale=5.0
    )
    # relative to the latents' size (up to ~6 here): float32 rounding, which with diffusers 0.37 / torch 2.6
    # reached 1.2e-5 in absolute terms; a wrong step (CFG, timestep, scaling) differs by 1e-2 or more
    assert (x - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
    pipe = pipe_of(ldm_dir, diffusers.LDMPipeline)
    torch.manual_seed(0)
    images = pipe(
        batch_size=1, generator=torch.Generator().manual_seed(5), num_inference_steps=steps, output_type="np"
    ).images
    _, out = latents_of(load_model(ldm_dir), make_method("mpgd", scale=0.0), seeds, steps, style_loss)
    assert np.abs(out.images.permute(0, 2, 3, 1).numpy() - images).max() <= 1e-5


def test_sdxl_decodes_as_its_pipeline(sdxl_dir, tmp_path):
    """An SDXL VAE with ``latents_mean``/``latents_std``: the unguided images are the pipeline's (which
    decodes z·std/scaling_factor + mean), and under fp16 autocast a ``force_upcast`` VAE decodes in fp32."""
    from stylediff.diffusion.adapters import LatentModel

    folder = tmp_path / "sdxl"
    shutil.copytree(sdxl_dir, folder)
    config_path = folder / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(latents_mean=[0.1, -0.2, 0.3, 0.05], latents_std=[0.9, 1.3, 0.7, 1.1], force_upcast=True)
    config_path.write_text(json.dumps(config))
    pipe = pipe_of(folder, diffusers.StableDiffusionXLPipeline)
    expected = pipe(
        PROMPT,
        guidance_scale=5.0,
        num_inference_steps=3,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(5),
        output_type="pt",
    ).images
    model = load_model(folder)
    _, out = latents_of(model, make_method("mpgd", scale=0.0), [5], 3, None, prompt=PROMPT, cfg_scale=5.0)
    assert (out.images - expected).abs().max().item() <= 1e-5
    plain = load_model(sdxl_dir)  # the same latents read without the statistics: another image
    _, other = latents_of(plain, make_method("mpgd", scale=0.0), [5], 3, None, prompt=PROMPT, cfg_scale=5.0)
    assert (other.images - expected).abs().max().item() > 1e-2
    adapter = model.adapter(model.scheduler("ddim"), prompt=PROMPT, cfg_scale=5.0)
    dtypes = []
    hook = adapter.decoder.decoder.conv_in.register_forward_hook(lambda m, inputs, o: dtypes.append(o.dtype))
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            assert LatentModel.upcasts(adapter.decoder, "cpu")
            adapter.to_image(torch.zeros(1, 4, 8, 8))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the pipeline upcasts fp16 only
            assert not LatentModel.upcasts(adapter.decoder, "cpu")
            adapter.to_image(torch.zeros(1, 4, 8, 8))
    finally:
        hook.remove()
    assert dtypes == [torch.float32, torch.bfloat16]


def run(model_dir, out, *extra, steps=4):
    return main(sample_argv(model_dir, out, *extra, style=STYLE, steps=steps))


def test_cli_scale_zero_is_the_pipeline_image_for_every_method(sd_dir, tmp_path):
    pipe = pipe_of(sd_dir, diffusers.StableDiffusionPipeline)
    expected = pipe(
        PROMPT, num_inference_steps=4, generator=torch.Generator().manual_seed(2), output_type="pil"
    ).images[0]
    expected = np.asarray(expected, dtype=np.int16)
    for name in METHODS:
        out = tmp_path / f"{name}.png"
        assert run(sd_dir, out, "--prompt", PROMPT, "--method", name, "--scale", "0", "--seed", "2") == 0
        assert np.abs(np.asarray(Image.open(out), dtype=np.int16) - expected).max() <= 1, name
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["guidance"]["cfg_scale"] == 7.5 and meta["guidance"]["cfg_batch"] == 2
    assert meta["guidance"]["prompt"] == PROMPT and meta["guidance"]["latent"] is True
    components = meta["weights"]["diffusion"]["components"]
    assert set(components) == {"unet", "vae", "text_encoder", "tokenizer"}  # no safety checker, no image encoder
    for name, part in components.items():
        assert part["files"], name
        for file, digest in part["files"].items():
            assert hashlib.sha256((sd_dir / part["subfolder"] / file).read_bytes()).hexdigest() == digest


def hooked(unet, vae):
    """Counters of UNet forwards (and their batch sizes), UNet backwards and decoder backwards, and the hooks."""
    calls = {"unet_forward": 0, "unet_backward": 0, "unet_batch": set(), "decoder_backward": 0}

    def forward(module, inputs, output):
        calls["unet_forward"] += 1
        calls["unet_batch"].add(inputs[0].shape[0])

    def backward(key):
        return lambda *a: calls.__setitem__(key, calls[key] + 1)

    return calls, [
        unet.conv_in.register_forward_hook(forward),
        unet.conv_in.register_full_backward_hook(backward("unet_backward")),
        vae.decoder.conv_in.register_full_backward_hook(backward("decoder_backward")),
    ]


@pytest.mark.parametrize("name", [name for name, cls in METHODS.items() if cls.needs_objective])
def test_every_method_on_sd_lowers_the_style_loss_and_its_gradients_take_its_path(sd_dir, style_loss, name):
    model = load_model(sd_dir)
    unet, vae = model.unet, model.components["vae"]
    seeds, steps = [0, 1], 4
    _, plain = latents_of(model, None, seeds, steps, style_loss, prompt=PROMPT)
    results = []
    for scale in SCALES[name]:
        counting = Counting(style_loss, len(seeds))
        calls, hooks = hooked(unet, vae)
        method = make_method(name, scale=scale, **FAST.get(name, {}))
        try:
            _, out = latents_of(model, method, seeds, steps, counting, prompt=PROMPT)
        finally:
            for hook in hooks:
                hook.remove()
        ran = method.resolved(latent=True, cfg=True)  # what the sampler runs (MPGD: its SD window)
        expected = {
            key: sum(ran.evaluations(i, steps).to_dict()[key] for i in range(steps))
            for key in ("unet_forward", "unet_backward", "objective_forward", "objective_backward")
        }
        final = 1  # the sampler's last loss of the final images
        assert calls["unet_batch"] == {2 * len(seeds)}  # one UNet call on the CFG batch per evaluation
        assert (calls["unet_forward"], calls["unet_backward"]) == (expected["unet_forward"], expected["unet_backward"])
        assert (counting.forward - final, counting.backward) == (
            expected["objective_forward"],
            expected["objective_backward"],
        )
        per_call = ran.mc_samples if name == "lgd" else 1  # LGD decodes its n samples as one batch
        assert calls["decoder_backward"] * per_call == expected["objective_backward"] > 0  # through the VAE decoder
        assert (calls["unet_backward"] > 0) == METHODS.lookup(name).differentiates_unet  # MPGD, x0: never the UNet
        results.append(sum(out.losses))
    assert min(results) < sum(plain.losses), (name, results, sum(plain.losses))


def test_tiny_decoder_checkpointing_and_bf16(sd_dir, tiny_decoder_dir, tmp_path):
    plain, checkpointed = tmp_path / "plain.png", tmp_path / "checkpointed.png"
    args = ("--prompt", PROMPT, "--method", "freedom", "--scale", "0.5", "--window", "0,1")
    assert run(sd_dir, plain, *args) == 0
    assert run(sd_dir, checkpointed, *args, "--vae-checkpointing") == 0
    a, b = (json.loads(p.with_suffix(".json").read_text()) for p in (plain, checkpointed))
    assert a["final_style_loss"] == pytest.approx(b["final_style_loss"], rel=1e-5)  # same sample, less memory
    assert b["guidance"]["vae_checkpointing"] is True
    tiny = tmp_path / "tiny.png"
    assert run(sd_dir, tiny, *args, "--decoder", str(tiny_decoder_dir)) == 0
    meta = json.loads(tiny.with_suffix(".json").read_text())
    assert meta["weights"]["decoder"]["class"] == "AutoencoderTiny" and meta["weights"]["decoder"]["files"]
    assert meta["final_style_loss"] != a["final_style_loss"]  # guided through another decoder
    half = tmp_path / "bf16.png"
    assert run(sd_dir, half, *args, "--precision", "bf16") == 0  # autocast covers the UNet and the decoder
    loss = json.loads(half.with_suffix(".json").read_text())["final_style_loss"]
    assert loss == pytest.approx(a["final_style_loss"], rel=0.2) and loss != a["final_style_loss"]


def test_mpgd_autoencoder_projection_goes_through_the_encoder(ldm_dir, style_loss):
    model = load_model(ldm_dir)
    encoder = model.components["vae"].encoder.conv_in
    calls = []
    hook = encoder.register_full_backward_hook(lambda *a: calls.append(1))
    try:
        latents_of(model, make_method("mpgd", scale=1.0, window=(0.0, 1.0), ae_window=(0.0, 0.5)), [0], 4, style_loss)
    finally:
        hook.remove()
    assert len(calls) == 2  # the two steps inside the projection's window


@pytest.mark.parametrize("case", ["prompt-pixel", "prompt-ldm", "no-text-encoder", "no-vae", "cfg-negative", "cfg-nan"])
def test_bad_latent_input_is_one_line_and_writes_nothing(case, sd_dir, ldm_dir, tiny_ddpm_dir, tmp_path, capsys):
    folder, extra = sd_dir, ["--prompt", PROMPT]
    if case == "prompt-pixel":
        folder = tiny_ddpm_dir
    elif case == "prompt-ldm":
        folder = ldm_dir
    elif case in ("no-text-encoder", "no-vae"):
        folder = tmp_path / "broken"
        shutil.copytree(sd_dir, folder)
        shutil.rmtree(folder / ("text_encoder" if case == "no-text-encoder" else "vae"))
    else:
        extra += ["--cfg-scale", "-1" if case == "cfg-negative" else "nan"]
    out = tmp_path / "out" / "x.png"
    try:
        code = run(folder, out, *extra)
    except SystemExit as exc:  # argparse's one-line error
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_prompts_are_an_axis_of_the_methods_experiment():
    from snakemake.utils import validate

    from stylediff.workflow import plan
    from stylediff.workflow.experiments import lookup
    from stylediff.workflow.runids import parse_run_id, run_id

    from .conftest import ROOT, preset_config

    config = preset_config("findings")
    prompts = ["a lighthouse at dusk", "a lighthouse at dawn, oil on canvas"]
    text = {
        **config,
        "guidance_methods": {
            **config["guidance_methods"],
            "prompts": prompts,
            "cfg_scale": 5.0,
            "negative_prompt": "blurry",
            "vae_checkpointing": True,
        },
    }
    validate(text, str(ROOT / "schemas" / "config.schema.yaml"))
    before, after = plan.build(config), plan.build(text)
    runs = lambda built: built.runs[built.runs["experiment"] == "guidance_methods"]["run"]  # noqa: E731
    assert len(runs(after)) == len(prompts) * len(runs(before)) and runs(after).is_unique
    assert not any("__p-" in run for run in runs(before))  # ids without prompts are the ids of before
    spec = lookup("guidance_methods")
    for run in runs(after):
        assert run_id(spec, parse_run_id(spec, run)) == run
    assert len(after.jobs("guidance_methods")) == len(prompts) * len(before.jobs("guidance_methods"))
    for job in after.jobs("guidance_methods"):
        for command in after.commands("guidance_methods", job):
            assert "--cfg-scale 5.0" in command and "--negative-prompt blurry" in command
            assert "--vae-checkpointing" in command
            assert sum(f"--prompt '{prompt}'" in command for prompt in prompts) == 1


def test_sd_loads_offline_from_the_hub_cache(sd_dir, tmp_path, monkeypatch):
    """The tiny SD folder cached under a hub id loads with HF_HUB_OFFLINE=1, every component's files hashed."""
    from huggingface_hub import constants

    files = {str(path.relative_to(sd_dir)): path.read_bytes() for path in sd_dir.rglob("*") if path.is_file()}
    cache = tmp_path / "hub"
    commit = fill_hub_cache(cache, "stable-diffusion-v1-5/stable-diffusion-v1-5", files)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = load_model("stable-diffusion-v1-5/stable-diffusion-v1-5", cache_dir=cache, local_files_only=True)
    assert loaded.info["source"] == "hub" and loaded.info["revision"] == commit
    assert set(loaded.components) >= {"unet", "vae", "text_encoder", "tokenizer"}
    weights = loaded.info["components"]["vae"]["files"]["diffusion_pytorch_model.safetensors"]
    assert weights == hashlib.sha256(files["vae/diffusion_pytorch_model.safetensors"]).hexdigest()
    from stylediff.core.errors import WeightsError

    with pytest.raises(WeightsError, match="stylediff weights fetch --models stabilityai/stable-diffusion-2-1-base"):
        load_model("stabilityai/stable-diffusion-2-1-base", cache_dir=cache, local_files_only=True)


def test_weights_fetch_patterns_cover_what_the_loader_reads(sd_dir):
    """``stylediff weights fetch`` downloads a latent pipeline by these patterns: every file of every part
    the loader reads matches one, the safety checker's do not."""
    from fnmatch import fnmatch

    from stylediff.weights.hub import hub_patterns

    index = json.loads((sd_dir / "model_index.json").read_text())
    safetensors, bins = hub_patterns({**index, "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]})
    for path in sd_dir.rglob("*"):
        rel = str(path.relative_to(sd_dir))
        if path.is_file() and "/" in rel:
            assert any(fnmatch(rel, pattern) for pattern in safetensors), rel
    assert not any(pattern.startswith("safety_checker") for pattern in safetensors + bins)
    assert all(pattern.endswith(".bin") for pattern in bins)
