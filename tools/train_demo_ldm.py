"""Train the project's offline demo *latent* diffusion model (AutoencoderKL f=4 + UNet2DModel on its latents) on a CPU.

Why: the latent path (decode x̂0 through a VAE, take the style loss on pixels) needs a latent model that
loads offline, as models/ddpm-emoji-faces-32 is for the pixel path. This trains one on the same emoji-face
data (tools/train_demo_ddpm.py prepare), in two stages as latent diffusion does (Rombach et al. 2022):

  1. an ``AutoencoderKL`` (downsampling factor 4: 32x32x3 images <-> 8x8x4 latents), L1 + MSE
     reconstruction loss and a small KL term (no perceptual or adversarial loss), EMA weights;
  2. an unconditional ``UNet2DModel`` on the VAE's latents (posterior samples of the training faces and
     their mirror images, multiplied by ``scaling_factor`` = 1 / their standard deviation), with the pixel
     model's recipe: v-prediction, cosine betas, min-SNR-5 weighting, AdamW + warm-up + cosine decay, EMA.

Why 32x32 and f=4 (8x8x4 latents): the quality protocol (bench/demo_model_quality.py) compares with the
32x32 faces the pixel model was trained on, and on one contended CPU thread the VAE must train in ~20
minutes and the UNet in ~45: a 64x64 VAE costs 4x per step, and 8x8 latents make a UNet step ~16x
cheaper than the pixel model's 32x32 one, so the UNet sees many more images in its budget.

Steps (each records what it did; training is resumable and runs for a wall-clock budget):

  python tools/train_demo_ldm.py prepare WORK_DIR --fetch          # = tools/train_demo_ddpm.py prepare
  python tools/train_demo_ldm.py train-vae VAE_RUN --data WORK_DIR/faces32.npz --minutes 20
  python tools/train_demo_ldm.py train-unet UNET_RUN --data WORK_DIR/faces32.npz --vae VAE_RUN/checkpoint.pt --minutes 45
  #   add --resume RUN/checkpoint.pt to either to continue (--minutes is the TOTAL budget)
  python tools/train_demo_ldm.py export VAE_RUN/checkpoint.pt UNET_RUN/checkpoint.pt MODEL_DIR

The export is an ``LDMPipeline`` folder (``vqvae/`` holding the AutoencoderKL, ``unet/``, ``scheduler/``,
``model_index.json``), fp16 weights, with samples.png, reconstructions.png and training.json.
Threads: 1 by default (--threads); set OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 as well on a shared machine.
"""

import argparse
import copy
import importlib.util
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_spec = importlib.util.spec_from_file_location("train_demo_ddpm", Path(__file__).with_name("train_demo_ddpm.py"))
ddpm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddpm)  # the pixel model's script: data preparation, grids, atomic saves, machine info

SIZE = ddpm.SIZE


# ---------------------------------------------------------------------------------------------- models
def build_vae(a):
    from diffusers import AutoencoderKL

    ch = tuple(int(c) for c in a["vae_channels"].split(","))
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(ch),
        up_block_types=("UpDecoderBlock2D",) * len(ch),
        block_out_channels=ch,
        layers_per_block=a["vae_layers"],
        latent_channels=a["latent_channels"],
        norm_num_groups=a["vae_groups"],
        sample_size=SIZE,
        scaling_factor=a.get("scaling_factor", 1.0),
    )


def build_unet(a, latent_size: int, latent_channels: int):
    from diffusers import UNet2DModel

    ch = tuple(int(c) for c in a["channels"].split(","))
    attn = {int(r) for r in a["attn_res"].split(",")} if a["attn_res"] else set()
    down, res = [], latent_size
    for i in range(len(ch)):
        down.append("AttnDownBlock2D" if res in attn else "DownBlock2D")
        if i < len(ch) - 1:
            res //= 2
    up = ["AttnUpBlock2D" if d.startswith("Attn") else "UpBlock2D" for d in reversed(down)]
    return UNet2DModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        layers_per_block=a["layers"],
        block_out_channels=ch,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        attention_head_dim=a["head_dim"],
        norm_num_groups=a["groups"],
    )


def build_scheduler(a):
    """The training noise schedule, as the DDIMScheduler that LDMPipeline uses; no clipping (latents)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule=a["betas"],
        prediction_type=a["pred"],
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def load_images(path):
    data = np.load(path)
    to = lambda k: torch.from_numpy(data[k]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # noqa: E731
    record = Path(path).with_suffix(".json")
    return to("train"), to("heldout"), (json.loads(record.read_text()) if record.exists() else {"file": str(path)})


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the PSNR (dB, peak 255) between two uint8 image stacks."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def reconstruct(vae, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """decode(posterior mean of encode(x)), as a user's encode/decode round trip does."""
    out = []
    with torch.no_grad():
        for b in range(0, len(x), batch):
            out.append(vae.decode(vae.encode(x[b : b + batch]).latent_dist.mode()).sample)
    return torch.cat(out)


def decode_latents(vae, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vae.decode(z / vae.config.scaling_factor).sample


def ddim_latents(unet, sched_config, n, seed, steps=50, batch=64):
    """``n`` unguided DDIM (eta 0) latents (scaled space), fixed seed per batch."""
    from diffusers import DDIMScheduler

    ddim = DDIMScheduler.from_config(sched_config)
    ddim.set_timesteps(steps)
    c, s = unet.config.in_channels, unet.config.sample_size
    out = []
    unet.eval()
    for b in range(0, n, batch):
        g = torch.Generator().manual_seed(seed + b)
        z = torch.randn(min(batch, n - b), c, s, s, generator=g)
        with torch.no_grad():
            for t in ddim.timesteps:
                z = ddim.step(unet(z, t).sample, t, z, eta=0.0).prev_sample
        out.append(z)
    return torch.cat(out)


# -------------------------------------------------------------------------------------- shared training
def _lr(a, step, frac):
    return (
        a["lr"]
        * min(1.0, (step + 1) / a["warmup"])
        * (a["lr_floor"] + (1 - a["lr_floor"]) * 0.5 * (1 + math.cos(math.pi * frac)))
    )


def _ema_update(ema, model, step, decay):
    with torch.no_grad():
        d = min(decay, (1 + step) / (10 + step))
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1 - d)


class Run:
    """A resumable wall-clock-budgeted training run: model, EMA, optimiser, RNG state, logs, checkpoints."""

    def __init__(self, args, stage: str, build):
        torch.set_num_threads(args.threads)
        self.out = Path(args.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt = torch.load(args.resume, map_location="cpu", weights_only=False) if args.resume else None
        keep = ("out_dir", "data", "minutes", "resume", "ckpt_minutes", "log_every", "threads", "eval_minutes", "vae")
        a = dict(vars(args))
        if ckpt is not None:  # the recipe comes from the checkpoint; only the budget/cadence may change
            a = {**ckpt["args"], **{k: a[k] for k in keep if k in a}}
        self.a, self.stage = a, stage
        random.seed(a["seed"]), np.random.seed(a["seed"]), torch.manual_seed(a["seed"])
        self.model = build(a)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=a["lr"], betas=(0.9, 0.99), weight_decay=0.0)
        self.step, self.elapsed0, self.losses, self.evals, self.runs, self.extra = 0, 0.0, [], [], [], {}
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.ema.load_state_dict(ckpt["ema"])
            self.opt.load_state_dict(ckpt["opt"])
            self.step, self.elapsed0, self.losses = ckpt["step"], ckpt["elapsed_s"], ckpt["losses"]
            self.evals, self.runs, self.extra = ckpt["evals"], ckpt["runs"], ckpt.get("extra", {})
            torch.set_rng_state(ckpt["rng"]["torch"])
            np.random.set_state(ckpt["rng"]["numpy"])
            random.setstate(ckpt["rng"]["python"])
            print(f"resumed {args.resume} at step {self.step}, {self.elapsed0 / 60:.1f} min trained", flush=True)
        self.runs.append(
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "from_step": self.step,
                "from_minutes": round(self.elapsed0 / 60, 1),
                "budget_minutes": a["minutes"],
            }
        )
        self.t_start = time.time()
        self.first_step = self.step

    def elapsed(self):
        return self.elapsed0 + time.time() - self.t_start

    def done(self):
        return self.elapsed() >= self.a["minutes"] * 60

    def optimise(self, loss):
        lr = _lr(self.a, self.step, min(1.0, self.elapsed() / (self.a["minutes"] * 60)))
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        _ema_update(self.ema, self.model, self.step, self.a["ema"])
        self.losses.append(round(loss.item(), 6))
        if self.step % self.a["log_every"] == 0:
            rate = (time.time() - self.t_start) / max(1, self.step - self.first_step)
            print(
                f"{self.stage} step {self.step} loss {np.mean(self.losses[-self.a['log_every'] :]):.5f} lr {lr:.2e} "
                f"{self.elapsed() / 60:.1f} min {rate:.3f} s/step",
                flush=True,
            )

    def checkpoint(self, data_record, final=False):
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed(),
            "losses": self.losses,
            "evals": self.evals,
            "runs": self.runs,
            "args": self.a,
            "extra": self.extra,
            "stage": self.stage,
            "final": final,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "data_record": data_record,
            "machine": ddpm.machine_info(),
        }
        ddpm._atomic_save(state, self.out / "checkpoint.pt")
        (self.out / "training.json").write_text(json.dumps(stage_record(state), indent=1))
        print(f"{self.stage} checkpoint at step {self.step} ({self.elapsed() / 60:.1f} min)", flush=True)


def _flip_half(x):
    flip = torch.rand(len(x)) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    return x


# ------------------------------------------------------------------------------------------------- VAE
def train_vae(args):
    x_train, x_held, data_record = load_images(args.data)
    run = Run(args, "vae", build_vae)
    a, vae = run.a, run.model
    print(f"vae params {sum(p.numel() for p in vae.parameters())} train {tuple(x_train.shape)}", flush=True)
    pixels = 3 * SIZE * SIZE
    last_ckpt = last_eval = time.time()

    def evaluate():
        rec = to_uint8(reconstruct(run.ema, x_held))
        psnr = psnr_uint8(rec, to_uint8(x_held))
        run.evals.append(
            {"step": run.step, "minutes": round(run.elapsed() / 60, 2), "heldout_psnr_ema": round(psnr, 3)}
        )
        print(f"vae eval step {run.step} held-out PSNR (EMA, posterior mean) {psnr:.2f} dB", flush=True)
        ddpm.save_grid(np.concatenate([to_uint8(x_held[:16]), rec[:16]]), run.out / f"recon_step{run.step:06d}.png", 16)

    vae.train()
    while not run.done():
        x = _flip_half(x_train[torch.randint(0, len(x_train), (a["batch"],))])
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        # L1 + MSE per pixel; the KL term with SD's weight on *summed* losses, expressed per pixel
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + a["kl"] * post.kl().mean() / pixels
        run.optimise(loss)
        if time.time() - last_eval > args.eval_minutes * 60:
            evaluate()
            last_eval = time.time()
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            run.checkpoint(data_record)
            last_ckpt = time.time()
    evaluate()
    run.checkpoint(data_record, final=True)


# ------------------------------------------------------------------------------------------------ UNet
def load_vae(checkpoint: str):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    vae = build_vae(state["args"])
    vae.load_state_dict(state["ema"])
    return vae.eval().requires_grad_(False), state


def encode_dataset(vae, x_train):
    """Posterior mean and std of every training face and of its mirror image."""
    x = torch.cat([x_train, x_train.flip(-1)])
    means, stds = [], []
    with torch.no_grad():
        for b in range(0, len(x), 64):
            d = vae.encode(x[b : b + 64]).latent_dist
            means.append(d.mean)
            stds.append(d.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(args):
    x_train, x_held, data_record = load_images(args.data)
    vae, vae_state = load_vae(args.vae)
    mean, std = encode_dataset(vae, x_train)
    g = torch.Generator().manual_seed(0)
    scaling = float(1.0 / (mean + std * torch.randn(mean.shape, generator=g)).std())
    latent_channels, latent_size = mean.shape[1], mean.shape[-1]
    run = Run(args, "unet", lambda a: build_unet(a, latent_size, latent_channels))
    a, unet = run.a, run.model
    run.extra.setdefault("scaling_factor", scaling)
    scaling = run.extra["scaling_factor"]
    run.extra["vae_checkpoint"] = {"path": str(args.vae), "step": vae_state["step"]}
    vae.register_to_config(scaling_factor=scaling)
    sched = build_scheduler(a)
    ab = sched.alphas_cumprod.float()
    snr = ab / (1 - ab)
    w_t = (
        torch.clamp(snr, max=a["min_snr"]) / (snr + 1 if a["pred"] == "v_prediction" else snr)
        if a["min_snr"] > 0
        else torch.ones_like(snr)
    )
    with torch.no_grad():
        z_held = vae.encode(x_held).latent_dist.mode() * scaling
    print(
        f"unet params {sum(p.numel() for p in unet.parameters())} latents {tuple(mean.shape)} "
        f"scaling_factor {scaling:.4f}",
        flush=True,
    )
    last_ckpt = last_eval = time.time()

    def evaluate():
        mse = heldout_z0_mse(run.ema, sched, z_held)
        run.evals.append(
            {"step": run.step, "minutes": round(run.elapsed() / 60, 2), "heldout_z0_mse_ema": round(mse, 5)}
        )
        print(f"unet eval step {run.step} held-out z0 MSE (EMA) {mse:.5f}", flush=True)
        z = ddim_latents(run.ema, sched.config, 32, seed=0, batch=32)
        ddpm.save_grid(to_uint8(decode_latents(vae, z)), run.out / f"samples_step{run.step:06d}.png")

    unet.train()
    while not run.done():
        idx = torch.randint(0, len(mean), (a["batch"],))
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape)) * scaling
        noise = torch.randn_like(z0)
        t = torch.randint(0, 1000, (a["batch"],))
        al, sg = ab[t].sqrt().view(-1, 1, 1, 1), (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
        target = noise if a["pred"] == "epsilon" else al * noise - sg * z0
        per = (unet(al * z0 + sg * noise, t).sample - target).pow(2).mean(dim=(1, 2, 3))
        run.optimise((per * w_t[t]).mean())
        if time.time() - last_eval > args.eval_minutes * 60:
            evaluate()
            unet.train()
            last_eval = time.time()
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            run.checkpoint(data_record)
            last_ckpt = time.time()
    evaluate()
    run.checkpoint(data_record, final=True)


def heldout_z0_mse(unet, sched, z0, seed=1234):
    """Mean z0-prediction MSE (scaled latents) on fixed (latent, t, noise) triples."""
    g = torch.Generator().manual_seed(seed)
    ab = sched.alphas_cumprod
    tot, ts = 0.0, torch.linspace(20, 980, 8).long()
    unet.eval()
    with torch.no_grad():
        for t in ts:
            noise = torch.randn(z0.shape, generator=g)
            al, sg = ab[t].sqrt(), (1 - ab[t]).sqrt()
            zt = al * z0 + sg * noise
            out = unet(zt, t.expand(len(z0))).sample
            z0_hat = (zt - sg * out) / al if sched.config.prediction_type == "epsilon" else al * zt - sg * out
            tot += F.mse_loss(z0_hat, z0).item()
    return tot / len(ts)


# ---------------------------------------------------------------------------------------------- records
def stage_record(state: dict) -> dict:
    a, losses = state["args"], state["losses"]
    if state["stage"] == "vae":
        recipe = {
            "vae": {
                "class": "AutoencoderKL",
                "block_out_channels": a["vae_channels"],
                "layers_per_block": a["vae_layers"],
                "latent_channels": a["latent_channels"],
                "norm_num_groups": a["vae_groups"],
                "mid_block_attention": True,
            },
            "loss": f"L1 + MSE on pixels in [-1, 1] (per-pixel means) + KL x {a['kl']:g} on per-image sums "
            "(SD's weighting), decoder fed posterior samples; no perceptual or adversarial term",
        }
    else:
        recipe = {
            "unet": {
                "class": "UNet2DModel",
                "block_out_channels": a["channels"],
                "layers_per_block": a["layers"],
                "attention_at_resolutions": a["attn_res"] or "mid block only",
                "attention_head_dim": a["head_dim"],
                "norm_num_groups": a["groups"],
            },
            "scheduler": {
                "num_train_timesteps": 1000,
                "beta_schedule": a["betas"],
                "prediction_type": a["pred"],
                "clip_sample": False,
            },
            "latents": "posterior samples (mean + std * noise) of the training faces and their mirror images, "
            "times scaling_factor",
            "scaling_factor": state["extra"].get("scaling_factor"),
            "vae": state["extra"].get("vae_checkpoint"),
            "loss": f"MSE on the {a['pred']} target"
            + (f", min-SNR-{a['min_snr']:g} weighting" if a["min_snr"] > 0 else ""),
            "timesteps": "uniform in [0, 999]",
        }
    recipe.update(
        {
            "optimizer": f"AdamW betas (0.9, 0.99) lr {a['lr']:g} (warm-up {a['warmup']} steps, cosine over "
            f"the time budget to {a['lr_floor']:g}x), weight decay 0, grad-norm clip 1.0",
            "batch_size": a["batch"],
            "ema_decay": f"min({a['ema']}, (1+step)/(10+step))",
            "seed": a["seed"],
        }
    )
    return {
        "stage": state["stage"],
        "recipe": recipe,
        "steps": state["step"],
        "images_seen": state["step"] * a["batch"],
        "minutes": round(state["elapsed_s"] / 60, 1),
        "finished": state["final"],
        "seconds_per_step": round(state["elapsed_s"] / max(1, state["step"]), 3),
        "loss_curve_mean_per_tenth": [
            round(float(np.mean(c)), 5) for c in np.array_split(np.array(losses), 10) if len(c)
        ],
        "evals": state["evals"],
        "runs": state["runs"],
        "machine": state["machine"],
    }


# ----------------------------------------------------------------------------------------------- export
def export(args):
    from diffusers import LDMPipeline

    torch.set_num_threads(args.threads)
    vae, vae_state = load_vae(args.vae_checkpoint)
    unet_state = torch.load(args.unet_checkpoint, map_location="cpu", weights_only=False)
    vae.register_to_config(scaling_factor=unet_state["extra"]["scaling_factor"])
    unet = build_unet(
        unet_state["args"], SIZE // 2 ** (len(vae.config.block_out_channels) - 1), vae.config.latent_channels
    )
    unet.load_state_dict(unet_state["ema"])
    out = Path(args.model_dir)
    parts = {"vqvae": vae, "unet": unet.eval()}
    if not args.fp32:  # fp16 storage halves the folder (diffusers loads it back as fp32)
        parts = {k: copy.deepcopy(m).half() for k, m in parts.items()}
    LDMPipeline(**parts, scheduler=build_scheduler(unet_state["args"])).save_pretrained(out, safe_serialization=True)
    for f in out.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    record = {
        "data": unet_state["data_record"],
        "augmentation": "random horizontal flip (p=0.5)",
        "vae": stage_record(vae_state),
        "unet": stage_record(unet_state),
        "note": args.note,
        "script": "tools/train_demo_ldm.py",
    }
    (out / "training.json").write_text(json.dumps(record, indent=1))
    pipe = LDMPipeline.from_pretrained(out)  # sample what the folder holds, as a user will load it
    vae, unet = pipe.vqvae.float(), pipe.unet.float()
    z = ddim_latents(unet, pipe.scheduler.config, 64, seed=args.seed, batch=64)
    ddpm.save_grid(to_uint8(decode_latents(vae, z)), out / "samples.png")
    _, x_held, _ = load_images(args.data)
    rec = to_uint8(reconstruct(vae, x_held))
    ddpm.save_grid(
        np.concatenate([to_uint8(x_held)[:21], rec[:21], to_uint8(x_held)[21:42], rec[21:42]]),
        out / "reconstructions.png",
        21,
    )
    print(f"exported {out}: held-out PSNR of the stored VAE {psnr_uint8(rec, to_uint8(x_held)):.2f} dB", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser(
        "prepare", help="= tools/train_demo_ddpm.py prepare (fetch the emoji packages, write faces32.npz)"
    )
    pp.add_argument("work_dir")
    pp.add_argument("--fetch", action="store_true", help="npm pack the pinned packages into WORK_DIR/npm")
    pp.add_argument("--sets", default="twemoji,noto,fluent3d,fluentflat")
    pp.add_argument("--holdout", type=float, default=0.1)
    pp.add_argument("--seed", type=int, default=0)
    pp.set_defaults(fill_note="87.5%")

    def common(sp, lr, batch, warmup):
        sp.add_argument("out_dir")
        sp.add_argument("--data", required=True, help="faces32.npz from `prepare`")
        sp.add_argument("--minutes", type=float, required=True, help="total training budget (includes resumed time)")
        sp.add_argument("--resume", help="checkpoint.pt to continue from (its recipe is used)")
        sp.add_argument("--batch", type=int, default=batch)
        sp.add_argument("--lr", type=float, default=lr)
        sp.add_argument("--lr-floor", dest="lr_floor", type=float, default=0.1)
        sp.add_argument("--warmup", type=int, default=warmup)
        sp.add_argument("--ema", type=float, default=0.999)
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=1)
        sp.add_argument("--ckpt-minutes", dest="ckpt_minutes", type=float, default=5.0)
        sp.add_argument("--eval-minutes", dest="eval_minutes", type=float, default=5.0)
        sp.add_argument("--log-every", dest="log_every", type=int, default=50)

    vp = sub.add_parser("train-vae", help="train (or resume) the AutoencoderKL for a wall-clock budget")
    common(vp, lr=1e-3, batch=16, warmup=100)
    vp.add_argument(
        "--vae-channels",
        dest="vae_channels",
        default="32,64,64",
        help="block_out_channels; n entries = downsampling factor 2^(n-1)",
    )
    vp.add_argument("--vae-layers", dest="vae_layers", type=int, default=1)
    vp.add_argument("--vae-groups", dest="vae_groups", type=int, default=32)
    vp.add_argument("--latent-channels", dest="latent_channels", type=int, default=4)
    vp.add_argument("--kl", type=float, default=1e-6, help="KL weight relative to summed reconstruction losses")

    up = sub.add_parser("train-unet", help="train (or resume) the latent UNet2DModel for a wall-clock budget")
    common(up, lr=4e-4, batch=64, warmup=200)
    up.add_argument("--vae", required=True, help="the train-vae checkpoint.pt whose EMA encoder makes the latents")
    up.add_argument("--pred", default="v_prediction", choices=["epsilon", "v_prediction"])
    up.add_argument("--betas", default="squaredcos_cap_v2", choices=["squaredcos_cap_v2", "linear", "scaled_linear"])
    up.add_argument("--min-snr", dest="min_snr", type=float, default=5.0, help="gamma; 0 = plain MSE")
    up.add_argument("--channels", default="64,96,128")
    up.add_argument("--layers", type=int, default=1)
    up.add_argument("--attn-res", dest="attn_res", default="4", help="latent resolutions with attention, '' = none")
    up.add_argument("--head-dim", dest="head_dim", type=int, default=32)
    up.add_argument("--groups", type=int, default=32)

    ep = sub.add_parser(
        "export", help="write an LDMPipeline folder (fp16) + samples.png + reconstructions.png + training.json"
    )
    ep.add_argument("vae_checkpoint")
    ep.add_argument("unet_checkpoint")
    ep.add_argument("model_dir")
    ep.add_argument("--data", required=True, help="faces32.npz (held-out faces for reconstructions.png)")
    ep.add_argument("--fp32", action="store_true", help="store fp32 weights (default fp16, which load as fp32)")
    ep.add_argument("--seed", type=int, default=0)
    ep.add_argument("--note", help="a sentence recorded in training.json (e.g. how a run was resumed)")
    ep.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.cmd == "prepare":
        return ddpm.prepare(args)
    {"train-vae": train_vae, "train-unet": train_unet, "export": export}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
