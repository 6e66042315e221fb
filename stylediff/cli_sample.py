"""The ``stylediff sample`` verb: style-guided sampling of a diffusers pixel-space model.

``--num-images K`` samples seeds ``--seed`` … ``--seed + K − 1`` in one batch (one generator per
image, so image i is the image ``--seed S+i --num-images 1`` gives). K = 1 writes OUT.png; K > 1
writes OUT_0.png … OUT_{K-1}.png and a grid at OUT.png. The sidecar OUT.json records the config,
the diffusion model (id, revision or file sha256), VGG weights, time per step and the final style
loss of each image.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from . import cli
from .diffusion import MODES, NORMALIZATIONS
from .errors import ImageError
from .images import load_image, save_image
from .io import ensure_parent, write_json
from .losses import get_style_loss
from .provenance import peak_rss_mb, sidecar
from .vgg import check_layers, load_vgg19, min_input_size

DEFAULT_SCALE = 0.05
DEFAULT_MODE = "x0"


def window(text: str) -> tuple[float, float]:
    parts = [part for part in text.split(",") if part.strip()]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected START,END fractions such as 0.0,1.0, got {text!r}")
    start, end = (cli.finite_float(part) for part in parts)
    if not 0.0 <= start <= end <= 1.0:
        raise argparse.ArgumentTypeError(f"need 0 <= START <= END <= 1, got {text!r}")
    return start, end


def output_paths(out: str | Path, count: int) -> list[Path]:
    """OUT.png for one image; OUT_0.png … OUT_{K-1}.png for K > 1 (the grid then goes to OUT.png)."""
    out = Path(out)
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix or '.png'}") for i in range(count)]


def run_sample(args) -> None:
    from .diffusion import GuidanceConfig, StyleGuidedSampler, default_guidance_size, image_grid, load_model
    from .losses import style_objective

    ensure_parent(args.out)
    layers = check_layers(args.layers)
    get_style_loss(args.loss)  # unknown names fail before any loading
    style_path = Path(args.style)
    if not style_path.is_file():
        raise ImageError(f"style image not found: {style_path}")
    config = GuidanceConfig(scale=args.scale, mode=args.mode, normalize=args.normalize, window=args.window,
                            recurrence=args.recurrence, guidance_size=args.guidance_size, clip_grad=args.clip_grad,
                            loss=args.loss, layers=tuple(layers),
                            layer_weights=tuple(args.layer_weights) if args.layer_weights else None)
    start = time.perf_counter()
    device = cli.resolve_device(args.device)
    model = load_model(args.model, device, revision=args.revision, local_files_only=True if args.offline else None)
    scheduler = model.scheduler(args.scheduler)
    min_side = min_input_size(layers)
    guidance_size = args.guidance_size or default_guidance_size(max(model.sample_size), min_side)
    style = load_image(style_path, args.style_size or guidance_size, min_side)
    vgg = load_vgg19(args.weights, args.pooling, device)
    objective = style_objective(vgg, style.to(device), layers, args.loss, args.layer_weights)
    sampler = StyleGuidedSampler(model.unet, scheduler, objective, config)
    load_seconds = time.perf_counter() - start

    seeds = [args.seed + i for i in range(args.num_images)]
    result = sampler(seeds, num_inference_steps=args.steps, eta=args.eta, precision=args.precision,
                     progress=not args.no_progress, description=f"sample {args.mode} s={args.scale:g}")

    paths = output_paths(args.out, len(seeds))
    for image, path in zip(result.images, paths):
        save_image(image.unsqueeze(0), path)
    if len(seeds) > 1:
        save_image(image_grid(result.images), args.out)
    arguments = {key: (list(value) if isinstance(value, tuple) else value)
                 for key, value in vars(args).items() if key not in ("func", "debug")}
    write_json(cli.sidecar_path(args.out), sidecar(
        "sample", arguments, device=device,
        weights={"diffusion": model.info,
                 "vgg19": {"source": vgg.info.source, "pooling": vgg.pooling, "path": vgg.info.path,
                           "sha256": vgg.info.sha256}},
        timing={"load_seconds": load_seconds, "sample_seconds": result.seconds,
                "seconds_per_step": result.seconds_per_step,
                "seconds_per_step_median": statistics.median(result.step_seconds),
                "step_seconds": result.step_seconds, "peak_rss_mb": peak_rss_mb()},
        results={
            "guidance": {**config.to_dict(), "guidance_shape": list(result.guidance_size or ()),
                         "style_shape": list(style.shape[-2:]), "scheduler": args.scheduler,
                         "steps": args.steps, "eta": args.eta, "batches": result.batches},
            "images": [{"path": str(path), "seed": seed, "style_loss": loss}
                       for path, seed, loss in zip(paths, seeds, result.losses)],
            "final_style_loss": result.losses,
            "grid": str(args.out) if len(seeds) > 1 else None,
            "history": result.history,
        },
    ))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample a diffusion model guided by a style loss",
                       description="Sample a diffusers pixel-space model (hub id or local folder), steering each "
                                   "denoising step with a VGG style loss of the predicted image against --style.")
    p.add_argument("--model", required=True,
                   help="hub id (google/ddpm-cifar10-32) or local diffusers folder (unet/ + scheduler/)")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    p.add_argument("--offline", action="store_true",
                   help="read hub models from the Hugging Face cache only (as HF_HUB_OFFLINE=1)")
    p.add_argument("--style", required=True, help="style image")
    p.add_argument("--style-size", type=cli.positive_int, default=None,
                   help="style image's longest side (default: the guidance size)")
    p.add_argument("--scale", type=cli.nonnegative_float, default=DEFAULT_SCALE,
                   help=f"guidance scale; 0 = the unguided diffusers sample (default {DEFAULT_SCALE})")
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                   help="gradient through the UNet w.r.t. x_t, or w.r.t. x0-hat only (MPGD)")
    p.add_argument("--normalize", choices=NORMALIZATIONS, default="per_step",
                   help="gradient rescaling: to the norm of the noise prediction at every step (per_step), "
                        "by the first guided step's ratio (first_step), or none (raw gradient)")
    p.add_argument("--window", type=window, default=(0.0, 1.0),
                   help="guided part of the trajectory, START,END fractions from noise (0) to image (1)")
    p.add_argument("--recurrence", type=cli.positive_int, default=1, help="repeat each guided step k times")
    p.add_argument("--guidance-size", type=cli.positive_int, default=None,
                   help="side at which x0-hat is fed to VGG (default max(model size, 4 x layers' minimum))")
    p.add_argument("--clip-grad", type=cli.finite_float, default=None,
                   help="zero non-finite gradients and cap each step entry at +-C instead of stopping")
    p.add_argument("--scheduler", choices=("ddim", "ddpm"), default="ddim")
    p.add_argument("--steps", type=cli.positive_int, default=50, help="number of inference steps")
    p.add_argument("--eta", type=cli.nonnegative_float, default=0.0, help="DDIM eta (0 deterministic, 1 DDPM-like)")
    p.add_argument("--num-images", type=cli.positive_int, default=1, help="images, seeds SEED..SEED+K-1")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast on CUDA")
    cli.add_style(p)
    cli.add_common(p)
    p.set_defaults(func=run_sample)


cli.EXTRA_VERBS.append(register)
