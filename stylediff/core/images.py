"""Reading images into RGB ``[0, 1]`` tensors and writing PNGs atomically.

Any image Pillow opens is accepted: grey, palette, RGBA/LA (composited onto white),
CMYK and 16-bit inputs are converted to 8-bit-equivalent RGB. Huge images are reduced
while decoding (JPEG draft mode, then ``reduce``) so they are never held at full size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import ImageError, NumericalError
from .io import atomic_path

ImageFile.LOAD_TRUNCATED_IMAGES = False


def resize(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) to ``shape`` (bilinear, antialiased when shrinking); unchanged when already that shape.

    Args:
        image: ``(N, C, H, W)``.
        shape: ``(H', W')``.

    Returns:
        ``(N, C, H', W')``.
    """
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return torch.nn.functional.interpolate(
        image, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True
    )


def scaled_shape(shape: tuple[int, int], longest: int, minimum: int = 1) -> tuple[int, int]:
    """``shape`` scaled to ``longest`` pixels on its longest side, each side at least ``minimum``.

    Args:
        shape: two sides, in either order (the result keeps it).
        longest: the longest side wanted.
        minimum: the smallest side allowed.

    Returns:
        The two scaled sides, rounded.
    """
    ratio = longest / max(shape)
    return max(minimum, round(shape[0] * ratio)), max(minimum, round(shape[1] * ratio))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float grey: scale by the type's range (65535; 1 for float), not clip at 255 as PIL's
        # convert would, and never by the content: a dark 16-bit image stays dark. "I" (32-bit) is the
        # mode Pillow widens 16-bit data to; values above 65535 saturate.
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" else 65535.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


MIN_SOURCE_SIDE = 2
"""A file with a side below this holds no image (a 1x1 'image' is one colour)."""


def load_image(path: str | os.PathLike, size: int | None = None, min_side: int = 1) -> torch.Tensor:
    """Read ``path`` as a ``(1, 3, H, W)`` float32 RGB tensor in ``[0, 1]``.

    Args:
        path: any image file Pillow opens.
        size: the longest side in pixels (``None`` keeps the file's size).
        min_side: the smallest side the caller can use (e.g. the deepest VGG layer's minimum).

    Returns:
        ``(1, 3, H, W)`` float32 in ``[0, 1]``.

    Raises:
        ImageError: (one line) the file is missing, a folder, not an image, corrupt or too large to
            open safely, or the file or the resized image has a side below ``min_side`` (the message
            names the minimum).
    """
    path = Path(path)
    if size is not None and size <= 0:
        raise ImageError(f"size must be a positive number of pixels, got {size}")
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file, got a folder: {path}")
    try:
        with Image.open(path) as img:
            if min(img.size) < max(min_side, MIN_SOURCE_SIDE):
                raise ImageError(
                    f"image {path} is {img.size[0]}x{img.size[1]} px; the requested layers need at least "
                    f"{max(min_side, MIN_SOURCE_SIDE)} px on the shorter side of the file itself (upsampling "
                    "adds no detail): use a larger image or shallower layers"
                )
            width, height = img.size if size is None else scaled_shape(img.size, size)
            if img.format == "JPEG":
                img.draft("RGB", (width, height))  # decode at a reduced scale when possible
            factor = min(img.size[0] // max(width, 1), img.size[1] // max(height, 1))
            img.load()
            img = _to_rgb(img)
            if factor >= 2:
                img = img.reduce(factor)
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.LANCZOS)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ImageError(f"not an image Pillow can read: {path}") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large to open safely: {path} ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image: {path} ({exc})") from None
    if min(arr.shape[:2]) < min_side:
        raise ImageError(
            f"image {path} is {arr.shape[1]}x{arr.shape[0]} px after resizing; the requested layers need "
            f"at least {min_side} px on the shorter side: use a larger --size or shallower layers"
        )
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` or ``(3, H, W)`` tensor in ``[0, 1]`` to an ``(H, W, 3)`` uint8 array.

    Args:
        image: one image; values outside ``[0, 1]`` are clipped.

    Returns:
        The rounded 8-bit pixels.

    Raises:
        ValueError: a batch of more than one image.
        NumericalError: NaN or infinite pixels.
    """
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    image = image.detach().float().cpu()
    if not torch.isfinite(image).all():
        raise NumericalError("refusing to write an image with NaN or infinite pixels")
    return (image.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write one image tensor as a PNG at ``path``, atomically (temporary file, then rename).

    Args:
        image: ``(1, 3, H, W)`` or ``(3, H, W)`` in ``[0, 1]``.
        path: the PNG to write (its folder is created).

    Returns:
        ``path`` as a Path.

    Raises:
        NumericalError: NaN or infinite pixels (nothing is written).
        OutputError: the folder cannot be created or written.
    """
    pixels = Image.fromarray(to_uint8(image), mode="RGB")
    path = Path(path)
    with atomic_path(path) as tmp:
        pixels.save(tmp, format="PNG")
    return path
