"""Shared fixtures. Tests run offline: where the developers' ``../shared`` folder exists, TORCH_HOME
points at its LPIPS backbones (elsewhere torchvision's usual cache and download apply), and the
Hugging Face hub is switched off."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if (ROOT.parent / "shared" / "cache" / "torch").is_dir():
    os.environ.setdefault("TORCH_HOME", str(ROOT.parent / "shared" / "cache" / "torch"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
STYLES = ROOT / "data" / "styles"


@pytest.fixture(scope="session")
def vgg():
    from stylediff.networks.vgg19 import load_vgg19

    return load_vgg19("caffe", "max", "cpu")


def _skimage_png(name: str, folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / f"{name}.png"
    if not path.exists():
        array = getattr(data, name)()
        Image.fromarray(np.asarray(array)).save(path)
    return path


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def astronaut_png(image_dir) -> Path:
    return _skimage_png("astronaut", image_dir)


@pytest.fixture(scope="session")
def chelsea_png(image_dir) -> Path:
    return _skimage_png("chelsea", image_dir)


@pytest.fixture(scope="session")
def tiny_ddpm_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised UNet2DModel + DDPMScheduler saved as a diffusers folder (16 px)."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(1)
    unet = diffusers.UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    folder = tmp_path_factory.mktemp("tiny-ddpm")
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(folder)
    return folder


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a - b).pow(2).mean().item()
    return 10 * np.log10(1.0 / mse)


def preset_config(preset: str = "quick") -> dict:
    """config.yaml with config/<preset>.yaml laid over it by Snakemake's own merge (what the Snakefile's
    ``configfile:`` directives do)."""
    import yaml
    from snakemake.utils import update_config

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config.yaml").read_text())
    if preset != "quick":
        update_config(config, yaml.safe_load((root / "config" / f"{preset}.yaml").read_text()))
    return config


# -- tiny random latent models and CLIP encoders (diffusers' and transformers' own test configurations) -----
PROMPT = "lower newer"
"""A prompt of the tiny tokenizer's vocabulary."""


def clip_tokenizer(folder: Path):
    """transformers' CLIP tokenizer test vocabulary (23 tokens), written to ``folder``."""
    import json

    import transformers

    vocab = [
        "l",
        "o",
        "w",
        "e",
        "r",
        "s",
        "t",
        "i",
        "d",
        "n",
        "lo",
        "l</w>",
        "w</w>",
        "r</w>",
        "t</w>",
        "low</w>",
        "er</w>",
        "lowest</w>",
        "newer</w>",
        "wider",
        "<unk>",
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def sd_ddim(prediction_type: str = "epsilon"):
    """Stable Diffusion's DDIM scheduler config (scaled-linear betas, leading spacing, offset 1)."""
    import diffusers

    return diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def tiny_vae(channels=(4, 8), groups=2, **config):
    import diffusers

    torch.manual_seed(0)
    return diffusers.AutoencoderKL(
        block_out_channels=list(channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=groups,
        **config,
    )


def build_tiny_sd(folder: Path, prediction_type: str = "epsilon") -> Path:
    """diffusers' ``StableDiffusionPipelineFastTests.get_dummy_components`` (32² latents, 64² images) with a
    DDIM scheduler predicting ``prediction_type``, saved to ``folder``; returns it."""
    import diffusers
    import transformers

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=2,
    )
    vae = tiny_vae()
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=8,
            intermediate_size=16,
            layer_norm_eps=1e-5,
            num_attention_heads=2,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=1000,
        )
    )
    diffusers.StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=clip_tokenizer(folder.parent / f"{folder.name}-vocab"),
        unet=unet,
        scheduler=sd_ddim(prediction_type),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    ).save_pretrained(folder)
    return folder


def tiny_clip_vision_model(seed: int = 0):
    """A random ``CLIPVisionModel`` (4 blocks of width 32, 32 px input, 8 px patches: 16 tokens)."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=32, patch_size=8
    )
    return transformers.CLIPVisionModel(config).eval()


def tiny_clip_network(name: str = "clip-vit-b16", seed: int = 0):
    """``tiny_clip_vision_model`` as stylediff's CLIP feature network ``name`` (so a method's CLIP layer applies)."""
    from stylediff.networks.clip import CLIPVision

    return CLIPVision(name, tiny_clip_vision_model(seed), provenance={"name": name, "source": "tests"})
