"""Calibrate the held-out style metrics: what does each one score for images whose relation to the style
is known?

    python bench/heldout_calibration.py                      # data/styles, halves of 192-px paintings
    python bench/heldout_calibration.py --size 128 --steps 200 --json results/heldout_calibration.json

Each painting of ``--styles`` is read with its longest side 2 × ``--size`` and cut in two halves across
that side (each ``--size`` px along it, the painting's other side across); the first half is the style image. Against it are scored: itself, its horizontal mirror, the other
half of the same painting, the first halves of the other paintings, two unrelated photos (skimage's
astronaut and coffee, longest side ``--size``), uniform noise of the style's shape, and two textures made
from the style by the project's texture code (:func:`stylediff.nst.optimize.synthesize_texture`, VGG-19
relu1_1…relu5_1, the style read at twice the texture's size as ``stylediff texture`` does, L-BFGS
``--steps``, seed 0), one with the ``gram`` loss and one with ``mean_std``.

Metrics: every held-out metric whose weights are present (:mod:`stylediff.evaluation.heldout`; the others are named
as skipped), plus two VGG-19 columns for comparison: the same bounded Gram distance on VGG-19
relu1_1…relu5_1 (the network the textures were optimised on) and the tables' ``gram_dist_mean``
(‖G(x) − G(s)‖/‖G(s)‖). Prints a markdown table (mean over the styles, and the range) and writes the
per-style numbers as JSON.
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

from stylediff.core.images import load_image, resize, save_image, scaled_shape  # noqa: E402
from stylediff.evaluation.heldout import HeldOut, HeldOutMetric, distance, features_of  # noqa: E402
from stylediff.evaluation.scorer import gram_distances  # noqa: E402
from stylediff.networks.vgg19 import STYLE_LAYERS_GATYS, load_vgg19  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, synthesize_texture  # noqa: E402

VGG19_BOUNDED = HeldOutMetric("vgg19_gram", "vgg19", "gram", "Gram distance, VGG-19 (optimised)")
ROWS = (
    "self",
    "mirror",
    "same painting, other half",
    "other paintings",
    "photo: astronaut",
    "photo: coffee",
    "uniform noise",
    "texture (gram loss)",
    "texture (mean_std loss)",
)


def halves(path: Path, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = load_image(path, 2 * side)
    h, w = image.shape[-2:]
    if w >= h:
        return image[..., :, : w // 2], image[..., :, w // 2 : 2 * (w // 2)]
    return image[..., : h // 2, :], image[..., h // 2 : 2 * (h // 2), :]


def photo(name: str, side: int) -> torch.Tensor:
    """skimage's ``data.<name>()`` photo as RGB [0, 1], longest side ``side``."""
    from skimage import data

    image = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).unsqueeze(0).float() / 255
    return resize(image, scaled_shape(tuple(image.shape[-2:]), side)).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", default=str(ROOT / "data" / "styles"), help="folder of paintings")
    parser.add_argument("--size", type=int, default=96, help="half the painting's longest side (the cut side)")
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS steps of each texture")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the per-style numbers here")
    parser.add_argument("--images", default=None, help="folder to write the textures to (to look at)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    paintings = sorted(Path(args.styles).glob("*.jpg"))
    if len(paintings) < 2:
        raise SystemExit(f"{args.styles} needs at least two paintings (*.jpg)")
    held = HeldOut("auto")
    metrics = [VGG19_BOUNDED, *held.metrics]
    vgg = load_vgg19()
    layers = list(STYLE_LAYERS_GATYS)
    networks = {m.column: vgg if m.network == "vgg19" else held.network(m.network) for m in metrics}
    photos = {"photo: astronaut": photo("astronaut", args.size), "photo: coffee": photo("coffee", args.size)}
    cut = {path.stem: halves(path, args.size) for path in paintings}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for path in paintings:
        style, other_half = cut[path.stem]
        generator = torch.Generator().manual_seed(0)
        candidates: dict[str, list[torch.Tensor]] = {
            "self": [style],
            "mirror": [style.flip(-1)],
            "same painting, other half": [other_half],
            "other paintings": [cut[other.stem][0] for other in paintings if other != path],
            **{name: [image] for name, image in photos.items()},
            "uniform noise": [torch.rand(style.shape, generator=generator)],
        }
        shape = (style.shape[-2] // 2, style.shape[-1] // 2)  # the style read at twice the texture's size
        for loss in ("gram", "mean_std"):
            config = OptimizeConfig(steps=args.steps, optimizer="lbfgs", seed=0, init="mean", progress=False)
            texture = synthesize_texture(vgg, style, layers, loss, shape, config).image
            candidates[f"texture ({loss} loss)"] = [texture]
            if args.images:
                save_image(texture, Path(args.images) / f"{path.stem}_{loss}.png")
        results[path.stem] = {}
        with torch.no_grad():
            style_features = {
                column: features_of(net, style, list(net.style_layers)) for column, net in networks.items()
            }
            style_vgg = vgg(style, layers)
            for row, images in candidates.items():
                values: dict[str, list[float]] = {}
                for image in images:
                    for m in metrics:
                        values.setdefault(m.column, []).append(
                            distance(m, networks[m.column], image, style_features[m.column]).item()
                        )
                    values.setdefault("gram_dist_mean", []).append(
                        gram_distances(vgg(image, layers), style_vgg, layers)["gram_dist_mean"]
                    )
                results[path.stem][row] = {column: sum(v) / len(v) for column, v in values.items()}
    columns = [m.column for m in metrics] + ["gram_dist_mean"]
    print(
        f"styles: {', '.join(results)}; halves of {2 * args.size}-px paintings; textures "
        f"{args.steps} L-BFGS steps; mean over styles [min–max]"
    )
    if held.skipped:
        print("not measured (weights absent): " + ", ".join(held.skipped))
    print("| compared with the style | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in ROWS:
        cells = []
        for column in columns:
            values = [results[style][row][column] for style in results]
            cells.append(f"{sum(values) / len(values):.3f} [{min(values):.2f}–{max(values):.2f}]")
        print(f"| {row} | " + " | ".join(cells) + " |")
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "skipped": held.skipped, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
