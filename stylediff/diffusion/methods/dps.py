"""``dps``: Diffusion Posterior Sampling (Chung et al., ICLR 2023).

Paper: "Diffusion Posterior Sampling for General Noisy Inverse Problems".

Follows DPS2022/diffusion-posterior-sampling ``condition_methods.PosteriorSampling.conditioning`` with
``ConditioningMethod.grad_and_value``: x_{t−1} = x′_{t−1} − ζ·∇_{x_t}‖r‖, where x′_{t−1} is the
sampler's unguided step from the same x_t (noise included) and ‖r‖ = ‖y − A(x̂0)‖ is the *unsquared*
residual norm, differentiated through the UNet, with no rescaling of the gradient. For a squared
style loss the residual norm is ‖r‖ = √L. ζ is ``scale``.

The paper writes ζ_t = ζ′/‖r‖ with ∇‖r‖² (Alg. 1), which is the code's rule with ζ = 2ζ′: the code is
followed. Deviations: the norm is taken per image and summed (the reference's single norm over its
batch of 1 would couple images); the reference samples DDPM with 1000 steps, here the sampler's
scheduler and steps are shared by every method (DDIM 50 by default); x̂0 is clamped with a
straight-through gradient instead of DPS's clamp (whose gradient is zero on clipped pixels); with DDIM
and a clipped x̂0 the step keeps the model's ε̂ (diffusers' ``use_clipped_model_output=False``) where
the repository's DDIM sampler re-derives ε̂ from the clipped x̂0 (its configs sample DDPM, where the two
agree).

On latent models: DPS's repository is pixel-space only; the gradient goes back through the VAE decoder
and the UNet (on the CFG batch), ∇_{z_t}√L(decode(x̂0(z_t))), the decoded image clamped straight-through.
The only Stable Diffusion implementation among the references is TFG's DPS baseline
(YWolfeee/Training-Free-Guidance ``methods/dps.py`` lines 27-37), which divides the step by the guider's
|log p| per image (x_{t−1} += ζ·∇log p/|log p|, i.e. −ζ·∇log ℓ for log p = −ℓ/100), on CLIP ViT-B/16
``hidden_states[2]`` (its style guider: ``clip_style_layer = "hidden2"``), CFG 7.5, 100 steps, η = 1;
that division is not ported (a deviation from TFG's SD baseline, not from DPS's own code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Evaluations, GuidanceMethod, StepContext, unet_gradient

NORM_FLOOR = 1e-12
"""√L is taken of max(L, 1e-12): the norm's gradient L′/(2√L) stays finite at a perfect match."""


@dataclass
class DPSGuidance(GuidanceMethod):
    """The ``dps`` rule: Diffusion Posterior Sampling (the module docstring: its reference and deviations)."""

    name = "dps"
    paper = "Chung et al. 2023, Diffusion Posterior Sampling for General Noisy Inverse Problems"
    reference = "DPS2022/diffusion-posterior-sampling condition_methods.py PosteriorSampling.conditioning"
    differentiates_unet = True
    clamp = "straight-through; reference: in-graph (clip_denoised in p_mean_variance)"
    latent_note = "∇_{x_t}√L(decode(x̂0)) through decoder and UNet; the reference is pixel-space only (TFG's SD baseline divides by |log p|)"
    clip_style_layer = "hidden2"
    scale_range = (3.0, 90.0)
    scale: float = 15.0
    note = "the reference samples DDPM with 1000 steps; here the shared sampler (DDIM 50, eta 0 by default)"

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        out, _, _, loss, grad = unet_gradient(ctx, x, lambda loss: loss.clamp_min(NORM_FLOOR).sqrt())
        grad = ctx.check_finite(loss, grad, self.scale)
        return ctx.finish(ctx.base_step(out, x), d_prev=-self.scale * grad)
