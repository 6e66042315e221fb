"""``mpgd``: Manifold Preserving Guided Diffusion (He et al., ICLR 2024), without projection.

Follows KellyYutongHe/mpgd_pytorch ``linear_inv/guided_diffusion/guided_gaussian_diffusion.py``
``DDIMx0.p_sample_loop`` with ``condition_methods.py`` ``WoProjSampling.conditioning``: one UNet
forward with no graph, x̂0′ = x̂0 − c_t·∇_{x̂0}L(x̂0) (x̂0 clipped as the scheduler clips it), then the
DDIM step from x̂0′ with the model's own ε̂, at every step. ``step_schedule``:

* ``inv_sqrt_alpha_prev`` (default, the reference): c_t = s/√ᾱ_prev, so x_{t−1} moves by the constant
  −s·∇L (``x_0_hat -= norm_grad * self.scale / at.sqrt()``, at = ᾱ_prev);
* ``constant``: c_t = s, the MPGD baseline of TFG's code (YWolfeee/Training-Free-Guidance
  ``methods/mpgd.py``), which equals TFG with ρ = 0, N_iter = 1, γ = 0 and a constant μ schedule.

Out of scope for pixel models: the autoencoder projections (MPGD-AE/-Z) need a VAE. Deviation: the
reference's eta is 0.5; here the sampler's η is shared by every method (0 by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob, x0_gradient

STEP_SCHEDULES = ("inv_sqrt_alpha_prev", "constant")


@dataclass
class MPGDGuidance(GuidanceMethod):
    name = "mpgd"
    paper = "He et al. 2024, Manifold Preserving Guided Diffusion"
    reference = "KellyYutongHe/mpgd_pytorch guided_gaussian_diffusion.py DDIMx0 + WoProjSampling.conditioning"
    differentiates_unet = False
    scale_range = (0.45, 15.0)
    note = "the reference used eta = 0.5; here the shared sampler's eta (0 by default)"
    scale: float = 3.0
    step_schedule: str = knob("inv_sqrt_alpha_prev", "the x0 step's schedule: s/sqrt(alpha_bar_prev) (the "
                              "original's) or s (TFG's MPGD baseline)", choices=STEP_SCHEDULES)

    def __post_init__(self):
        super().__post_init__()
        if self.step_schedule not in STEP_SCHEDULES:
            raise ConfigError(f"unknown step schedule {self.step_schedule!r}; choose one of {', '.join(STEP_SCHEDULES)}")

    def pass_evaluations(self) -> Evaluations:
        return Evaluations(unet_forward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = ctx.unet(x)
        base = ctx.base_step(out, x)
        loss, grad = x0_gradient(ctx, base.x0)
        grad = ctx.check_finite(loss, grad, self.scale)
        step = self.scale
        if self.step_schedule == "inv_sqrt_alpha_prev":
            step = step / ctx.schedule.alpha_bar_prev(ctx.t, ctx.index).sqrt()
        return ctx.finish(base, d_x0=-step * grad)
