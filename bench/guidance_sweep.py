"""Guidance-scale sweep on a real model: style distance vs. departure from the unguided sample.

For each mode, each of 5 log-spaced scales, 3 style images × 4 seeds are sampled in ONE batch (each
image guided by its own style through a per-group objective), and compared with the same-seed
unguided (scale 0) sample:

* ``gram``: relative Gram distance ‖G(x) − G(s)‖_F / ‖G(s)‖_F, averaged over relu1_1 … relu5_1,
  with x at the guidance size (the sample upsampled) and s the style image at that size;
* ``lpips``: LPIPS (AlexNet, torchmetrics) to the unguided sample, both upsampled to 64 px
  (needs ``TORCH_HOME`` holding ``alexnet-owt-7be5be79.pth``; otherwise reported as NaN);
* ``rmse``: pixel RMSE in [0, 1] to the unguided sample.

Writes ``results/guidance_sweep/{table.csv,table.md,grid_<mode>.png,grid.png}``.

    TORCH_HOME=../shared/cache/torch python bench/guidance_sweep.py
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.diffusion import (GuidanceConfig, StyleGuidedSampler, default_guidance_size, image_grid,  # noqa: E402
                                 load_model)
from stylediff.images import load_image, save_image  # noqa: E402
from stylediff.io import write_text  # noqa: E402
from stylediff.losses import gram_matrix, style_objective  # noqa: E402
from stylediff.vgg import STYLE_LAYERS_GATYS, load_vgg19, min_input_size  # noqa: E402

DEFAULT_SCALES = {"x0": "0.01,1.0", "through_unet": "0.01,1.0"}


class GroupedObjective(torch.nn.Module):
    """Image i is scored by objective ``groups[i // per_group]``: several styles in one batch."""

    def __init__(self, objectives, per_group: int):
        super().__init__()
        self.objectives = torch.nn.ModuleList(objectives)
        self.per_group = per_group
        self.min_size = max(o.min_size for o in objectives)

    def forward(self, images):
        chunks = images.split(self.per_group)
        return torch.cat([objective(chunk) for objective, chunk in zip(self.objectives, chunks)])


def log_scales(text: str, count: int) -> list[float]:
    low, high = (float(v) for v in text.split(","))
    if count == 1:
        return [low]
    return [float(f"{math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (count - 1)):.3g}")
            for i in range(count)]


@torch.no_grad()
def gram_distance(vgg, images: torch.Tensor, style: torch.Tensor) -> list[float]:
    feats = vgg(images, STYLE_LAYERS_GATYS)
    target = vgg(style, STYLE_LAYERS_GATYS)
    per_layer = []
    for name in STYLE_LAYERS_GATYS:
        g, gs = gram_matrix(feats[name]), gram_matrix(target[name])
        per_layer.append((g - gs).flatten(1).norm(dim=1) / gs.flatten(1).norm(dim=1))
    return torch.stack(per_layer).mean(0).tolist()


def lpips_metric():
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
        return metric.eval()
    except Exception as exc:  # no backbone offline
        print(f"LPIPS unavailable ({str(exc).splitlines()[0][:120]}); reporting NaN", file=sys.stderr)
        return None


@torch.no_grad()
def lpips_distances(metric, images: torch.Tensor, reference: torch.Tensor) -> list[float]:
    if metric is None:
        return [float("nan")] * len(images)
    up = lambda x: F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)  # noqa: E731
    return [metric(up(a[None]), up(b[None])).item() for a, b in zip(images, reference)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "ddpm-emoji-32"))
    parser.add_argument("--styles", default="starry_night,the_scream,shipwreck")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--modes", default="x0,through_unet")
    parser.add_argument("--x0-scales", default=DEFAULT_SCALES["x0"], help="LOW,HIGH of 5 log-spaced scales")
    parser.add_argument("--through-unet-scales", default=DEFAULT_SCALES["through_unet"])
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--window", default="0.0,1.0")
    parser.add_argument("--guidance-size", type=int, default=None)
    parser.add_argument("--loss", default="gram")
    parser.add_argument("--layers", default=",".join(STYLE_LAYERS_GATYS), help="guidance layers (metric: relu1_1..5_1)")
    parser.add_argument("--out", default=str(ROOT / "results" / "guidance_sweep"))
    args = parser.parse_args()

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = args.styles.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    model = load_model(args.model)
    vgg = load_vgg19()
    layers = args.layers.split(",")
    size = args.guidance_size or default_guidance_size(max(model.sample_size), min_input_size(STYLE_LAYERS_GATYS))
    style_images = [load_image(ROOT / "data" / "styles" / f"{name}.jpg", size, min_input_size(STYLE_LAYERS_GATYS))
                    for name in styles]
    objective = GroupedObjective([style_objective(vgg, s, layers, args.loss) for s in style_images], len(seeds))
    all_seeds = seeds * len(styles)
    window = tuple(float(v) for v in args.window.split(","))
    lpips = lpips_metric()

    def run(mode: str, scale: float):
        config = GuidanceConfig(scale=scale, mode=mode, window=window, guidance_size=size, loss=args.loss)
        sampler = StyleGuidedSampler(model.unet, model.scheduler(args.scheduler), objective, config)
        start = time.perf_counter()
        result = sampler(all_seeds, num_inference_steps=args.steps, progress=False)
        print(f"{mode:12s} scale {scale:<6g} {time.perf_counter() - start:6.1f} s  "
              f"loss {sum(result.losses) / len(result.losses):.4f}", flush=True)
        return result

    def scores(images: torch.Tensor, baseline: torch.Tensor) -> list[dict]:
        upsampled = sampler_input(images)
        rows = []
        for k, name in enumerate(styles):
            part = slice(k * len(seeds), (k + 1) * len(seeds))
            grams = gram_distance(vgg, upsampled[part], style_images[k])
            lp = lpips_distances(lpips, images[part], baseline[part])
            rmse = (images[part] - baseline[part]).flatten(1).pow(2).mean(1).sqrt().tolist()
            rows += [{"style": name, "seed": seed, "gram": g, "lpips": l, "rmse": r}
                     for seed, g, l, r in zip(seeds, grams, lp, rmse)]
        return rows

    def sampler_input(images):
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)

    base = run("x0", 0.0)
    records = [{"mode": "none", "scale": 0.0, **row} for row in scores(base.images, base.images)]
    grids = {}
    scale_lists = {"x0": log_scales(args.x0_scales, args.count),
                   "through_unet": log_scales(args.through_unet_scales, args.count)}
    for mode in args.modes.split(","):
        rows = [base.images]
        for scale in scale_lists[mode]:
            result = run(mode, scale)
            records += [{"mode": mode, "scale": scale, "seconds_per_step": result.seconds_per_step, **row}
                        for row in scores(result.images, base.images)]
            rows.append(result.images)
        thumbs = torch.cat([F.interpolate(s, size=model.sample_size, mode="bilinear", antialias=True)
                            .expand(len(seeds), -1, -1, -1) for s in style_images])
        grid = image_grid(torch.cat([thumbs] + rows), columns=len(all_seeds))
        grids[mode] = grid
        save_image(F.interpolate(grid, scale_factor=2, mode="nearest"), out_dir / f"grid_{mode}.png")

    # tables: per mode and scale, mean over styles × seeds, and per style
    import csv

    with open(out_dir / "table.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["mode", "scale", "style", "seed", "gram", "lpips", "rmse",
                                                "seconds_per_step"])
        writer.writeheader()
        for record in records:
            writer.writerow({key: record.get(key, "") for key in writer.fieldnames})
    lines = ["| mode | scale | gram (all) | " + " | ".join(f"gram {s}" for s in styles)
             + " | LPIPS to unguided | RMSE to unguided |", "|---|---|---|" + "---|" * len(styles) + "---|---|"]
    keys = [("none", 0.0)] + [(m, s) for m in args.modes.split(",") for s in scale_lists[m]]
    for mode, scale in keys:
        group = [r for r in records if r["mode"] == mode and r["scale"] == scale]
        mean = lambda key, rows: sum(r[key] for r in rows) / len(rows)  # noqa: E731
        per_style = [mean("gram", [r for r in group if r["style"] == s]) for s in styles]
        lines.append(f"| {mode} | {scale:g} | {mean('gram', group):.3f} | "
                     + " | ".join(f"{v:.3f}" for v in per_style)
                     + f" | {mean('lpips', group):.3f} | {mean('rmse', group):.3f} |")
    table = "\n".join(lines) + "\n"
    write_text(out_dir / "table.md", table)
    print(table)
    if len(grids) > 1:
        spacer = torch.ones(1, 3, 6, grids[next(iter(grids))].shape[-1])
        both = torch.cat([torch.cat([g, spacer], dim=2) for g in grids.values()], dim=2)
        save_image(F.interpolate(both, scale_factor=2, mode="nearest"), out_dir / "grid.png")


if __name__ == "__main__":
    main()
