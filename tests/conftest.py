"""Shared fixtures. Tests run offline: where the developers' ``../shared`` folder exists, TORCH_HOME
points at its LPIPS backbones (elsewhere torchvision's usual cache and download apply), and the
Hugging Face hub is switched off."""

import itertools
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


def methods_table(
    gaps: dict[str, float],
    styles: int = 6,
    seeds: int = 6,
    held_out: dict[str, float] | None = None,
    noise: float = 0.02,
    rng: int = 0,
):
    """A synthetic guidance-methods table (pandas): every method's (style, seed) curve has LPIPS 0.07 k to the
    unguided sample at its k-th scale (k = 1 … 5: every level of 0.1, 0.2, 0.3 bracketed by points 0.07
    apart) and the log ratio of its style distance to the unguided one is −(1 + gaps[method]) · LPIPS plus
    noise: a larger gap is closer to the style at every matched LPIPS. The unguided distances differ tenfold
    between the first half of the styles and the second (paintings and textures). ``held_out`` gives the
    gaps the held-out metric ``heldout_vgg16_gram`` sees (default: the same)."""
    import pandas as pd

    noise_of = np.random.default_rng(rng)
    held_out = gaps if held_out is None else held_out
    rows = []
    for style in range(styles):
        base = 2.0 if style < styles / 2 else 20.0
        for seed in range(seeds):
            common = {"model_slug": "m", "model": "m", "style": f"s{style}", "seed": seed, "steps": 25}
            rows.append(
                {**common, "method": "unguided", "scale": 0.0, "lpips_vgg": 0.0, "realism": 0.01}
                | {"gram_dist_mean": base, "heldout_vgg16_gram": 0.5}
            )
            for method, k in itertools.product(gaps, range(1, 6)):
                lpips = 0.07 * k
                y = -(1 + gaps[method]) * lpips + noise * float(noise_of.normal())
                h = -(1 + held_out[method]) * lpips + noise * float(noise_of.normal())
                rows.append(
                    {**common, "method": method, "scale": float(k), "lpips_vgg": lpips, "realism": 0.01 + 0.01 * k}
                    | {"gram_dist_mean": base * np.exp(y), "heldout_vgg16_gram": 0.5 * np.exp(h)}
                )
    return pd.DataFrame(rows)
