"""Measure each guidance method's ``scale_range`` on the demo model: the log-spaced range of ``--scale``
in which the Gram style loss moves the samples without destroying them.

For every registered method, a log grid of scales (factors of √10 around its default), the same
seeds and styles, 50 DDIM steps: the Gram distance to the style (the metrics' relative Gram distance,
mean over relu1_1…relu5_1) and the realism distance (cosine distance of VGG relu3_1/relu4_1 mean+std
features to the nearest of the model's own unguided samples, seeds 1000…) per scale. The range is

* low: the smallest scale whose mean Gram distance is at most 0.9 × the unguided one (it moves);
* high: the largest scale with realism at most ``--max-realism`` (default: 30 % of the way from the
  unguided samples' own realism to uniform noise's) whose Gram distance is still below the
  unguided one and at most 1.1 × the best seen so far (it has not overshot or collapsed).

The 30 % was set by looking at the grids on the faces model: x0 at scale 0.05 (realism 0.076) still
gives faces, at 0.15 (0.116) the faces are gone; halfway (0.133) let destroyed samples in.

    python bench/scale_range.py                       # every method, prints a table, writes a JSON
    python bench/scale_range.py --methods dps,tfg --out results/scale_range.json

It also writes one grid PNG per method (rows: scales; columns: styles × seeds) to look at.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image, save_image  # noqa: E402
from stylediff.diffusion import METHODS, GuidedSampler, load_model, make_method  # noqa: E402
from stylediff.evaluation.scorer import gram_distances, realism_features  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "ddpm-emoji-faces-32"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--styles", default="starry_night,the_scream,shipwreck")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--factors", default="0.03,0.1,0.3,1,3,10,30", help="scales = default × these")
    parser.add_argument("--reference", type=int, default=32, help="unguided samples for realism")
    parser.add_argument("--max-realism", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "scale_range" / "scale_range.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)

    model = load_model(args.model)
    vgg = load_vgg19()
    seeds = [int(s) for s in args.seeds.split(",")]
    styles = {name: load_image(ROOT / "data" / "styles" / f"{name}.jpg", 64) for name in args.styles.split(",")}
    metric_styles = {
        name: load_image(ROOT / "data" / "styles" / f"{name}.jpg", max(model.sample_size)) for name in styles
    }
    layers = list(STYLE_LAYERS_GATYS)

    with torch.no_grad():
        reference = GuidedSampler(model.unet, model.scheduler("ddim"))(
            list(range(1000, 1000 + args.reference)), num_inference_steps=args.steps, progress=False
        ).images
        ref_features = torch.nn.functional.normalize(realism_features(vgg, reference), dim=1)

        def realism(images):
            features = torch.nn.functional.normalize(realism_features(vgg, images), dim=1)
            return (1 - features @ ref_features.T).min(dim=1).values

        def gram(images, name):
            """The metrics' Gram distance: the sample at its own size against the style read at that size."""
            sf = vgg(metric_styles[name], layers)
            return torch.tensor(
                [
                    gram_distances(vgg(images[i : i + 1], layers), sf, layers)["gram_dist_mean"]
                    for i in range(len(images))
                ]
            )

        noise = torch.rand(16, 3, *model.sample_size, generator=torch.Generator().manual_seed(0))
        calibration = {"unguided_other_seeds": None, "uniform_noise": realism(noise).mean().item()}

    results = {"calibration": calibration, "methods": {}}
    unguided = {}
    for name, style in styles.items():
        objective = style_objective(vgg, style, layers)
        out = GuidedSampler(model.unet, model.scheduler("ddim"), objective)(seeds, args.steps, progress=False)
        unguided[name] = out.images
    all_unguided = torch.cat(list(unguided.values()))
    calibration["unguided_other_seeds"] = realism(all_unguided).mean().item()
    max_realism = args.max_realism or (
        calibration["unguided_other_seeds"] + 0.3 * (calibration["uniform_noise"] - calibration["unguided_other_seeds"])
    )
    base_gram = torch.cat([gram(unguided[n], n) for n in styles]).mean().item()
    print(
        f"calibration: realism of unguided samples {calibration['unguided_other_seeds']:.4f}, of uniform noise "
        f"{calibration['uniform_noise']:.4f}; destroyed above {max_realism:.4f}; unguided Gram distance "
        f"{base_gram:.4f}",
        flush=True,
    )

    factors = [float(f) for f in args.factors.split(",")]
    for method_name in args.methods.split(","):
        default = METHODS[method_name]().scale
        rows, tiles = [], []
        for factor in factors:
            scale = default * factor
            start = time.perf_counter()
            grams, reals, images = [], [], []
            for name, style in styles.items():
                objective = style_objective(vgg, style, layers)
                method = make_method(method_name, scale=scale)
                sampler = GuidedSampler(
                    model.unet, model.scheduler("ddim"), objective, method, references={"style": style}
                )
                try:
                    out = sampler(seeds, args.steps, progress=False)
                except Exception as exc:  # a numerical failure is a destroyed sample
                    print(f"  {method_name} {scale:g}: {type(exc).__name__}: {exc}")
                    grams.append(torch.full((len(seeds),), math.inf))
                    reals.append(torch.full((len(seeds),), math.inf))
                    images.append(torch.zeros(len(seeds), 3, *model.sample_size))
                    continue
                grams.append(gram(out.images, name))
                reals.append(realism(out.images))
                images.append(out.images)
            row = {
                "scale": scale,
                "gram": torch.cat(grams).mean().item(),
                "realism": torch.cat(reals).mean().item(),
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            tiles.append(torch.cat(images))
            print(
                f"{method_name:13s} scale {scale:<10.4g} gram {row['gram']:.4f} realism {row['realism']:.4f} "
                f"({row['seconds']:.0f} s)",
                flush=True,
            )
        low = next((r["scale"] for r in rows if r["gram"] <= 0.9 * base_gram), None)
        high, best = None, math.inf
        for r in rows:
            best = min(best, r["gram"])
            if r["realism"] <= max_realism and r["gram"] < base_gram and r["gram"] <= 1.1 * best:
                high = r["scale"]
        results["methods"][method_name] = {"default": default, "rows": rows, "scale_range": [low, high]}
        print(f"{method_name}: scale_range {low} – {high}", flush=True)
        from torchvision.utils import make_grid

        grid = make_grid(torch.cat([all_unguided] + tiles), nrow=len(all_unguided), padding=2, pad_value=1.0)
        save_image(grid.unsqueeze(0), out_dir / f"{method_name}.png")
    results["unguided_gram"] = base_gram
    results["max_realism"] = max_realism
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("| method | default | scale range | Gram at low / high | realism at high |")
    print("|---|---|---|---|---|")
    for name, entry in results["methods"].items():
        rows = {r["scale"]: r for r in entry["rows"]}
        low, high = entry["scale_range"]
        if low is None or high is None:
            print(f"| {name} | {entry['default']:g} | none | – | – |")
            continue
        print(
            f"| {name} | {entry['default']:g} | {low:.3g}–{high:.3g} | {rows[low]['gram']:.3f} / "
            f"{rows[high]['gram']:.3f} | {rows[high]['realism']:.3f} |"
        )


if __name__ == "__main__":
    main()
