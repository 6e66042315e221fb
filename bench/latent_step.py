"""Cost of one guided step on a latent (Stable Diffusion-shaped) model, and the decoder's peak memory.

Random-weight components of Stable Diffusion 1.x's architecture (no weights reach this machine):
``--config sd`` is SD 1.5's own UNet (320/640/1280/1280 channels, cross-attention 768) and VAE
(128/256/512/512); ``--config small`` the same architecture at a quarter of the width (a CPU-sized
stand-in). The conditioning is a random (negative, positive) pair of 77-token embeddings with
classifier-free guidance 7.5, so every UNet evaluation is one call on the CFG batch of 2N.

Times are CPU seconds of this process (``time.process_time``, one thread: the work done, not the wall
time, which on a shared machine measures the neighbours). The bench runs on the CPU. Parts (medians):
UNet forward and forward+backward on the CFG batch, VAE decoder forward+backward (also with gradient
checkpointing), VGG-19 Gram loss (relu1_1…relu5_1) forward+backward at the decoded size. A guided pass of each
method (recurrence 1, windows open, TFG and UGD at their defaults otherwise) is timed as
(T_guided − T_unguided)/S + T_UNet forward over S steps, and given as a ratio to
unit = UNet f+b (CFG batch) + decoder f+b + loss f+b: the goal is ≤ 1.10 for the rules that go through
the UNet (one of each) and ≤ 0.6 for MPGD's z0 rule (no UNet backward); rules with more evaluations
per pass (TFG's N_iter) are also given against what their declared evaluations predict.

``--decoder tiny`` guides through a random ``AutoencoderTiny`` of TAESD's architecture instead of
the VAE (``stylediff sample --decoder tiny``); the unit then has its decoder.

Peak memory: the resident-set high-water mark a decoder forward+backward adds, measured in a fresh
process per setting, with and without gradient checkpointing (``--vae-checkpointing``).

    python bench/latent_step.py [--config small|sd] [--latent 16] [--batch 1] [--steps 2] [--repeats 2]
                                [--memory-sizes 256,512]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image  # noqa: E402
from stylediff.diffusion import METHODS, GuidedSampler, make_method, make_scheduler  # noqa: E402
from stylediff.diffusion.adapters import LatentModel  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402


def cost_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median CPU seconds of one call of ``fn`` (process time) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


WIDTHS = {"sd": 1, "small": 4}
PASS = {"freedom": {"window": (0.0, 1.0), "recurrence": 1}, "ugd": {"recurrence": 1}}
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
}


def components(config: str, latent: int = 64):
    """Random SD 1.x-shaped UNet (on ``latent``² latents) and VAE (``small``: a quarter of the channels)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    k = WIDTHS[config]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=tuple(c // k for c in (320, 640, 1280, 1280)),
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32 // k,
        sample_size=latent,
    )
    vae = AutoencoderKL(
        block_out_channels=[c // k for c in (128, 256, 512, 512)],
        layers_per_block=2,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=32 // k,
        scaling_factor=0.18215,
    )
    return unet.eval().requires_grad_(False), vae.eval().requires_grad_(False)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(config: str, size: int, checkpointing: bool) -> float:
    """MiB that one decoder forward+backward at ``size`` px adds to the process's peak RSS (Linux: the
    high-water mark VmHWM is reset through /proc/self/clear_refs after the VAE is built)."""
    _, vae = components(config)
    if checkpointing:
        vae.enable_gradient_checkpointing()
    z = torch.randn(1, 4, size // 8, size // 8, requires_grad=True)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    torch.autograd.grad(vae.decode(z).sample.square().sum(), z)
    return (_status_kib("VmHWM") - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=tuple(WIDTHS), default="small")
    parser.add_argument("--latent", type=int, default=16, help="latent side (images are 8x)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--memory-sizes", default="256")
    parser.add_argument(
        "--decoder",
        choices=("vae", "tiny"),
        default="vae",
        help="guidance decoder: the VAE, or a random AutoencoderTiny of TAESD's architecture",
    )
    parser.add_argument("--style", default=str(ROOT / "data" / "styles" / "starry_night.jpg"))
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        size, checkpointing = args.memory_child.split(":")
        print(json.dumps(peak_memory(args.config, int(size), checkpointing == "1")))
        return

    unet, vae = components(args.config, args.latent)
    side = args.latent * 8
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn((2, 77, 768), generator=generator)
    decoder = None
    if args.decoder == "tiny":
        from diffusers import AutoencoderTiny

        decoder = AutoencoderTiny().eval().requires_grad_(False)  # TAESD's architecture (random weights)
    model = LatentModel(
        unet,
        vae,
        decoder,
        conditioning=({"encoder_hidden_states": embeddings[:1]}, {"encoder_hidden_states": embeddings[1:]}),
        cfg_scale=7.5,
        null_conditioning={"encoder_hidden_states": embeddings[:1]},  # attention calls (random weights anyway)
    )
    style = load_image(args.style, side)
    objective = style_objective(load_vgg19(), style, list(STYLE_LAYERS_GATYS))
    scheduler = make_scheduler("ddim", SCHEDULER)
    scheduler.set_timesteps(50)
    t = scheduler.timesteps[20]
    x = torch.randn((args.batch, 4, args.latent, args.latent), generator=generator)
    images = torch.rand((args.batch, 3, side, side), generator=generator)

    def unet_forward():
        with torch.no_grad():
            model.denoise(x, t)

    def unet_forward_backward():
        x_in = x.detach().requires_grad_(True)
        torch.autograd.grad(model.denoise(x_in, t).output.sum(), x_in)

    def decoder_forward_backward():
        z = x.detach().requires_grad_(True)
        torch.autograd.grad(model.to_image(z).sum(), z)

    def checkpointed_decoder_forward_backward():
        model.decoder.enable_gradient_checkpointing()
        try:
            decoder_forward_backward()
        finally:
            model.decoder.disable_gradient_checkpointing()

    def loss_forward_backward():
        im = images.detach().requires_grad_(True)
        torch.autograd.grad(objective(im).sum(), im)

    parts = {
        "UNet forward (CFG batch)": unet_forward,
        "UNet forward+backward (CFG batch)": unet_forward_backward,
        "VAE decoder forward+backward": decoder_forward_backward,
        "VAE decoder f+b, --vae-checkpointing": checkpointed_decoder_forward_backward,
        "VGG-19 loss forward+backward": loss_forward_backward,
    }
    times = {name: cost_seconds(fn, args.repeats) for name, fn in parts.items()}
    f_unet, fb_unet, fb_dec, _, fb_loss = times.values()
    unit = fb_unet + fb_dec + fb_loss
    print(
        f"config {args.config}: UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M, VAE "
        f"{sum(p.numel() for p in vae.parameters()) / 1e6:.0f} M parameters, guidance decoder {args.decoder} "
        f"({sum(p.numel() for p in model.decoder.parameters()) / 1e6:.1f} M); latents {args.latent}² -> images "
        f"{side}², batch {args.batch} (CFG batch {2 * args.batch}), {torch.get_num_threads()} thread(s), "
        f"medians of {args.repeats}"
    )
    for name, seconds in times.items():
        print(f"{name:36s} {seconds:8.2f} CPU s")
    seeds = list(range(args.batch))

    def run(method):
        sampler = GuidedSampler(
            model, make_scheduler("ddim", SCHEDULER), objective, method, references={"style": style}
        )
        return cost_seconds(lambda: sampler(seeds, args.steps, progress=False), args.repeats, warmup=0)

    unguided = run(None)
    print(
        "\n| method | CPU s per guided pass | / (UNet f+b + decoder f+b + loss f+b) | goal | predicted from its "
        "evaluations | measured / predicted |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.methods.split(","):
        method = make_method(name, **PASS.get(name, {}))
        seconds = (run(method) - unguided) / args.steps + f_unet
        e = method.pass_evaluations()
        predicted = (
            e.unet_backward * fb_unet
            + (e.unet_forward - e.unet_backward) * f_unet
            + e.objective_backward * (fb_dec + fb_loss)
        )
        goal = "≤ 1.10" if METHODS.lookup(name).differentiates_unet else "≤ 0.6"
        print(
            f"| {name} | {seconds:.2f} | {seconds / unit:.2f} | {goal} | {predicted:.2f} s | "
            f"{seconds / predicted:.2f} |",
            flush=True,
        )

    print("\n| decoded size | peak RSS added by decoder f+b, MiB | with --vae-checkpointing | ratio |")
    print("|---|---|---|---|")
    for size in (int(s) for s in args.memory_sizes.split(",") if s.strip()):
        peaks = [
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--config", args.config, "--memory-child", f"{size}:{flag}"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for flag in (0, 1)
        ]
        print(f"| {size} px | {peaks[0]:.0f} | {peaks[1]:.0f} | {peaks[1] / max(peaks[0], 1e-9):.2f} |", flush=True)


if __name__ == "__main__":
    main()
