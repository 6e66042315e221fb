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
