"""Image specs used by the workflow's config: a file path, or ``skimage:NAME``.

``skimage:NAME`` is an image bundled with scikit-image (no download, so a fresh clone runs offline).

``python -m stylediff.workflow.image_specs SPEC OUT.png`` writes the image a spec names as a PNG (atomically);
the workflow calls it once per ``skimage:`` image. This module imports neither torch nor
torchvision, so it starts in about a second.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..core.errors import ConfigError, ImageError
from ..core.io import atomic_path

SKIMAGE_PREFIX = "skimage:"
SKIMAGE_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "camera",
    "cat",
    "hubble_deep_field",
    "retina",
    "text",
)
"""RGB or grey images that scikit-image bundles (``skimage.data.NAME()`` needs no network)."""


def image_slug(spec: str) -> str:
    """Readable run-id part for an image spec: ``skimage:brick`` -> ``brick``, ``data/a b.jpg`` -> ``a_b``.

    Args:
        spec: a file path or ``skimage:NAME``.

    Returns:
        Letters, digits, ``_`` and ``-`` only (``image`` when nothing is left).
    """
    name = spec[len(SKIMAGE_PREFIX) :] if spec.startswith(SKIMAGE_PREFIX) else Path(spec).stem
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "image"


def is_skimage(spec: str) -> bool:
    """Whether ``spec`` names a scikit-image image (``skimage:NAME``).

    Args:
        spec: an image spec.

    Returns:
        True for the ``skimage:`` prefix.
    """
    return spec.startswith(SKIMAGE_PREFIX)


def check_spec(spec: str, base: str | os.PathLike = ".") -> None:
    """Check that ``spec`` names a bundled image or an existing file.

    Args:
        spec: an image spec.
        base: the folder relative paths are read from.

    Raises:
        ConfigError: an unknown ``skimage:`` name (the message lists the valid ones).
        ImageError: no such file.
    """
    if is_skimage(spec):
        name = spec[len(SKIMAGE_PREFIX) :]
        if name not in SKIMAGE_IMAGES:
            raise ConfigError(
                f"unknown scikit-image image {spec!r}; valid: {', '.join(SKIMAGE_PREFIX + n for n in SKIMAGE_IMAGES)}"
            )
        return
    path = Path(base) / spec
    if not path.is_file():
        raise ImageError(f"image not found: {spec} (relative to {Path(base).resolve()})")


def resolve_image(spec: str, folder: str | os.PathLike = "results/images") -> str:
    """Path of the image a spec names.

    Args:
        spec: an image spec.
        folder: where the workflow's ``image`` rule writes ``skimage:`` images.

    Returns:
        The file itself, or ``FOLDER/NAME.png`` for ``skimage:NAME`` (written by :func:`materialise`, i.e.
        by the workflow's ``image`` rule).
    """
    if is_skimage(spec):
        return str(Path(folder) / f"{image_slug(spec)}.png")
    return spec


def materialise(spec: str, out: str | os.PathLike) -> Path:
    """Write the scikit-image image ``spec`` names to ``out`` as an RGB PNG, atomically.

    Args:
        spec: ``skimage:NAME``.
        out: the PNG to write.

    Returns:
        ``out`` as a Path.

    Raises:
        ConfigError: not a ``skimage:`` spec, or an unknown name.
    """
    check_spec(spec)
    if not is_skimage(spec):
        raise ConfigError(f"only skimage: specs need materialising, got {spec!r}")
    import numpy as np
    import skimage.data
    from PIL import Image

    array = np.asarray(getattr(skimage.data, spec[len(SKIMAGE_PREFIX) :])())
    if array.dtype != np.uint8:  # e.g. float or 16-bit: scale to 8 bits
        top = float(array.max()) or 1.0
        array = np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    image = Image.fromarray(array).convert("RGB")
    out = Path(out)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m stylediff.workflow.image_specs SPEC OUT.png``: write one ``skimage:`` image.

    Args:
        argv: the two arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 after a one-line error.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m stylediff.workflow.image_specs skimage:NAME OUT.png", file=sys.stderr)
        return 2
    try:
        materialise(argv[0], argv[1])
    except (ConfigError, ImageError) as exc:
        print(f"stylediff datasets: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
