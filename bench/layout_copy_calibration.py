"""Calibrate ``layout_copy`` on the cases that would fool it: copies (the reference shifted, mirrored,
resized) must score high; unrelated images, the reference cut into tiles and shuffled, and noise low.

    python bench/layout_copy_calibration.py            # prints one line per group: min / mean / max

Images: the three paintings in data/styles and six scikit-image images (photos and textures), all at
128 px on the longest side; unrelated = every ordered pair of different images.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image  # noqa: E402
from stylediff.evaluation.layout_copy import COPY_THRESHOLD, layout_copy  # noqa: E402
from stylediff.workflow.image_specs import materialise  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "brick", "gravel")


def tile_shuffle(image: torch.Tensor, tiles: int = 4, seed: int = 0) -> torch.Tensor:
    """The image cut into tiles × tiles pieces, put back in a random order: its statistics, not its layout."""
    h, w = image.shape[-2] // tiles, image.shape[-1] // tiles
    pieces = [image[..., i * h : (i + 1) * h, j * w : (j + 1) * w] for i in range(tiles) for j in range(tiles)]
    order = torch.randperm(len(pieces), generator=torch.Generator().manual_seed(seed))
    rows = [torch.cat([pieces[order[i * tiles + j]] for j in range(tiles)], -1) for i in range(tiles)]
    return torch.cat(rows, -2)


def main() -> None:
    torch.set_num_threads(1)
    images = {p.stem: load_image(p, 128) for p in sorted((ROOT / "data" / "styles").glob("*.jpg"))}
    paintings = list(images)
    with tempfile.TemporaryDirectory() as tmp:
        for name in PHOTOS:
            images[name] = load_image(materialise(f"skimage:{name}", Path(tmp) / f"{name}.png"), 128)
    groups = {
        "itself": [layout_copy(images[n], images[n]) for n in images],
        "shifted 6-8 %": [layout_copy(torch.roll(images[n], (6, 8), (-2, -1)), images[n]) for n in images],
        "mirrored": [layout_copy(images[n].flip(-1), images[n]) for n in images],
        "read at half size": [
            layout_copy(load_image(ROOT / "data" / "styles" / f"{n}.jpg", 64), images[n]) for n in paintings
        ],
        "4x4 tiles shuffled": [layout_copy(tile_shuffle(images[n], 4, s), images[n]) for n in images for s in (0, 1)],
        "unrelated pairs": [layout_copy(images[a], images[b]) for a, b in itertools.permutations(images, 2)],
        "uniform noise": [
            layout_copy(torch.rand(images[n].shape, generator=torch.Generator().manual_seed(0)), images[n])
            for n in images
        ],
    }
    print(f"layout_copy calibration (copy threshold {COPY_THRESHOLD}); {len(images)} images at 128 px")
    print("| case | n | min | mean | max |\n|---|---|---|---|---|")
    for name, values in groups.items():
        print(f"| {name} | {len(values)} | {min(values):.3f} | {sum(values) / len(values):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
