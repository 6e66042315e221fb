"""``classifier``: classifier guidance (Dhariwal & Nichol 2021) with the style loss as the classifier.

Paper: "Diffusion Models Beat GANs on Image Synthesis". The style loss of the predicted image is the
classifier: log p(y | x_t) = −L(x̂0(x_t)).

Follows openai/guided-diffusion ``GaussianDiffusion.condition_score`` (DDIM) and ``condition_mean``
(DDPM), with ``cond_fn`` = s·∇_{x_t} log p as ``scripts/classifier_sample.py`` builds it:

* DDIM (``condition_score`` and ``ddim_sample``): ε̂ re-derived from x_t and the clipped x̂0
  (``_predict_eps_from_xstart``), ε̂′ = ε̂ + s·√(1 − ᾱ_t)·∇_{x_t}L, then the DDIM step from ε̂′ (x̂0
  follows); unclipped, the re-derived ε̂ is the model's.
* DDPM (``condition_mean``): μ′ = μ − s·Σ_t·∇_{x_t}L, Σ_t the scheduler's variance (fixed_small: the
  posterior variance β_t(1 − ᾱ_prev)/(1 − ᾱ_t); otherwise β_t), then the usual noise.

s is constant over the trajectory and the gradient is not rescaled. Deviation from the reference: its
classifier is a network trained on noisy x_t and no gradient flows through the diffusion UNet; here
the "classifier" is L on x̂0(x_t), so the gradient goes back through the UNet (one forward kept with
its graph, one backward). Clamp: the reference's classifier reads x_t (no x̂0 in its graph) and
``clip_denoised`` clamps x̂0 for the update only; here the loss reads x̂0 through the sampler's
straight-through clamp (a valid image, saturated pixels keep their gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..schedule import is_ddim
from .base import Evaluations, GuidanceMethod, StepContext, unet_gradient


@dataclass
class ClassifierGuidance(GuidanceMethod):
    """The ``classifier`` rule: Dhariwal & Nichol's classifier guidance (the module docstring: its reference and deviations)."""

    name = "classifier"
    paper = "Dhariwal & Nichol 2021, Diffusion Models Beat GANs on Image Synthesis"
    reference = "openai/guided-diffusion gaussian_diffusion.py ddim_sample + condition_score / condition_mean"
    differentiates_unet = True
    clamp = "straight-through; reference: none in the graph (its classifier reads x_t), x̂0 clipped for the update"
    latent_note = (
        "∇_{x_t} of L(decode(x̂0)) through decoder and UNet; the reference (guided-diffusion) has no latent variant"
    )
    scale_range = (9.0, 900.0)
    scale: float = 90.0

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        out, eps, _, loss, grad = unet_gradient(ctx, x)
        grad = ctx.check_finite(loss, grad, self.scale)
        base = ctx.base_step(out, x, rederive_eps=True)
        schedule = ctx.schedule
        if is_ddim(schedule.scheduler):
            d_eps = self.scale * schedule.sigma(ctx.t) * grad
            return ctx.finish(base, d_prev=schedule.shift_for_eps(ctx.t, ctx.index, ctx.eta) * d_eps)
        ab, ab_prev = schedule.alpha_bar(ctx.t), schedule.alpha_bar_prev(ctx.t, ctx.index)
        beta = 1 - ab / ab_prev
        small = str(schedule.scheduler.config.variance_type).startswith("fixed_small")
        variance = beta * (1 - ab_prev) / (1 - ab) if small else beta
        return ctx.finish(base, d_prev=-self.scale * variance * grad)
