"""How good are the offline demo DDPMs' unguided samples? A fixed-feature KID and nearest-neighbour check.

For each model folder (a diffusers DDPMPipeline, e.g. models/ddpm-emoji-32 and the newer demo model, or a
latent LDMPipeline-style folder such as models/ldm-emoji-faces-32, whose latents are decoded by its VAE)
this draws N unguided samples (DDIM, eta 0, fixed seeds, one thread) and compares them with real images
through a fixed offline feature extractor: the project's VGG-19 ('caffe' weights), images upsampled to
64 px, per-channel mean and std of relu3_1 and relu4_1, concatenated (1536 numbers per image).
There is no Inception network offline, so this is *not* the published KID/FID: read it only as a
comparison between rows of the same table.

Reported per row (generated or real image set), against the reference set(s):
  kid            unbiased polynomial-kernel MMD^2, k(x, y) = (x.y / d + 1)^3, on features whose four blocks
                 (mean, std of each layer) are divided by their RMS over the faces training set (a fixed scale,
                 the same for every row); mean and std over random subsets
  nn_cos         mean cosine distance (raw features) of each image to its nearest reference image
  nn_rmse        mean pixel RMSE (0..1) to the nearest reference image in pixel space (low = copies)
For a latent model the record also gives its autoencoder's held-out reconstruction PSNR (decode of the
posterior mean, uint8 images, dB). Calibration rows: the held-out real faces (an ideal model scores about this), and uniform noise.
References: 'faces-train' (the new model's training images, from tools/train_demo_ddpm.py prepare) and,
when the Noto font is installed, 'noto-all' (the 989 Noto Color Emoji glyphs on white that the old model
was trained on, rendered the way its training script did).

Usage (about 15 CPU minutes for two models at N=512 on one thread):
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/demo_model_quality.py \
      --models models/ddpm-emoji-32 models/ddpm-emoji-faces-32 --data /work/demo-model/faces32.npz \
      --n 512 --out bench/results/demo_model_quality.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

LAYERS = ("relu3_1", "relu4_1")
BLOCK_WIDTHS = (256, 256, 512, 512)  # mean and std of relu3_1 (256 channels), then of relu4_1 (512)
NOTO_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"


def _is_latent(path: str) -> bool:
    index = Path(path) / "model_index.json"
    return index.is_file() and any(k in json.loads(index.read_text()) for k in ("vae", "vqvae"))


def sample_model(path: str, n: int, steps: int, batch: int, seed: int) -> tuple[np.ndarray, dict]:
    """``n`` unguided DDIM (eta 0) samples as uint8 (N,H,W,3). A latent model (an ``LDMPipeline``-style
    folder: ``vqvae/`` or ``vae/`` + ``unet/`` + ``scheduler/``) draws latents with the same seeds and
    loop and decodes them with ``decode(z / scaling_factor)``, as diffusers' ``LDMPipeline`` does."""
    import diffusers
    from diffusers import DDIMScheduler, DDPMPipeline, UNet2DModel

    vae = None
    if _is_latent(path):
        index = json.loads((Path(path) / "model_index.json").read_text())
        sub = "vqvae" if "vqvae" in index else "vae"
        vae = getattr(diffusers, index[sub][1]).from_pretrained(path, subfolder=sub).float().eval()
        unet = UNet2DModel.from_pretrained(path, subfolder="unet").float().eval()
        config = DDIMScheduler.load_config(path, subfolder="scheduler")
    else:
        pipe = DDPMPipeline.from_pretrained(path)
        unet, config = pipe.unet.float().eval(), pipe.scheduler.config
    ddim = DDIMScheduler.from_config(config)
    ddim.set_timesteps(steps)
    size = unet.config.sample_size
    out, t0 = [], time.time()
    for b in range(0, n, batch):
        g = torch.Generator().manual_seed(seed + b)
        x = torch.randn(min(batch, n - b), unet.config.in_channels, size, size, generator=g)
        with torch.no_grad():
            for t in ddim.timesteps:
                x = ddim.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
            if vae is not None:
                x = vae.decode(x / vae.config.scaling_factor).sample
        out.append(((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy())
    images = (np.concatenate(out) * 255).round().astype(np.uint8)
    info = {
        "path": str(path),
        "params": sum(p.numel() for p in unet.parameters()),
        "prediction_type": ddim.config.prediction_type,
        "beta_schedule": ddim.config.beta_schedule,
        "sampling_seconds": round(time.time() - t0, 1),
    }
    if vae is not None:
        info.update(
            {
                "latent_shape": [unet.config.in_channels, size, size],
                "vae_class": type(vae).__name__,
                "vae_params": sum(p.numel() for p in vae.parameters()),
                "scaling_factor": vae.config.scaling_factor,
            }
        )
        info["vae"] = vae
    return images, info


def reconstruction_psnr(vae, images: np.ndarray) -> float:
    """Mean PSNR (dB, uint8 images) of decode(posterior mean or quantised latents of encode(x)) vs x."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        enc = vae.encode(x)
        z = enc.latent_dist.mode() if hasattr(enc, "latent_dist") else enc.latents
        rec = vae.decode(z).sample
    rec = ((rec.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    mse = ((rec - images.astype(np.float64)) ** 2).reshape(len(images), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def noto_glyphs(size: int = 32) -> np.ndarray:
    """The old model's training images: single-codepoint Noto glyphs >= U+2000 on white (109 px strike,
    crop 4 px each side horizontally, Lanczos to 32 px), kept when drawn and when the corners are white."""
    from fontTools.ttLib import TTFont
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(NOTO_FONT, 109)
    keep = []
    for cp in sorted(TTFont(NOTO_FONT).getBestCmap()):
        if cp < 0x2000:
            continue
        im = Image.new("RGB", (136, 128), "white")
        ImageDraw.Draw(im).text((0, 0), chr(cp), font=font, embedded_color=True)
        if (np.asarray(im) < 250).any(axis=2).sum() < 200:
            continue
        a = np.asarray(im.crop((4, 0, 132, 128)).resize((size, size), Image.LANCZOS))
        corners = np.concatenate([a[:3, :3], a[-3:, -3:], a[:3, -3:], a[-3:, :3]])
        if corners.min() > 230:
            keep.append(a)
    return np.stack(keep)


def features(vgg, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    """uint8 (N,H,W,3) -> (N, 1536) float64: per-channel mean and std of relu3_1, relu4_1 at 64 px."""
    out = []
    for b in range(0, len(images), batch):
        x = torch.from_numpy(images[b : b + batch]).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        with torch.no_grad():
            acts = vgg(x, list(LAYERS))
        parts = []
        for name in LAYERS:
            a = acts[name].flatten(2)
            parts += [a.mean(-1), a.std(-1)]
        out.append(torch.cat(parts, 1).double())
    return torch.cat(out)


def kid(fx: torch.Tensor, fy: torch.Tensor, subset: int, n_subsets: int, seed: int) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    d = fx.shape[1]
    m = min(subset, len(fx), len(fy))
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(n_subsets):
        x = fx[torch.randperm(len(fx), generator=g)[:m]]
        y = fy[torch.randperm(len(fy), generator=g)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = (
            (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean()
        )
        vals.append(mmd.item())
    return float(np.mean(vals)), float(np.std(vals))


def nn_cosine(fx: torch.Tensor, fy: torch.Tensor, same: bool = False) -> float:
    x = F.normalize(fx, dim=1)
    y = F.normalize(fy, dim=1)
    sim = x @ y.T
    if same:
        sim.fill_diagonal_(-2)
    return float((1 - sim.max(1).values).mean())


def nn_rmse(x: np.ndarray, y: np.ndarray, same: bool = False) -> float:
    a = torch.from_numpy(x).flatten(1).double() / 255
    b = torch.from_numpy(y).flatten(1).double() / 255
    d2 = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0) / a.shape[1]
    if same:
        d2.fill_diagonal_(float("inf"))
    return float(d2.min(1).values.sqrt().mean())


def save_grid(images: np.ndarray, path: Path, cols: int = 8):
    from PIL import Image

    images = images[: cols * cols]
    rows = [np.concatenate(list(images[r * cols : (r + 1) * cols]), axis=1) for r in range(len(images) // cols)]
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", nargs="+", required=True, help="DDPMPipeline folders, or LDMPipeline-style latent folders"
    )
    p.add_argument("--data", required=True, help="faces32.npz from tools/train_demo_ddpm.py prepare")
    p.add_argument("--n", type=int, default=512, help="samples per model (and noise images)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (eta 0)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kid-subset", type=int, default=100)
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--no-noto", action="store_true", help="skip the 'noto-all' reference (the old model's data)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="demo_model_quality.json")
    p.add_argument("--grid-dir", help="where the 8x8 sample grids go (default: beside --out)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid_dir = Path(args.grid_dir) if args.grid_dir else out.parent
    grid_dir.mkdir(parents=True, exist_ok=True)

    from stylediff.networks.vgg19 import load_vgg19

    vgg = load_vgg19("caffe")
    data = np.load(args.data)
    refs = {"faces-train": data["train"]}
    if not args.no_noto and Path(NOTO_FONT).exists():
        refs["noto-all"] = noto_glyphs()
    rows = {"real held-out faces": data["heldout"]}
    rng = np.random.default_rng(args.seed)
    rows["uniform noise"] = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    model_info = {}
    for path in args.models:
        name = Path(path).name
        images, info = sample_model(path, args.n, args.steps, args.batch, args.seed)
        vae = info.pop("vae", None)
        if vae is not None:  # a latent model: its autoencoder alone on the held-out faces
            info["heldout_reconstruction_psnr_db"] = round(reconstruction_psnr(vae, data["heldout"]), 3)
        model_info[name] = info
        rows[name] = images
        save_grid(images, grid_dir / f"{name}_samples_8x8.png")
        print(f"sampled {name}: {info}", flush=True)
    order = [Path(m).name for m in args.models] + ["real held-out faces", "uniform noise"]

    ref_feats = {k: features(vgg, v) for k, v in refs.items()}
    # fixed scaling for every KID in the table: each block (mean/std of each layer) is divided by its
    # root-mean-square over the faces training set, so that x.y/d is about 1 as for Inception features
    ft = ref_feats["faces-train"]
    blocks = np.cumsum([0] + [w for w in BLOCK_WIDTHS])
    scale = torch.ones(ft.shape[1], dtype=ft.dtype)
    for lo, hi in zip(blocks[:-1], blocks[1:]):
        scale[lo:hi] = ft[:, lo:hi].pow(2).mean().sqrt()
    z = lambda f: f / scale  # noqa: E731
    results = {}
    for row in order:
        fr = features(vgg, rows[row])
        results[row] = {"n": len(rows[row])}
        for ref, fref in ref_feats.items():
            k_mean, k_std = kid(z(fr), z(fref), args.kid_subset, args.kid_subsets, args.seed)
            results[row][ref] = {
                "kid": k_mean,
                "kid_std": k_std,
                "nn_cos": nn_cosine(fr, fref),
                "nn_rmse": nn_rmse(rows[row], refs[ref]),
            }
    # leave-one-out baselines: each training image against the other training images
    results["faces-train (leave-one-out)"] = {
        "n": len(refs["faces-train"]),
        "faces-train": {
            "kid": None,
            "kid_std": None,
            "nn_cos": nn_cosine(ref_feats["faces-train"], ref_feats["faces-train"], same=True),
            "nn_rmse": nn_rmse(refs["faces-train"], refs["faces-train"], same=True),
        },
    }
    order.append("faces-train (leave-one-out)")

    head = f"{'set':<30}{'n':>5}"
    for ref in refs:
        head += f" | {ref + ' KID (std)':>24}{'nn_cos':>9}{'nn_rmse':>9}"
    print("\n" + head)
    print("-" * len(head))
    for row in order:
        line = f"{row:<30}{results[row]['n']:>5}"
        for ref in refs:
            r = results[row].get(ref)
            if r is None:
                line += f" | {'':>24}{'':>9}{'':>9}"
                continue
            k = f"{r['kid']:.4f} ({r['kid_std']:.4f})" if r["kid"] is not None else "-"
            line += f" | {k:>24}{r['nn_cos']:>9.4f}{r['nn_rmse']:>9.4f}"
        print(line)
    record = {
        "what": "unguided DDIM samples of the demo diffusion models vs real images, fixed VGG-19 features (not Inception KID)",
        "features": "stylediff.networks.vgg19 load_vgg19('caffe'), input bilinear-upsampled 32->64 px, per-channel mean+std "
        "of relu3_1 and relu4_1 (1536-d); KID on features with each block divided by its RMS over faces-train",
        "kid": f"unbiased MMD^2, kernel (x.y/d+1)^3, {args.kid_subsets} subsets of min({args.kid_subset}, n) per set",
        "sampling": f"DDIM {args.steps} steps, eta 0, seeds {args.seed}+batch offset, batch {args.batch}, "
        f"{args.threads} thread(s)",
        "references": {k: len(v) for k, v in refs.items()},
        "data": str(args.data),
        "models": model_info,
        "results": results,
        "order": order,
        "seconds": round(time.time() - t_start, 1),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads},
        "command": "python bench/demo_model_quality.py "
        + " ".join(
            ["--models"]
            + args.models
            + [
                "--data",
                args.data,
                "--n",
                str(args.n),
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--seed",
                str(args.seed),
                "--out",
                args.out,
            ]
        ),
    }
    out.write_text(json.dumps(record, indent=1))
    print(f"\nwrote {out} and grids in {grid_dir} ({record['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
