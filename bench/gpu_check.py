"""One script a machine with a GPU runs in under 8 minutes: guided sampling per method at 256 px (batch
1/4/8, fp32 and bf16: seconds per image and peak CUDA memory), texture synthesis at 512 px, and, if
minutes remain, a short training of the demo model's architecture. Writes one JSON and a few PNGs.

    python bench/gpu_check.py --out results/gpu_check                       # on the GPU machine
    python bench/gpu_check.py --smoke --out results/gpu_check_smoke         # tiny sizes, on any CPU (CI)

``--model`` is a hub id in the Hugging Face cache or a local diffusers folder (default
google/ddpm-ema-church-256). When it cannot be loaded offline the sampling timings use a UNet2DModel
of the same architecture with random weights, and the JSON says so (timings only; its images are noise).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.errors import StylediffError  # noqa: E402
from stylediff.core.images import load_image, save_image  # noqa: E402
from stylediff.diffusion import METHODS, GuidedSampler, load_model, make_method  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, synthesize_texture  # noqa: E402

STYLE = ROOT / "data" / "styles" / "starry_night.jpg"


def church_like(sample_size: int, smoke: bool):
    """google/ddpm-ema-church-256's UNet2DModel architecture (random weights), or a tiny one for --smoke."""
    from diffusers import DDPMScheduler, UNet2DModel

    if smoke:
        unet = UNet2DModel(
            sample_size=sample_size,
            block_out_channels=(32, 32),
            layers_per_block=1,
            norm_num_groups=8,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),  # self-attention, as the church UNet: every method runs
        )
    else:
        unet = UNet2DModel(
            sample_size=sample_size,
            block_out_channels=(128, 128, 256, 256, 512, 512),
            layers_per_block=2,
            down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
        )
    return unet.eval().requires_grad_(False), dict(DDPMScheduler(num_train_timesteps=1000).config)


def peak_mb(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="google/ddpm-ema-church-256")
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu_check"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and steps: checks the script on a CPU")
    parser.add_argument("--budget-minutes", type=float, default=7.5)
    args = parser.parse_args()
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "smoke": args.smoke,
        "sampling": [],
        "texture": None,
    }
    size, steps, batches = (16, 2, (1, 2)) if args.smoke else (256, 50, (1, 4, 8))
    precisions = ("fp32", "bf16")
    try:
        model = load_model(args.model, device, local_files_only=True)
        unet, scheduler_config, source = model.unet, model.scheduler_config, model.info
    except StylediffError as exc:
        unet, scheduler_config = church_like(size, args.smoke)
        unet = unet.to(device)
        source = {
            "id": "random weights, google/ddpm-ema-church-256's architecture" if not args.smoke else "tiny random UNet",
            "reason": str(exc),
        }
    report["model"] = source
    from stylediff.diffusion.schedule import make_scheduler

    vgg = load_vgg19(device=device)
    layers = STYLE_LAYERS_GATYS[:2] if args.smoke else STYLE_LAYERS_GATYS
    style = load_image(STYLE, 32 if args.smoke else 256).to(device)
    objective = style_objective(vgg, style, layers)

    # 1. guided sampling: every method at its default scale, each batch size and precision
    for name in METHODS:
        for precision in precisions:
            for batch in batches:
                if time.perf_counter() - start > args.budget_minutes * 60 * 0.7:
                    break
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                scheduler = make_scheduler("ddim", scheduler_config)
                sampler = GuidedSampler(unet, scheduler, objective, make_method(name), references={"style": style})
                tick = time.perf_counter()
                result = sampler(list(range(batch)), num_inference_steps=steps, precision=precision, progress=False)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - tick
                report["sampling"].append(
                    {
                        "method": name,
                        "precision": precision,
                        "batch": batch,
                        "seconds_per_image": seconds / batch,
                        "peak_cuda_mb": peak_mb(device),
                        "batches_run": result.batches,
                    }
                )
                print(f"sample {name:13s} {precision} batch {batch}: {seconds / batch:.2f} s/image", flush=True)
                if batch == batches[-1] and precision == "fp32":
                    save_image(result.images[:1], out / f"sample_{name}.png")

    # 2. texture synthesis at 512 px (64 px for --smoke)
    if time.perf_counter() - start < args.budget_minutes * 60 * 0.85:
        side = 64 if args.smoke else 512
        style = load_image(STYLE, side).to(device)
        tick = time.perf_counter()
        result = synthesize_texture(
            vgg,
            style,
            list(STYLE_LAYERS_GATYS),
            "gram",
            tuple(style.shape[-2:]),
            OptimizeConfig(steps=5 if args.smoke else 100, init="mean", progress=False),
        )
        report["texture"] = {
            "side": side,
            "steps": len(result.history) - 1,
            "seconds": time.perf_counter() - tick,
            "final_loss": result.final.get("loss"),
            "peak_cuda_mb": peak_mb(device),
        }
        save_image(result.image, out / "texture.png")
        print(f"texture {side} px: {report['texture']['seconds']:.1f} s", flush=True)

    report["seconds"] = time.perf_counter() - start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'gpu_check.json'} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
