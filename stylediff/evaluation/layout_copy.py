"""``layout_copy``: how much of a reference image's spatial layout an output reproduces, in [0, 1].

A texture synthesiser that gives back its exemplar has failed, and the style distances reward it
(a copy has the exemplar's statistics exactly). This score detects that independently of VGG: it is the
largest normalised cross-correlation between the output and the reference over the placements an
optimiser can produce, on band-passed colour images.

Definition
    1. Both images go to the opponent colour space (luma, red–green, yellow–blue: the copies we saw
       reproduce the exemplar's colour blobs as much as its edges), the reference stretched to the
       output's shape, both on a grid of ``GRID`` px for the output's longest side.
    2. Each channel is band-passed: a Gaussian blur of σ = ``GRID``/64 minus one of σ = ``GRID``/8.
       The fine band (pixel noise, brush strokes: what a texture *should* share) and the coarse band
       (a global light-to-dark gradient, which an unrelated photo can share) are removed, leaving the
       layout: where the figures, the horizon, the big shapes are.
    3. The Pearson correlation of the three channels jointly is computed, by FFT, at every offset at
       which at least ``MIN_OVERLAP`` of the output overlaps the reference (shifts up to ~1/8 of a
       side), for the reference and for its horizontal mirror image.
    4. The score is the largest of these correlations, clipped at 0.

Calibration (``python bench/layout_copy_calibration.py``, nine images at 128 px: the three paintings
in data/styles and six scikit-image photos and textures): the reference itself and its mirror image
score 1.00, the reference rolled by 6–8 % (with wrap-around) ≥ 0.82, read at half the size ≥ 0.99; the
reference cut into 4×4 tiles and shuffled ≤ 0.25 (mean 0.13), each of the 72 ordered pairs of
unrelated images ≤ 0.21 (mean 0.11), uniform noise ≤ 0.10. ``COPY_THRESHOLD`` = 0.5 separates the
groups with margin on both sides: an output above it reproduces the exemplar's layout recognisably.
``tests/test_layout_copy.py`` checks the same cases on two images.

What it does not see: a copy of *part* of the exemplar at another scale (the reference is compared
at the output's framing only; searching every placement of a larger reference lifted unrelated pairs
to 0.5), and a copy rearranged in pieces (that is what a texture is allowed to do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.images import resize, scaled_shape

GRID = 128
"""Pixels on the output's longest side at which layouts are compared: enough for a figure and a horizon,
few enough that a 4-px jitter of the optimiser is a small shift."""
MIN_OVERLAP = 7 / 8
"""Smallest fraction of the output that must overlap the reference at an offset (a larger shift would
correlate a sliver, which is noisy)."""
COPY_THRESHOLD = 0.5
"""Above this an output reproduces its reference's layout (see the calibration in the module docstring)."""
BAND = (1 / 64, 1 / 8)
"""Band-pass Gaussian σs as fractions of ``GRID``: 2 px and 16 px on the 128-px grid."""

_OPPONENT = torch.tensor(
    [
        [0.299, 0.587, 0.114],  # luma
        [0.5, -0.5, 0.0],  # red – green
        [0.25, 0.25, -0.5],  # yellow – blue
    ]
)


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(image.device)
    c = image.shape[1]
    image = F.pad(image, (radius, radius, 0, 0), mode="replicate")
    image = F.conv2d(image, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    image = F.pad(image, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(image, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _layout(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(1, 3, H, W) RGB in [0, 1] → (3, h, w) band-passed opponent channels on ``shape``."""
    image = resize(image.float(), shape)
    image = torch.einsum("oc,nchw->nohw", _OPPONENT.to(image.device), image)
    return (_blur(image, GRID * BAND[0]) - _blur(image, GRID * BAND[1]))[0]


def _best_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest joint Pearson correlation of output ``a`` (C, h, w) with reference ``b`` (C, H, W), H ≥ h, W ≥ w.

    Over the offsets at which ≥ MIN_OVERLAP of ``a`` overlaps ``b``. With zero padding every sum the
    correlation needs over an overlap (Σa, Σa², Σb, Σb², Σab per channel and the overlap's size) is one
    cross-correlation of the images, their squares or their masks: six FFT products instead of a loop over
    offsets.
    """
    c, h, w = a.shape
    shape = (h + b.shape[1], w + b.shape[2])  # no wrap-around at any offset

    def spectrum(x):
        return torch.fft.rfft2(x, s=shape)

    def correlate(fx, fy):  # Σ_p x(p) y(p + d) at every offset d
        return torch.fft.irfft2(fx.conj() * fy, s=shape)

    fa, fb = spectrum(a), spectrum(b)
    mask_a, mask_b = spectrum(torch.ones_like(a[:1])), spectrum(torch.ones_like(b[:1]))
    n = correlate(mask_a, mask_b)[0]
    sum_a, sum_b = correlate(fa, mask_b), correlate(mask_a, fb)
    safe_n = n.clamp_min(1.0)
    covariance = (correlate(fa, fb) - sum_a * sum_b / safe_n).sum(0)
    var_a = (correlate(spectrum(a * a), mask_b) - sum_a**2 / safe_n).sum(0)
    var_b = (correlate(mask_a, spectrum(b * b)) - sum_b**2 / safe_n).sum(0)
    denominator = (var_a.clamp_min(0) * var_b.clamp_min(0)).sqrt()
    valid = (n >= MIN_OVERLAP * h * w - 0.5) & (denominator > 1e-12)
    r = covariance / denominator.clamp_min(1e-12)
    return r[valid].max().item() if valid.any() else 0.0


def layout_copy(output: torch.Tensor, reference: torch.Tensor) -> float:
    """How much of ``reference``'s layout ``output`` reproduces, in [0, 1].

    See the module docstring for the definition and its calibration.

    Args:
        output: ``(1, 3, H, W)`` in ``[0, 1]``.
        reference: ``(1, 3, H', W')`` in ``[0, 1]`` (stretched to the output's shape).

    Returns:
        1 for the reference itself, near 0 for a texture that shares only its statistics.
    """
    shape = scaled_shape(output.shape[-2:], GRID, minimum=8)
    a = _layout(output, shape)
    b = _layout(reference, shape)
    return min(1.0, max(0.0, _best_correlation(a, b), _best_correlation(a, b.flip(-1))))
