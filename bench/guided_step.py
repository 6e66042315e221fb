"""Cost of one guided sampling step for every registered method, against its parts.

Times (medians, after warm-up) for a batch of N images at the model's size, the Gram objective at
relu1_1…relu5_1 at the guidance size: one UNet forward, one UNet forward+backward (gradient w.r.t.
the input), one VGG style-loss forward+backward; then a sampling run of S steps with every step
guided, per method at its defaults (FreeDoM's windows opened to the whole trajectory), divided by S.
Each method's step is given as a multiple of (UNet forward+backward + VGG forward+backward) and
beside what its declared evaluations predict from the parts.

    python bench/guided_step.py [--model models/ddpm-emoji-faces-32] [--batch 4] [--steps 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import median_seconds  # noqa: E402

from stylediff.core.images import load_image  # noqa: E402
from stylediff.diffusion import METHODS, GuidedSampler, default_guidance_size, load_model, make_method  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS, min_input_size  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402

OPEN = {"freedom": {"window": (0.0, 1.0), "travel_window": (0.0, 1.0)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "ddpm-emoji-faces-32"))
    parser.add_argument("--style", default=str(ROOT / "data" / "styles" / "starry_night.jpg"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    model = load_model(args.model, device)
    unet = model.unet
    side = default_guidance_size(max(model.sample_size), min_input_size(STYLE_LAYERS_GATYS))
    style = load_image(args.style, side).to(device)
    objective = style_objective(load_vgg19(device=device), style, list(STYLE_LAYERS_GATYS))
    scheduler = model.scheduler("ddim")
    scheduler.set_timesteps(50)
    t = scheduler.timesteps[10]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch, 3, *model.sample_size), generator=generator).to(device)
    images = torch.rand((args.batch, 3, side, side), generator=generator).to(device)

    def unet_forward():
        with torch.no_grad():
            unet(x, t)

    def unet_forward_backward():
        x_in = x.detach().requires_grad_(True)
        torch.autograd.grad(unet(x_in, t).sample.sum(), x_in)

    def vgg_forward_backward():
        im = images.detach().requires_grad_(True)
        torch.autograd.grad(objective(im).sum(), im)

    parts = {
        "UNet forward": unet_forward,
        "UNet forward+backward": unet_forward_backward,
        "VGG forward+backward": vgg_forward_backward,
    }
    times = {name: median_seconds(fn, args.repeats, device) for name, fn in parts.items()}
    unit = times["UNet forward+backward"] + times["VGG forward+backward"]
    seeds = list(range(args.batch))
    print(
        f"device {device}, batch {args.batch}, sample {model.sample_size}, VGG input {side} px, "
        f"{sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M UNet parameters, medians of {args.repeats}"
    )
    for name, seconds in times.items():
        print(f"{name:24s} {seconds * 1e3:9.1f} ms")
    print(
        "\n| method | ms per guided step | / (UNet f+b + VGG f+b) | predicted from its evaluations | measured / predicted |"
    )
    print("|---|---|---|---|---|")
    for name in METHODS:
        method = make_method(name, **OPEN.get(name, {}))
        sampler = GuidedSampler(unet, model.scheduler("ddim"), objective, method, references={"style": style})
        seconds = (
            median_seconds(lambda: sampler(seeds, args.steps, progress=False), args.repeats, device, warmup=1)
            / args.steps
        )
        e = method.evaluations(args.steps // 2, args.steps)
        predicted = (
            e.unet_backward * times["UNet forward+backward"]
            + (e.unet_forward - e.unet_backward) * times["UNet forward"]
            + e.objective_backward * times["VGG forward+backward"]
        )
        print(
            f"| {name} | {seconds * 1e3:.0f} | {seconds / unit:.2f} | {predicted * 1e3:.0f} ms | "
            f"{seconds / predicted:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
