"""Texture settings side by side: the Gram distance they reach, the held-out texture metrics and ``layout_copy``.

For each style, seed and step count, a Gram texture at relu1_1…relu5_1 (coarse to fine, the style read
at 2× the output's size, as ``stylediff texture`` does) under each setting; prints the CPU seconds of
the optimisation (one thread), the Gram distance to the style as read (VGG-19, mean over
relu1_1…relu5_1, on the 8-bit image), the held-out Gram distances (VGG-16 and AlexNet, networks the
texture was not optimised with: :mod:`stylediff.evaluation.heldout`) and ``layout_copy`` against the
style at the output's size (above 0.5 a copy), then the means per setting and step count. Writes the
textures to ``--out`` to look at.

    TORCH_HOME=… python bench/texture_defaults.py [--size 128] [--steps 6,13,50] [--seeds 0,1]
        [--styles starry_night,the_scream,shipwreck] [--settings before,after] [--table bench/measured/….md]

Settings: ``before`` = the texture defaults until December 2026 (``--init mean``, torch's first L-BFGS
step); ``after`` = ``--init spectrum --first-step 0.02``; ``spectrum`` and ``first_step`` = each change
alone.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image, save_image, scaled_shape  # noqa: E402
from stylediff.evaluation.heldout import HELDOUT, HeldOut  # noqa: E402
from stylediff.evaluation.layout_copy import layout_copy  # noqa: E402
from stylediff.evaluation.scorer import gram_distances  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, coarse_to_fine, synthesize_texture  # noqa: E402

SETTINGS = {
    "before": {"init": "mean", "first_step": None},
    "after": {"init": "spectrum", "first_step": 0.02},
    "spectrum": {"init": "spectrum", "first_step": None},
    "first_step": {"init": "mean", "first_step": 0.02},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", default="6,13,50", help="steps per scale")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--styles", default="starry_night,the_scream,shipwreck")
    parser.add_argument("--settings", default="before,after")
    parser.add_argument("--out", default=str(ROOT / "results" / "texture_defaults"), help="folder for the textures")
    parser.add_argument("--table", default=None, help="also write the summary table to this Markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vgg = load_vgg19()
    heldout = HeldOut("true", metrics=[m for m in HELDOUT if not m.optional])  # VGG-16, AlexNet
    layers = list(STYLE_LAYERS_GATYS)
    columns = [m.column for m in heldout.metrics]
    print(
        "| style | seed | steps per scale | setting | CPU s | Gram distance | "
        + " | ".join(columns)
        + " | layout_copy |\n|---|---|---|---|---|---|"
        + "---|" * len(columns)
        + "---|",
        flush=True,
    )
    rows = []
    for name in args.styles.split(","):
        path = ROOT / "data" / "styles" / f"{name}.jpg"
        style = load_image(path, 2 * args.size)
        shape = scaled_shape(style.shape[-2:], args.size)
        at_output = load_image(path, args.size)
        with torch.no_grad():
            style_features = vgg(style, layers)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for steps in [int(s) for s in args.steps.split(",")]:
                for setting in args.settings.split(","):
                    config = OptimizeConfig(
                        steps=steps, seed=seed, scales=coarse_to_fine(args.size), progress=False, **SETTINGS[setting]
                    )
                    start = time.process_time()
                    result = synthesize_texture(vgg, style, layers, "gram", shape, config)
                    seconds = time.process_time() - start
                    image = (result.image * 255).round() / 255
                    save_image(image, out / f"{name}_seed{seed}_{steps}_{setting}.png")
                    with torch.no_grad():
                        gram = gram_distances(vgg(image, layers), style_features, layers)["gram_dist_mean"]
                    held = heldout.distances(image, style, optimised=None)
                    copy = layout_copy(image, at_output)
                    rows.append((setting, steps, seconds, gram, [held[c] for c in columns], copy))
                    print(
                        f"| {name} | {seed} | {steps} | {setting} | {seconds:.1f} | {gram:.3f} | "
                        + " | ".join(f"{held[c]:.3f}" for c in columns)
                        + f" | {copy:.2f} |",
                        flush=True,
                    )
    summary = [
        "| steps per scale | setting | mean CPU s | mean Gram distance | "
        + " | ".join(f"mean {c}" for c in columns)
        + " | mean layout_copy | max layout_copy |",
        "|---|---|---|---|" + "---|" * len(columns) + "---|---|",
    ]
    for steps in [int(s) for s in args.steps.split(",")]:
        for setting in args.settings.split(","):
            sub = [r for r in rows if r[0] == setting and r[1] == steps]
            m = statistics.mean
            summary.append(
                f"| {steps} | {setting} | {m(r[2] for r in sub):.1f} | {m(r[3] for r in sub):.3f} | "
                + " | ".join(f"{m(r[4][i] for r in sub):.3f}" for i in range(len(columns)))
                + f" | {m(r[5] for r in sub):.2f} | {max(r[5] for r in sub):.2f} |"
            )
    summary.append(
        f"({args.size} px, style read at {2 * args.size} px, gram at relu1_1…relu5_1, coarse to fine "
        f"{list(coarse_to_fine(args.size))} + {args.size}; styles {args.styles}, seeds {args.seeds}; 1 thread, "
        f"torch {torch.__version__}; {datetime.date.today().isoformat()})"
    )
    print("\n" + "\n".join(summary))
    if args.table:
        Path(args.table).write_text("\n".join(summary) + "\n")


if __name__ == "__main__":
    main()
