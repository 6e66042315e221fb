"""An exactness check for guidance rules: a diffusion model whose data, denoiser and guided target are closed-form.

Data x0 ~ N(m, s²I) in a small pixel space. With x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, the marginal is
N(√ᾱ_t·m, v_t·I) with v_t = ᾱ_t·s² + 1 − ᾱ_t, and the optimal ε-prediction is
E[ε | x_t] = √(1 − ᾱ_t)·(x_t − √ᾱ_t·m)/v_t. :class:`GaussianDenoiser` is that predictor in the shape
of a diffusers ``UNet2DModel`` (``config.sample_size``, ``in_channels``, ``forward(x, t).sample``), so
the sampler and every guidance method run on it unchanged.

Guided by the quadratic loss L(x) = ½‖x − c‖² (on model-space images) with weight λ, the exact target
p(x)·exp(−λ·L(x)) is Gaussian: precision 1/s² + λ, mean (m/s² + λ·c)/(1/s² + λ). Sampling a few
hundred images with a method and comparing their mean and variance with these tells how biased the
rule is; :func:`tilted_moments` gives the exact numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn


class GaussianDenoiser(nn.Module):
    """The exact ε-predictor of N(mean, std²·I) data for a scheduler's ``alphas_cumprod``.

    Args:
        alphas_cumprod: the scheduler's ᾱ for every training timestep.
        mean: the data's mean m.
        std: the data's standard deviation s.
        sample_size: the side of its square images.
        channels: their channels.
    """

    def __init__(
        self, alphas_cumprod: torch.Tensor, mean: float = 0.0, std: float = 0.2, sample_size: int = 4, channels: int = 3
    ):
        super().__init__()
        self.register_buffer("alphas_cumprod", torch.as_tensor(alphas_cumprod, dtype=torch.float64).clone())
        self.mean, self.std = float(mean), float(std)
        self.config = SimpleNamespace(sample_size=sample_size, in_channels=channels, out_channels=channels)
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a device and dtype

    @property
    def device(self) -> torch.device:
        """Where it runs (as a UNet's ``device``)."""
        return self.anchor.device

    @property
    def dtype(self) -> torch.dtype:
        """Its dtype (as a UNet's ``dtype``)."""
        return self.anchor.dtype

    def forward(self, sample: torch.Tensor, timestep) -> SimpleNamespace:
        """E[ε | x_t] = √(1 − ᾱ_t)·(x_t − √ᾱ_t·m)/v_t, as a UNet's output.

        Args:
            sample: x_t.
            timestep: t.

        Returns:
            An object whose ``sample`` is the prediction.
        """
        ab = self.alphas_cumprod[int(timestep)].to(sample.dtype)
        variance = ab * self.std**2 + 1 - ab
        eps = (1 - ab).sqrt() * (sample - ab.sqrt() * self.mean) / variance
        return SimpleNamespace(sample=eps + 0 * self.anchor)


@dataclass(frozen=True)
class QuadraticLoss:
    """L(x) = ½‖x − c‖² per image, x in model space, times ``weight``.

    As a sampler objective it reads [0, 1] images (the sampler's mapping x ↦ (x + 1)/2 is undone, so the
    loss is the model-space one).

    Args:
        target: c.
        weight: λ.
    """

    target: float
    weight: float = 1.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The loss per image.

        Args:
            images: ``(N, C, H, W)`` in [0, 1].

        Returns:
            ``(N,)``.
        """
        x = images * 2 - 1
        return 0.5 * self.weight * (x - self.target).pow(2).flatten(1).sum(1)


def tilted_moments(mean: float, std: float, target: float, weight: float) -> tuple[float, float]:
    """Mean and standard deviation of N(mean, std²)·exp(−weight·½(x − target)²), per pixel.

    Args:
        mean: the data's mean.
        std: the data's standard deviation.
        target: the loss's c.
        weight: the loss's λ.

    Returns:
        ``(mean, std)`` of the tilted Gaussian.
    """
    precision = 1 / std**2 + weight
    return (mean / std**2 + weight * target) / precision, precision**-0.5
