"""``ugd``: Universal Guidance (Bansal et al. 2023, "Universal Guidance for Diffusion Models").

Follows arpitbansal297/Universal-Guided-Diffusion ``Guided_Diffusion_Imagenet/guided_diffusion/
gaussian_diffusion.py`` ``ddim_sample_operation`` (pixel space):

* forward guidance: ε̂′ = ε̂ + s·√(1 − ᾱ_t)·∇_{x_t}L(x̂0(x_t)) through the UNet (s = ``scale``);
* backward guidance: starting from x̂0(ε̂′) clamped to [-1, 1], ``inner_steps`` Adam steps of rate
  ``inner_lr`` on L(x̂0) (clamped before each step), Δ* = x̂0* − x̂0, and ε̃ = ε̂′ − √(ᾱ_t/(1 − ᾱ_t))·Δ*,
  i.e. ε̃ re-derived from x_t and x̂0* (as the code does, also with no inner step: the clamp);
* x_{t−1} = DDIM(x̂0*, ε̃), then self-recurrence: ``recurrence`` k passes, re-noising
  x_t = √(ᾱ_t/ᾱ_prev)·x_{t−1} + √(1 − ᾱ_t/ᾱ_prev)·z between them.

On latent models: the reference's Stable Diffusion sampler (``stable-diffusion-guided/ldm/models/
diffusion/ddim_with_grad.py`` ``DDIMSamplerWithGrad.sample``, ``guidance_3``) takes the same forward
guidance through ``decode_first_stage_with_grad`` and the UNet on the CFG batch (lines 129-168 of
``DDIMSamplerWithGrad.sample``: ``selected = -criterion``, ``grad * optim_guidance_3_wt``,
``e_t = e_t - sqrt_one_minus_at * grad``; the DDIM step and the re-noising after every pass, 207-220),
and does not clamp the latent x̂0; here ``ctx.clamp`` is the identity for latents, so the rule is
unchanged and the CFG correction is not used (ε̂ comes from the model output, v-prediction included).

Stable Diffusion deviations (docs/part2/methods/ugd.md lists them): the reference's style loss is not a
Gram loss but a CLIP-RN50 image-embedding similarity, −100·cos(f(x), f(s)) with f OpenAI CLIP RN50's
``encode_image`` of (x + 1)/2 resized bicubically to 224 and normalised by the *ImageNet* mean/std,
L2-normalised, the style image at its native size (``scripts/style_transfer.py`` lines 164-198); no
RN50 CLIP is offered here (its weights are not among stylediff's networks), so the method runs on
whichever loss is given and its strength does not carry over. Its README's style commands run CFG 3,
500 DDIM steps, η = 0, 6 self-recurrences with forward weight 6 (``--scale 3.0 --ddim_steps 500
--optim_num_steps 6 --optim_forward_guidance_wt 6``; here ``--cfg-scale 3 --steps 500 --scale 6``),
SD v1 in fp32 with CLIP in fp16; the decoded image is clamped to [-1, 1] here (straight-through), not
there.

Defaults: the style preset of its README (k = 6, no backward guidance, DDIM η = 0); the inner Adam's
rate 0.01 is the scripts' ``--optim_lr``. Not ported: the per-image loss cutoff (1e-5, never reached
by a style loss) and the warm start (off in the scripts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob, unet_gradient


@dataclass
class UniversalGuidance(GuidanceMethod):
    """The ``ugd`` rule: Universal Guidance, forward and backward (the module docstring: its reference and deviations)."""

    name = "ugd"
    paper = "Bansal et al. 2023, Universal Guidance for Diffusion Models"
    reference = "arpitbansal297/Universal-Guided-Diffusion gaussian_diffusion.py ddim_sample_operation"
    differentiates_unet = True
    clamp = (
        "straight-through; reference: none in the forward guidance (its clamp result is discarded), x̂0"
        " clamped before the update"
    )
    latent_note = "stable-diffusion-guided ddim_with_grad.py: forward guidance through decode_first_stage_with_grad and the UNet (CFG batch); latent x̂0 not clamped"
    scale_range = (30.0, 9000.0)
    scale: float = 500.0
    recurrence: int = 6
    inner_steps: int = knob(0, "backward-guidance Adam steps in x0-space per pass")
    inner_lr: float = knob(0.01, "backward-guidance Adam rate")

    def __post_init__(self):
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        if int(self.inner_steps) != self.inner_steps or self.inner_steps < 0:
            raise ConfigError(f"inner steps must be an integer >= 0, got {self.inner_steps}")
        if not (self.inner_lr > 0 and self.inner_lr < float("inf")):
            raise ConfigError(f"inner lr must be a finite number > 0, got {self.inner_lr}")
        self.inner_steps = int(self.inner_steps)

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        inner = self.inner_steps
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=1 + inner, objective_backward=1 + inner)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        out, eps, _, loss, grad = unet_gradient(ctx, x)
        grad = ctx.check_finite(loss, grad, self.scale)
        schedule = ctx.schedule
        eps_forward = eps + self.scale * schedule.sigma(ctx.t) * grad
        x0 = ctx.clamp(schedule.x0_from_eps(x, eps_forward, ctx.t))
        if self.inner_steps:
            x0 = self._backward_guidance(ctx, x0)
        ab = schedule.alpha_bar(ctx.t)
        eps_new = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        base = ctx.base_step(out, x)
        return ctx.finish(base, d_x0=x0 - base.x0, d_eps=eps_new - base.eps)

    def _backward_guidance(self, ctx: StepContext, x0: torch.Tensor) -> torch.Tensor:
        """The m Adam steps on L(x̂0) from ``x0``, clamping to [-1, 1] before each step and at the end."""
        with torch.enable_grad():
            leaf = x0.detach().clone().requires_grad_(True)
            optimiser = torch.optim.Adam([leaf], lr=self.inner_lr)
            for _ in range(self.inner_steps):
                with torch.no_grad():
                    leaf.copy_(ctx.clamp(leaf))
                optimiser.zero_grad(set_to_none=True)
                ctx.loss(leaf).sum().backward()
                optimiser.step()
        return ctx.clamp(leaf.detach())
