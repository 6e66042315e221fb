"""``through_unet``: the project's own classifier-guidance rule with ratio-of-norms normalisation.

g = ∇_{x_t} L(x̂0(x_t)) back through the UNet; ε̂′ = ε̂ + s·σ_t·ĝ (Dhariwal & Nichol's classifier
guidance with log p = −L, ĝ normalised as in :mod:`.normalised`), applied as
x_{t−1} = step(ε̂) + k_t·s·σ_t·ĝ with k_t = ∂x_{t−1}/∂ε̂ of the update
(:meth:`~stylediff.diffusion.schedule.Schedule.shift_for_eps`). That equals ``scheduler.step(ε̂′)``
whenever x̂0 is not clipped; feeding ε̂′ to a clipping scheduler instead would clip away the x̂0 half
of the correction and keep the ε̂ half, which points uphill. :mod:`.classifier` is the published rule
(constant scale, no normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Evaluations, StepContext, unet_gradient
from .normalised import NormalisedGradient


@dataclass
class ThroughUNetGuidance(NormalisedGradient):
    """The ``through_unet`` rule: classifier guidance on L(x̂0(x_t)), normalised (the module docstring states it)."""

    name = "through_unet"
    paper = "stylediff's own rule (classifier guidance on L(x̂0(x_t)) with ‖ε̂‖/‖g‖ normalisation)"
    reference = "stylediff.diffusion.methods.through_unet"
    differentiates_unet = True
    latent_note = "∇_{x_t} back through the decoder and the UNet (on the CFG batch), as on pixels"
    scale_range = (0.03, 0.3)
    scale: float = 0.1

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        out, eps, _, loss, grad = unet_gradient(ctx, x)
        delta = self.capped(self.correction(ctx, grad, loss, eps))
        base = ctx.base_step(out, x)
        return ctx.finish(base, d_prev=ctx.schedule.shift_for_eps(ctx.t, ctx.index, ctx.eta) * delta)
