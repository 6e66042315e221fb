"""Cost of one guided sampling step in each mode, against its parts.

Times (median of repeats, after warm-up), for a batch of N images at the model's size and the
objective at the guidance size: one UNet forward; one UNet forward+backward (gradient w.r.t. the
input); one VGG style-loss forward+backward; one unguided step; one ``x0`` step; one
``through_unet`` step. The closing line gives each mode's step as a multiple of
(UNet forward+backward + VGG forward+backward).

    python bench/guided_step.py [--model models/ddpm-emoji-32] [--batch 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.diffusion import GuidanceConfig, StyleGuidedSampler, load_model  # noqa: E402
from stylediff.images import load_image  # noqa: E402
from stylediff.losses import style_objective  # noqa: E402
from stylediff.vgg import STYLE_LAYERS_GATYS, load_vgg19  # noqa: E402
from timing import median_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "ddpm-emoji-32"))
    parser.add_argument("--style", default=str(ROOT / "data" / "styles" / "starry_night.jpg"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--guidance-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    model = load_model(args.model, device)
    unet = model.unet
    vgg = load_vgg19(device=device)
    style = load_image(args.style, args.guidance_size or 256).to(device)
    objective = style_objective(vgg, style, list(STYLE_LAYERS_GATYS))
    probe = StyleGuidedSampler(unet, model.scheduler("ddim"), objective,
                               GuidanceConfig(guidance_size=args.guidance_size))
    shape = probe.guidance_shape()
    objective = style_objective(vgg, load_image(args.style, max(shape)).to(device), list(STYLE_LAYERS_GATYS))
    scheduler = model.scheduler("ddim")
    scheduler.set_timesteps(50)
    index = 10
    t = scheduler.timesteps[index]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch, *probe.sample_shape), generator=generator).to(device)
    images = torch.rand((args.batch, 3, *shape), generator=generator).to(device)

    def unet_forward():
        with torch.no_grad():
            unet(x, t)

    def unet_forward_backward():
        x_in = x.detach().requires_grad_(True)
        torch.autograd.grad(unet(x_in, t).sample.sum(), x_in)

    def vgg_forward_backward():
        im = images.detach().requires_grad_(True)
        torch.autograd.grad(objective(im).sum(), im)

    def sampler_step(mode: str, scale: float):
        sampler = StyleGuidedSampler(unet, scheduler, objective,
                                     GuidanceConfig(scale=scale, mode=mode, guidance_size=max(shape)))
        return lambda: sampler.step(x, t, index, 50, None)

    rows = [
        ("UNet forward", unet_forward),
        ("UNet forward+backward", unet_forward_backward),
        ("VGG style loss forward+backward", vgg_forward_backward),
        ("unguided step", sampler_step("x0", 0.0)),
        ("x0 step", sampler_step("x0", 0.1)),
        ("through_unet step", sampler_step("through_unet", 0.1)),
    ]
    times = {name: median_seconds(fn, args.repeats, device) for name, fn in rows}
    unit = times["UNet forward+backward"] + times["VGG style loss forward+backward"]
    print(f"device {device}, batch {args.batch}, sample {tuple(probe.sample_shape[1:])}, VGG input {shape}, "
          f"{sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M UNet parameters, median of {args.repeats}")
    print(f"{'':34s} {'ms':>9s} {'/ (UNet f+b + VGG f+b)':>24s}")
    for name, seconds in times.items():
        print(f"{name:34s} {seconds * 1e3:9.2f} {seconds / unit:24.2f}")
    print(f"ratio: x0 step = {times['x0 step'] / unit:.2f}x and through_unet step = "
          f"{times['through_unet step'] / unit:.2f}x one UNet forward+backward + one VGG forward+backward "
          f"({times['through_unet step'] / times['x0 step']:.2f}x x0; unguided step "
          f"{times['unguided step'] / unit:.2f}x)")


if __name__ == "__main__":
    main()
