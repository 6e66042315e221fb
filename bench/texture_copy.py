"""Does texture synthesis give back its exemplar? ``layout_copy`` and the Gram distance per loss, size and
setting: the style read at the output's size (the old default), at 1.5× and 2× it (the new default is
2×, ``stylediff texture --style-size``), a square output of the same area, a noise initialisation.

    python bench/texture_copy.py                                   # 64 and 128 px, two paintings
    python bench/texture_copy.py --sizes 64 --settings read1x,read2x --styles starry_night

relu1_1…relu5_1, L-BFGS, ``--steps`` (150) steps, seed 0. Gram distance = mean over relu1_1…relu5_1 of
‖G(x) − G(s)‖/‖G(s)‖ against the style *as the run read it* (what it was asked to match) and against
the style at the output's size; layout_copy against the style at the output's size (see
stylediff/evaluation/layout_copy.py; above 0.5 is a copy). Writes each texture as a PNG to ``--out`` to look at.
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
from stylediff.evaluation.layout_copy import COPY_THRESHOLD, layout_copy  # noqa: E402
from stylediff.evaluation.scorer import gram_distances  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import STYLE_LOSSES  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, synthesize_texture  # noqa: E402

SETTINGS = {  # name: (style read factor, square output, init)
    "read1x": (1.0, False, "mean"),
    "read1.5x": (1.5, False, "mean"),
    "read2x": (2.0, False, "mean"),
    "square": (1.0, True, "mean"),
    "noise_init": (1.0, False, "noise"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--settings", default="read1x,read2x")
    parser.add_argument("--styles", default="starry_night,the_scream")
    parser.add_argument("--losses", default=",".join(STYLE_LOSSES))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "texture_copy"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vgg = load_vgg19()
    layers = list(STYLE_LAYERS_GATYS)
    rows = []
    for size in map(int, args.sizes.split(",")):
        for style_name in args.styles.split(","):
            path = ROOT / "data" / "styles" / f"{style_name}.jpg"
            at_output = load_image(path, size)
            at_output_features = vgg(at_output, layers)
            for setting in args.settings.split(","):
                factor, square, init = SETTINGS[setting]
                style = load_image(path, round(factor * size))
                style_features = vgg(style, layers)
                shape = tuple(at_output.shape[-2:])
                if square:
                    side = round((shape[0] * shape[1]) ** 0.5)
                    shape = (side, side)
                for loss in args.losses.split(","):
                    start = time.perf_counter()
                    result = synthesize_texture(
                        vgg, style, layers, loss, shape, OptimizeConfig(steps=args.steps, init=init, progress=False)
                    )
                    features = vgg(result.image, layers)
                    row = {
                        "size": size,
                        "style": style_name,
                        "setting": setting,
                        "loss": loss,
                        "layout_copy": layout_copy(result.image, at_output),
                        "gram_to_read": gram_distances(features, style_features, layers)["gram_dist_mean"],
                        "gram_to_output_size": gram_distances(features, at_output_features, layers)["gram_dist_mean"],
                        "seconds": time.perf_counter() - start,
                    }
                    rows.append(row)
                    save_image(result.image, out / f"{style_name}_{size}_{setting}_{loss}.png")
                    print(json.dumps(row), flush=True)
    (out / "texture_copy.json").write_text(json.dumps(rows, indent=2))
    print(
        f"\n| size | setting | loss | layout_copy (per style) | copies (> {COPY_THRESHOLD}) | Gram distance to the "
        "style as read | to the style at the output's size |\n|---|---|---|---|---|---|---|"
    )
    keys = dict.fromkeys((r["size"], r["setting"], r["loss"]) for r in rows)
    for size, setting, loss in keys:
        part = [r for r in rows if (r["size"], r["setting"], r["loss"]) == (size, setting, loss)]
        copies = sum(r["layout_copy"] > COPY_THRESHOLD for r in part)
        mean = lambda key: sum(r[key] for r in part) / len(part)  # noqa: E731
        scores = " / ".join(f"{r['layout_copy']:.2f}" for r in part)
        print(
            f"| {size} | {setting} | {loss} | {scores} | "
            f"{copies} of {len(part)} | {mean('gram_to_read'):.3f} | {mean('gram_to_output_size'):.3f} |"
        )


if __name__ == "__main__":
    main()
