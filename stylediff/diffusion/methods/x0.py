"""``x0``: the project's own x̂0-space rule (MPGD-like, with ratio-of-norms normalisation).

g = ∇_{x̂0} L(x̂0), no UNet backward; x̂0′ = clip(x̂0 − s·σ_t·ĝ·50/n) for n inference steps (one
correction per step, so the factor 50/n keeps a scale's total effect the same for any number of
steps; it is 1 at the default 50), and x_{t−1} = step(ε̂) + c_x0·(x̂0′ − x̂0): the DDIM/DDPM update
from the corrected x̂0 with the model's own ε̂. ĝ is the normalised gradient
(:mod:`.normalised`). Kept under its name so that configs and run ids written before the method
family existed still work; :mod:`.mpgd` is the published rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Evaluations, StepContext, x0_gradient
from .normalised import NormalisedGradient

REFERENCE_STEPS = 50


@dataclass
class X0Guidance(NormalisedGradient):
    """The ``x0`` rule: a normalised step on x̂0, no UNet backward (the module docstring states it)."""

    name = "x0"
    paper = "stylediff's own rule (MPGD-like x̂0 step with ‖ε̂‖/‖g‖ normalisation)"
    reference = "stylediff.diffusion.methods.x0"
    differentiates_unet = False
    latent_note = (
        "∇ w.r.t. the latent x̂0 through the VAE decoder only (no UNet backward); ĝ normalised to ‖ε̂‖ of the latent"
    )
    scale_range = (0.015, 0.05)
    scale: float = 0.03

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        return Evaluations(unet_forward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        with torch.no_grad():
            out = ctx.unet(x)
            eps, x0 = ctx.split(out, x)
            if ctx.clip_range is not None:
                x0 = x0.clamp(-ctx.clip_range, ctx.clip_range)
        loss, grad = x0_gradient(ctx, x0)
        delta = self.capped(self.correction(ctx, grad, loss, eps) * (REFERENCE_STEPS / ctx.steps))
        base = ctx.base_step(out, x)
        corrected = base.x0 - delta  # the scheduler's own (clipped) x̂0
        if ctx.clip_range is not None:
            corrected = corrected.clamp(-ctx.clip_range, ctx.clip_range)
        return ctx.finish(base, d_x0=corrected - base.x0)
