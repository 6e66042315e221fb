"""The embedded latent demo model (models/ldm-emoji-faces-32): it loads as diffusers' LDMPipeline, fits
its size budget, and its autoencoder reconstructs the held-out faces that reconstructions.png shows.
The KID of its samples is measured by bench/demo_model_quality.py (minutes, not a test)."""

from pathlib import Path

import numpy as np
import pytest
import torch

MODEL = Path(__file__).resolve().parents[1] / "models" / "ldm-emoji-faces-32"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


@pytest.fixture(scope="module")
def pipe():
    diffusers = pytest.importorskip("diffusers")
    return diffusers.LDMPipeline.from_pretrained(MODEL)


def test_loads_as_ldm_pipeline_within_10_mb(pipe):
    weights = sorted(MODEL.glob("*/*.safetensors"))
    assert {w.parent.name for w in weights} == {"vqvae", "unet"}
    assert sum(w.stat().st_size for w in weights) <= 10_000_000
    vae, unet = pipe.vqvae, pipe.unet
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    assert type(vae).__name__ == "AutoencoderKL" and factor == 4
    assert unet.config.sample_size * factor == 32 and unet.config.in_channels == vae.config.latent_channels
    assert not pipe.scheduler.config.clip_sample  # latents are not clipped to [-1, 1]
    images = pipe(
        batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np"
    ).images
    assert images.shape == (2, 32, 32, 3) and np.isfinite(images).all()


def test_autoencoder_reconstructs_the_held_out_faces(pipe):
    """reconstructions.png (written by tools/train_demo_ldm.py export, 2x nearest) holds rows of 21
    held-out faces, each followed by the exported VAE's reconstructions of them; decode(encode(x)) of
    the shown originals reaches 25 dB and matches the shown reconstructions."""
    from PIL import Image

    grid = np.asarray(Image.open(MODEL / "reconstructions.png").convert("RGB"))[::2, ::2]
    rows = [grid[r * 32 : (r + 1) * 32].reshape(32, 21, 32, 3).transpose(1, 0, 2, 3) for r in range(4)]
    faces, shown = np.concatenate([rows[0], rows[2]]), np.concatenate([rows[1], rows[3]])
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        rec = pipe.vqvae.decode(pipe.vqvae.encode(x).latent_dist.mode()).sample
    rec = ((rec.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert psnr(rec, faces) >= 25.0
    assert np.abs(rec.astype(int) - shown.astype(int)).mean() < 1.0  # the PNG shows this VAE's output


def test_stylediff_loads_it_as_a_latent_model():
    """stylediff's loader takes the AutoencoderKL in ``vqvae/`` as the model's VAE, hashes both weight files."""
    from stylediff.diffusion import load_model

    model = load_model(MODEL)
    assert type(model.components["vae"]).__name__ == "AutoencoderKL"
    assert model.sample_size == (32, 32)
    parts = model.info["components"]
    assert parts["vae"]["subfolder"] == "vqvae"
    for name in ("vae", "unet"):
        assert len(parts[name]["files"]["diffusion_pytorch_model.safetensors"]) == 64  # sha256 hex
