"""Texture quality at (about) equal wall time: one scale against coarse to fine.

Gram texture at relu1_1…relu5_1, style read at 2× the output's size, seed 0, for each style: one
scale with ``--one-scale-steps`` steps against the default coarse-to-fine ladder (the halvings of the
size down to 64 px) with ``--steps`` steps per scale. Prints the optimisation seconds, the Gram
distance to the style as read (mean over relu1_1…relu5_1) and ``layout_copy`` against the style at
the output's size (above 0.5 a copy), and writes the textures to ``--out`` to look at.

    python bench/equal_time.py                    # 128 px, 100 steps vs 80 per scale, two paintings
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image, save_image  # noqa: E402
from stylediff.evaluation.layout_copy import layout_copy  # noqa: E402
from stylediff.evaluation.scorer import gram_distances  # noqa: E402
from stylediff.networks.vgg19 import STYLE_LAYERS_GATYS, load_vgg19  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, coarse_to_fine, synthesize_texture  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--styles", default="starry_night,the_scream")
    parser.add_argument("--one-scale-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=80, help="steps per scale, coarse to fine")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "results" / "equal_time"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vgg = load_vgg19()
    layers = list(STYLE_LAYERS_GATYS)
    settings = {
        "one scale": OptimizeConfig(steps=args.one_scale_steps, init="mean", progress=False),
        "coarse to fine": OptimizeConfig(
            steps=args.steps, init="mean", progress=False, scales=coarse_to_fine(args.size)
        ),
    }
    print(
        "| style | setting | optimisation s | Gram distance to the style as read | layout_copy |\n|---|---|---|---|---|"
    )
    for name in args.styles.split(","):
        path = ROOT / "data" / "styles" / f"{name}.jpg"
        at_output = load_image(path, args.size)
        style = load_image(path, 2 * args.size)
        style_features = vgg(style, layers)
        for setting, config in settings.items():
            start = time.perf_counter()
            result = synthesize_texture(vgg, style, layers, "gram", tuple(at_output.shape[-2:]), config)
            seconds = time.perf_counter() - start
            gram = gram_distances(vgg(result.image, layers), style_features, layers)["gram_dist_mean"]
            copy = layout_copy(result.image, at_output)
            save_image(result.image, out / f"{name}_{setting.replace(' ', '_')}.png")
            print(
                f"| {name} | {setting} ({json.dumps(list(config.scales) + [args.size])} px) | {seconds:.1f} | "
                f"{gram:.3f} | {copy:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
