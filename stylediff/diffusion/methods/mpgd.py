"""``mpgd``: Manifold Preserving Guided Diffusion (He et al., ICLR 2024), without projection.

Follows KellyYutongHe/mpgd_pytorch ``linear_inv/guided_diffusion/guided_gaussian_diffusion.py``
``DDIMx0.p_sample_loop`` with ``condition_methods.py`` ``WoProjSampling.conditioning``: one UNet
forward with no graph, x̂0′ = x̂0 − c_t·∇_{x̂0}L(x̂0) (x̂0 clipped as the scheduler clips it), then the
DDIM step from x̂0′ with the model's own ε̂, at every step. ``step_schedule``:

* ``inv_sqrt_alpha_prev`` (default, the reference): c_t = s/√ᾱ_prev, so x_{t−1} moves by the constant
  −s·∇L (``x_0_hat -= norm_grad * self.scale / at.sqrt()``, at = ᾱ_prev);
* ``constant``: c_t = s, the MPGD baseline of TFG's code (YWolfeee/Training-Free-Guidance
  ``methods/mpgd.py``), which equals TFG with ρ = 0, N_iter = 1, γ = 0 and a constant μ schedule.

On a latent model x̂0 is the latent z0 and the gradient is ∇_{z0}L(decode(z0)): through the VAE
decoder only, never the UNet (MPGD's speed claim). With classifier-free guidance the step size is the
reference's Stable Diffusion rule (``nonlinear/SD_style/ldm/models/diffusion/ddim.py``
``DDIMSampler.p_sample_ddim_conditional_x0``): c_t = s·rms(w·(ε_c − ε_u))/rms(g), the size of this
step's CFG correction (its ``--rho``, 15–30 recommended there), divided by √ᾱ_prev under the default
``inv_sqrt_alpha_prev`` schedule (the paper's version; the SD script's line leaves it commented out).

The autoencoder projection (MPGD-AE, ``condition_methods.py`` ``AESampling.conditioning``): inside
``ae_window`` the loss is taken at the autoencoded x̂0, L(decode(encode(decode(z0)))), the gradient going
back through the encoder and both decodes (latent models with an encoder; off by default,
``ae_window`` 0,0). Deviations: the reference's extra factor 0.0075 on the step inside that window is
not applied (one scale for the whole run); the reference's eta is 0.5 (1.0 in its SD script); here
the sampler's η is shared by every method (0 by default); its SD window (0.3–0.7 with time travel)
is the ``--window``/``--recurrence`` knobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob, per_image_rms, x0_gradient

STEP_SCHEDULES = ("inv_sqrt_alpha_prev", "constant")


@dataclass
class MPGDGuidance(GuidanceMethod):
    name = "mpgd"
    paper = "He et al. 2024, Manifold Preserving Guided Diffusion"
    reference = "KellyYutongHe/mpgd_pytorch guided_gaussian_diffusion.py DDIMx0 + WoProjSampling.conditioning"
    differentiates_unet = False
    latent_note = "∇_{z0}L(decode(z0)), decoder only, no UNet backward; with CFG c = s·rms(w(ε_c − ε_u))/rms(g)/√ᾱ_prev (SD_style, ρ 15–30 there); ae_window: MPGD-AE projection"
    scale_range = (0.45, 15.0)
    note = "the reference used eta = 0.5; here the shared sampler's eta (0 by default)"
    scale: float = 3.0
    step_schedule: str = knob("inv_sqrt_alpha_prev", "the x0 step's schedule: s/sqrt(alpha_bar_prev) (the "
                              "original's) or s (TFG's MPGD baseline)", choices=STEP_SCHEDULES)
    ae_window: tuple[float, float] = knob((0.0, 0.0), "latent models: START,END of the autoencoder projection "
                                          "(MPGD-AE; 0,0 = off)")

    def __post_init__(self):
        super().__post_init__()
        if self.step_schedule not in STEP_SCHEDULES:
            raise ConfigError(f"unknown step schedule {self.step_schedule!r}; choose one of {', '.join(STEP_SCHEDULES)}")
        window = tuple(float(w) for w in self.ae_window)
        if len(window) != 2 or not (0.0 <= window[0] <= window[1] <= 1.0):
            raise ConfigError(f"ae window must be two fractions 0 <= start <= end <= 1, got {self.ae_window}")
        self.ae_window = window

    def _projected(self, ctx: StepContext) -> bool:
        return self.ae_window[1] > 0 and self.in_window(self.ae_window, ctx.index, ctx.steps)

    def pass_evaluations(self) -> Evaluations:
        return Evaluations(unet_forward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = ctx.unet(x)
        correction = ctx.correction
        base = ctx.base_step(out, x)
        loss, grad = x0_gradient(ctx, base.x0, ctx.autoencode if self._projected(ctx) else None)
        grad = ctx.check_finite(loss, grad, self.scale)
        step = self.scale
        if correction is not None:  # SD_style: the size of this step's CFG correction
            step = step * per_image_rms(correction.float()) / per_image_rms(grad).clamp_min(1e-20)
        if self.step_schedule == "inv_sqrt_alpha_prev":
            step = step / ctx.schedule.alpha_bar_prev(ctx.t, ctx.index).sqrt()
        return ctx.finish(base, d_x0=-step * grad)
