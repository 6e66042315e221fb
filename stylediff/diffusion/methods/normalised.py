"""The gradient rescaling the project's own rules (``x0``, ``through_unet``) share.

``per_step`` (default): ĝ = g·‖ε̂‖/‖g‖ at every step, norms over each image's pixels, the ratio-of-
norms rescaling of FreeDoM/MPGD's code, so the correction s·σ_t·ĝ is s·σ_t times a vector as long
as the noise prediction (‖ε̂‖ ≈ √(3HW)) whatever the loss, layer set, style image or image size.
``first_step``: the ratio ‖ε̂‖/‖g‖ of the first guided step, kept for the trajectory: the same size
at the start, then the raw gradient's own rise and fall. ``none``: ĝ = g (useful scales then depend
on the loss's magnitude, ~1000x larger than normalised ones for the Gram loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import GuidanceMethod, StepContext, knob, per_image_norm

NORMALIZATIONS = ("per_step", "first_step", "none")


@dataclass
class NormalisedGradient(GuidanceMethod):
    """A rule whose step is s·σ_t·ĝ, ĝ the (rescaled) gradient, optionally capped at ±clip_grad.

    The base of ``x0`` and ``through_unet``; its knobs ``normalize`` and ``clip_grad``.
    """

    normalize: str = knob(
        "per_step",
        "gradient rescaling to the noise prediction's norm at every step (per_step), "
        "by the first guided step's ratio (first_step), or none",
        choices=NORMALIZATIONS,
    )
    clip_grad: float | None = knob(None, "zero non-finite gradients and cap each step entry at +-C instead of stopping")

    def __post_init__(self):
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown gradient normalisation {self.normalize!r}; choose one of {', '.join(NORMALIZATIONS)}"
            )
        if self.clip_grad is not None and not (self.clip_grad == self.clip_grad and 0 < self.clip_grad < float("inf")):
            raise ConfigError(f"clip_grad must be a finite number > 0, got {self.clip_grad}")

    def begin(self) -> None:
        """Forget the first step's ratio (``first_step``) at the start of a sampling call."""
        self._first_ratio: torch.Tensor | None = None

    def correction(self, ctx: StepContext, grad: torch.Tensor, loss: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """δ = s·σ_t·ĝ, ĝ the gradient rescaled by ``normalize``.

        Args:
            ctx: the step.
            grad: the gradient of the loss.
            loss: the loss per image (checked, recorded).
            eps: ε̂, whose per-image norm ĝ is scaled to.

        Returns:
            δ (:meth:`capped` caps it at ±clip_grad when set).
        """
        grad = ctx.check_finite(loss, grad, self.scale, self.clip_grad)
        if self.normalize == "per_step":
            grad = grad * per_image_norm(eps.float()) / per_image_norm(grad).clamp_min(1e-12)
        elif self.normalize == "first_step":
            if getattr(self, "_first_ratio", None) is None:
                self._first_ratio = per_image_norm(eps.float()) / per_image_norm(grad).clamp_min(1e-12)
            grad = grad * self._first_ratio
        return self.scale * ctx.schedule.sigma(ctx.t) * grad

    def capped(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` capped at ±clip_grad when it is set."""
        return delta if self.clip_grad is None else delta.clamp(-self.clip_grad, self.clip_grad)
