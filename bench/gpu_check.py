"""One script a machine with a GPU runs in under 8 minutes: the NST engine at 512 px, guided sampling on a
latent (Stable Diffusion-sized) model at 512 px and on a pixel model at 256 px, per method; seconds per
image and peak memory. Writes one JSON and one Markdown table.

    python bench/gpu_check.py --out results/gpu_check                  # on the GPU machine
    python bench/gpu_check.py --smoke --out results/gpu_check_smoke    # tiny sizes on a CPU (the tests)

Sections, in this order (each job is skipped, and says so, once ``--budget-minutes`` minus a margin has
passed):

1. ``nst``: :func:`~stylediff.nst.optimize.synthesize_texture` at 512 px (the style read at 1024),
   every style loss at relu1_1…relu5_1, one scale: seconds per step, peak memory, final loss.
2. ``latent``: random-weight components of Stable Diffusion 1.5's architecture (its UNet2DConditionModel,
   860 M parameters, and its AutoencoderKL; no weights reach the machine), classifier-free guidance 7.5 on
   random 77-token embeddings, 512-px images (64² latents), bf16 autocast, ``--latent-steps`` DDIM steps;
   every method at its defaults, batch 1 and 4, guiding through the VAE decoder, the VAE decoder with
   gradient checkpointing (``--vae-checkpointing``) and a random AutoencoderTiny of TAESD's architecture
   (``--decoder tiny``). Timings only: the images of random weights are noise.
3. ``pixel``: google/ddpm-ema-church-256 if it is in the Hugging Face cache, else a UNet2DModel of its
   architecture at random weights; every method, fp32 and bf16, batch 1 and 4, ``--pixel-steps`` steps.

Seconds per image include the first call's set-up only for the warm-up run, which is not reported. Peak
memory is ``torch.cuda.max_memory_allocated`` since the job started (on a CPU: none).
``--smoke`` runs the same code on a CPU with tiny networks (a few channels, 32-px images), one or two
steps, so that a test can check the script end to end in seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.errors import StylediffError  # noqa: E402
from stylediff.core.images import load_image, save_image  # noqa: E402
from stylediff.diffusion import METHODS, GuidedSampler, LatentModel, load_model, make_method  # noqa: E402
from stylediff.diffusion.schedule import make_scheduler  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import STYLE_LOSSES, style_objective  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, synthesize_texture  # noqa: E402

STYLE = ROOT / "data" / "styles" / "starry_night.jpg"
SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
}
DECODERS = ("vae", "vae_checkpointing", "tiny")
MARGIN_S = 40
"""A job starts only while this many seconds of the budget remain (a batch-4 latent run of the costliest
method takes about that on an H100 by the estimate in docs/benchmarks.md)."""


class Run:
    """The report, the clock and the budget of one check."""

    def __init__(self, budget_s: float, device: torch.device):
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.device = device

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def may_start(self) -> bool:
        return self.elapsed() < self.budget_s - MARGIN_S

    def timed(self, fn) -> dict:
        """``fn()``'s seconds and the peak memory it added, or the error it raised (as a row, not a crash)."""
        if not self.may_start():
            return {"skipped": "budget"}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        tick = time.perf_counter()
        try:
            value = fn()
        except (StylediffError, RuntimeError, ValueError) as exc:  # an out-of-memory is a RuntimeError
            traceback.print_exc()
            return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        row = {"seconds": time.perf_counter() - tick, "peak_mb": peak_mb(self.device)}
        return {**row, "value": value}


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def sd_components(smoke: bool, device: torch.device):
    """Stable Diffusion 1.5's UNet and VAE architectures at random weights (built on ``device``), a random
    AutoencoderTiny of TAESD's architecture and a (negative, positive) pair of token embeddings; tiny
    stand-ins of the same classes for ``smoke``."""
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    width, groups, tokens, embed = ((32, 32, 64, 64), 8, 8, 32) if smoke else ((320, 640, 1280, 1280), 32, 77, 768)
    torch.manual_seed(0)
    with torch.device(device):  # random initialisation on the GPU: seconds instead of a minute on the CPU
        unet = UNet2DConditionModel(
            sample_size=4 if smoke else 64,
            block_out_channels=width,
            cross_attention_dim=embed,
            attention_head_dim=8,
            norm_num_groups=groups,
            layers_per_block=1 if smoke else 2,
        )
        vae = AutoencoderKL(
            block_out_channels=[16, 16, 32, 32] if smoke else [128, 256, 512, 512],
            layers_per_block=1 if smoke else 2,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            latent_channels=4,
            norm_num_groups=8 if smoke else 32,
            scaling_factor=0.18215,
        )
        tiny = AutoencoderTiny(
            encoder_block_out_channels=(8,) * 4 if smoke else (64,) * 4,
            decoder_block_out_channels=(8,) * 4 if smoke else (64,) * 4,
        )
        embeddings = torch.randn((2, tokens, embed), generator=torch.Generator(device).manual_seed(0))
    return [m.eval().requires_grad_(False) for m in (unet, vae, tiny)], embeddings


def latent_model(unet, vae, tiny, embeddings, decoder: str) -> LatentModel:
    """The adapter ``stylediff sample`` builds for a text-to-image model, guiding through ``decoder``."""
    chosen = tiny if decoder == "tiny" else vae
    if decoder == "vae_checkpointing":
        vae.enable_gradient_checkpointing()
    else:
        vae.disable_gradient_checkpointing()
    negative = {"encoder_hidden_states": embeddings[:1]}  # the random negative stands in for the empty prompt
    conditioning = (negative, {"encoder_hidden_states": embeddings[1:]})
    return LatentModel(unet, vae, chosen, conditioning=conditioning, cfg_scale=7.5, null_conditioning=negative)


def church_like(smoke: bool, device: torch.device):
    """google/ddpm-ema-church-256's UNet2DModel architecture (random weights), or a tiny one for ``smoke``."""
    from diffusers import DDPMScheduler, UNet2DModel

    with torch.device(device):
        if smoke:
            unet = UNet2DModel(
                sample_size=16,
                block_out_channels=(16, 16),
                layers_per_block=1,
                norm_num_groups=8,
                down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                up_block_types=("AttnUpBlock2D", "UpBlock2D"),  # self-attention, as the church UNet: every method runs
            )
        else:
            unet = UNet2DModel(
                sample_size=256,
                block_out_channels=(128, 128, 256, 256, 512, 512),
                layers_per_block=2,
                down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
            )
    return unet.eval().requires_grad_(False), dict(DDPMScheduler(num_train_timesteps=1000).config)


def sample_rows(run: Run, section: str, model, scheduler_config: dict, objective, style, grid, steps: int, out: Path):
    """Every method at its defaults for each (setting, batch, precision) of ``grid``, after one warm-up call
    per setting; one row each. ``style`` is the reference image the methods that read one get."""
    rows = []
    for setting, batch, precision in grid:
        if isinstance(model, dict):  # one adapter per setting (the latent decoders)
            current = model[setting]()
        else:
            current = model
        warm = GuidedSampler(current, make_scheduler("ddim", scheduler_config), objective, make_method("x0"))
        run.timed(lambda: warm([0], num_inference_steps=1, precision=precision, progress=False))
        for name in METHODS:
            scheduler = make_scheduler("ddim", scheduler_config)
            sampler = GuidedSampler(current, scheduler, objective, make_method(name), references={"style": style})
            result = run.timed(
                lambda: sampler(list(range(batch)), num_inference_steps=steps, precision=precision, progress=False)
            )
            output = result.pop("value", None)
            row = {"section": section, "setting": setting, "method": name, "batch": batch, "precision": precision}
            row["steps"] = steps
            if "seconds" in result:
                result["seconds_per_image"] = result.pop("seconds") / batch
                result["batches_run"] = output.batches
                if batch == 1:
                    save_image(output.images[:1], out / f"{section}_{setting}_{name}.png")
            rows.append({**row, **result})
            print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    what = " ".join(str(row[k]) for k in ("section", "setting", "method", "batch", "precision") if k in row)
    if "seconds_per_image" in row:
        memory = f", peak {row['peak_mb']:.0f} MiB" if row.get("peak_mb") is not None else ""
        return f"{what}: {row['seconds_per_image']:.2f} s/image{memory}"
    if "seconds_per_step" in row:
        memory = f", peak {row['peak_mb']:.0f} MiB" if row.get("peak_mb") is not None else ""
        return f"{what}: {row['seconds_per_step'] * 1e3:.1f} ms/step{memory}"
    return f"{what}: {row.get('error') or 'skipped (' + row.get('skipped', '?') + ')'}"


def nst_rows(run: Run, vgg, smoke: bool, out: Path) -> list:
    side, steps = (32, 2) if smoke else (512, 50)
    layers = list(STYLE_LAYERS_GATYS[:2] if smoke else STYLE_LAYERS_GATYS)
    style = load_image(STYLE, 2 * side).to(run.device)
    shape = (side, side)
    rows = []
    for loss in STYLE_LOSSES:
        config = OptimizeConfig(steps=steps, init="spectrum", first_step=0.02, progress=False)
        result = run.timed(lambda: synthesize_texture(vgg, style, layers, loss, shape, config))
        texture = result.pop("value", None)
        row = {"section": "nst", "setting": f"{side} px, style read at {2 * side}", "method": loss, "steps": steps}
        if "seconds" in result:
            result["seconds_per_step"] = result.pop("seconds") / steps
            result["final_loss"] = texture.final.get("loss")
            save_image(texture.image, out / f"texture_{loss}.png")
        rows.append({**row, **result})
        print(_line(rows[-1]), flush=True)
    return rows


def markdown(report: dict) -> str:
    lines = [
        f"GPU check on {report['device']} (torch {report['torch']}{', smoke' if report['smoke'] else ''}), "
        f"{report['seconds']:.0f} s in all.",
        "",
        "| section | setting | method | batch | precision | steps | s/image (NST: ms/step) | peak MiB | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if "seconds_per_image" in row:
            value = f"{row['seconds_per_image']:.2f}"
        elif "seconds_per_step" in row:
            value = f"{row['seconds_per_step'] * 1e3:.1f} ms"
        else:
            value = ""
        peak = f"{row['peak_mb']:.0f}" if row.get("peak_mb") is not None else ""
        note = row.get("error") or (f"skipped ({row['skipped']})" if "skipped" in row else "")
        lines.append(
            f"| {row['section']} | {row['setting']} | {row['method']} | {row.get('batch', '')} | "
            f"{row.get('precision', 'fp32')} | {row['steps']} | {value} | {peak} | {note} |"
        )
    lines.append("")
    lines.append(f"latent: {report.get('latent_model')}; pixel: {report['pixel_model'].get('id')}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="google/ddpm-ema-church-256", help="the pixel model (section 3)")
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu_check"))
    parser.add_argument("--smoke", action="store_true", help="tiny networks on a CPU: checks the script end to end")
    parser.add_argument("--budget-minutes", type=float, default=7.5)
    parser.add_argument("--latent-steps", type=int, default=8, help="DDIM steps per latent run")
    parser.add_argument("--pixel-steps", type=int, default=10, help="DDIM steps per pixel run")
    parser.add_argument("--sections", default="nst,latent,pixel")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    run = Run(args.budget_minutes * 60, device)
    sections = args.sections.split(",")
    latent_steps, pixel_steps = (1, 1) if args.smoke else (args.latent_steps, args.pixel_steps)
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "smoke": args.smoke,
        "budget_s": run.budget_s,
        "rows": [],
    }
    vgg = load_vgg19(device=device)
    if "nst" in sections:
        report["rows"] += nst_rows(run, vgg, args.smoke, out)

    layers = list(STYLE_LAYERS_GATYS[:2] if args.smoke else STYLE_LAYERS_GATYS)
    (unet, vae, tiny), embeddings = sd_components(args.smoke, device)
    report["latent_model"] = (
        f"random UNet2DConditionModel ({sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M parameters), "
        f"AutoencoderKL ({sum(p.numel() for p in vae.parameters()) / 1e6:.0f} M), AutoencoderTiny "
        f"({sum(p.numel() for p in tiny.parameters()) / 1e6:.1f} M), "
        + ("tiny stand-ins" if args.smoke else "Stable Diffusion 1.5's and TAESD's architectures")
    )
    if "latent" in sections:
        side = 8 * unet.config.sample_size
        style = load_image(STYLE, side).to(device)
        objective = style_objective(vgg, style, layers)
        adapters = {
            decoder: (lambda decoder=decoder: latent_model(unet, vae, tiny, embeddings, decoder))
            for decoder in DECODERS
        }
        if args.smoke:  # fp32: bf16 autocast runs at 1/20 of the speed on a CPU without bf16 arithmetic
            grid = [("vae", 1, "fp32"), ("vae", 2, "fp32"), ("vae_checkpointing", 1, "fp32"), ("tiny", 1, "fp32")]
        else:  # in order of importance, as the budget may end the list
            grid = [("vae", 1, "bf16"), ("vae", 4, "bf16"), ("tiny", 1, "bf16"), ("vae_checkpointing", 4, "bf16")]
            grid += [("tiny", 4, "bf16"), ("vae_checkpointing", 1, "bf16")]
        report["rows"] += sample_rows(run, "latent", adapters, SD_SCHEDULER, objective, style, grid, latent_steps, out)

    report["pixel_model"] = {"id": args.model}
    if "pixel" in sections:
        try:
            if args.smoke:
                raise StylediffError("--smoke uses a tiny random UNet")
            model = load_model(args.model, device, local_files_only=True)
            unet, scheduler_config, report["pixel_model"] = model.unet, model.scheduler_config, model.info
        except StylediffError as exc:
            unet, scheduler_config = church_like(args.smoke, device)
            report["pixel_model"] = {
                "id": "tiny random UNet" if args.smoke else "random weights, google/ddpm-ema-church-256's architecture",
                "reason": str(exc),
            }
        side = unet.config.sample_size
        style = load_image(STYLE, max(side, 32)).to(device)
        objective = style_objective(vgg, style, layers)
        if args.smoke:
            grid = [("unet", 1, "bf16"), ("unet", 2, "fp32")]
        else:
            grid = [("unet", batch, precision) for precision in ("bf16", "fp32") for batch in (1, 4)]
        report["rows"] += sample_rows(run, "pixel", unet, scheduler_config, objective, style, grid, pixel_steps, out)

    report["seconds"] = run.elapsed()
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_check.md").write_text(markdown(report))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
