"""``mpgd``: Manifold Preserving Guided Diffusion (He et al., ICLR 2024): the x̂0 step, with its
autoencoder projection (MPGD-AE) as an option on latent models.

Follows KellyYutongHe/mpgd_pytorch ``linear_inv/guided_diffusion/guided_gaussian_diffusion.py``
``DDIMx0.p_sample_loop`` with ``condition_methods.py`` ``WoProjSampling.conditioning`` (and its
``ConditioningMethod.grad_and_value``): one UNet forward with no graph; x̂0 clipped as the scheduler
clips it (``clip_denoised``) and ε̂ re-derived from x_t and that x̂0 (``predict_eps_from_x_start``);
x̂0′ = x̂0 − c_t·∇_{x̂0}‖r‖ with the *unsquared* residual norm ‖r‖ = √L (``torch.linalg.norm`` then
``autograd.grad``, as the ``dps`` port), then the DDIM step from x̂0′ and the re-derived ε̂, at every
step. Knobs:

* ``gradient``: ``norm`` (default, the reference): ∇√L = ∇L/(2√L); ``squared``: ∇L, whose step is
  2√L times the reference's and so drifts with the loss's magnitude (the rule of TFG's MPGD baseline,
  whose ``get_guidance`` differentiates the guider's log p = −L);
* ``step_schedule``: ``inv_sqrt_alpha_prev`` (default, the reference): c_t = s/√ᾱ_prev, so x_{t−1}
  moves by the constant −s·∇‖r‖ (``x_0_hat -= norm_grad * self.scale / at.sqrt()``, at = ᾱ_prev);
  ``constant``: c_t = s, the MPGD baseline of TFG's code (YWolfeee/Training-Free-Guidance
  ``methods/mpgd.py``), which equals TFG with ρ = 0, N_iter = 1, γ = 0 and a constant μ schedule
  (with ``gradient squared``).

Clamp: the reference's gradient is taken at the already clipped x̂0 with no clamp in its graph; the
sampler's straight-through clamp is then the identity, so the two agree. Deviations: the norm is taken per image
and summed (the reference's single norm over its batch would couple images); the reference's eta is
0.5, here the sampler's η is shared by every method (0 by default); the reference samples DDIM only,
with DDPM the same x̂0 step enters the DDPM posterior mean.

On a latent model x̂0 is the latent z0 and the gradient is ∇_{z0}L(decode(z0)): through the VAE
decoder only, never the UNet (MPGD's speed claim). With classifier-free guidance the step size is the
reference's Stable Diffusion rule (``nonlinear/SD_style/ldm/models/diffusion/ddim.py``
``DDIMSampler.p_sample_ddim_conditional_x0``): c_t = s·rms(w·(ε_c − ε_u))/rms(g), the size of this
step's CFG correction (its ``--rho``, 15–30 recommended there), divided by √ᾱ_prev under the default
``inv_sqrt_alpha_prev`` schedule (the paper's version; the SD script's line leaves it commented out).

The autoencoder projection (MPGD-AE, ``condition_methods.py`` ``AESampling.conditioning``): inside
``ae_window`` the loss is taken at the autoencoded x̂0, L(decode(encode(decode(z0)))), the gradient going
back through the encoder and both decodes (latent models with an encoder; off by default,
``ae_window`` 0,0). Deviations on latent models: the reference's extra factor 0.0075 on the step inside
that window is not applied (one scale for the whole run); its SD script's η is 1.0 and its window
(0.3–0.7, with time travel) are the ``--eta``/``--window``/``--recurrence`` knobs here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob, per_image_rms, x0_gradient
from .dps import NORM_FLOOR

STEP_SCHEDULES = ("inv_sqrt_alpha_prev", "constant")
GRADIENTS = ("norm", "squared")


@dataclass
class MPGDGuidance(GuidanceMethod):
    name = "mpgd"
    paper = "He et al. 2024, Manifold Preserving Guided Diffusion"
    reference = "KellyYutongHe/mpgd_pytorch guided_gaussian_diffusion.py DDIMx0 + WoProjSampling.conditioning"
    differentiates_unet = False
    latent_note = "∇_{z0}L(decode(z0)), decoder only, no UNet backward; with CFG c = s·rms(w(ε_c − ε_u))/rms(g)/√ᾱ_prev (SD_style, ρ 15–30 there); ae_window: MPGD-AE projection"
    clamp = "gradient at the clipped x̂0, as the reference (clip_denoised, then the gradient)"
    scale_range = (5.0, 15.0)
    """Re-measured for the unsquared-norm step with report/scale_range/README.md's command
    (``--methods mpgd --factors 0.03,0.1,0.3,1,3,10``, log_mpgd_norm.txt): 1.5 gives Gram 1.76, just
    above 0.9 × 1.94 unguided; 15 realism 0.036, 50 0.088 (destroyed). The squared rule's was 0.45–15."""
    note = "the reference used eta = 0.5; here the shared sampler's eta (0 by default)"
    scale: float = 9.0
    step_schedule: str = knob(
        "inv_sqrt_alpha_prev",
        "the x0 step's schedule: s/sqrt(alpha_bar_prev) (the original's) or s (TFG's MPGD baseline)",
        choices=STEP_SCHEDULES,
    )
    gradient: str = knob(
        "norm",
        "step along the gradient of the residual norm sqrt(L) (norm, the "
        "reference's) or of L (squared, TFG's MPGD baseline)",
        choices=GRADIENTS,
    )
    ae_window: tuple[float, float] = knob(
        (0.0, 0.0), "latent models: START,END of the autoencoder projection (MPGD-AE; 0,0 = off)"
    )

    def __post_init__(self):
        super().__post_init__()
        if self.step_schedule not in STEP_SCHEDULES:
            raise ConfigError(
                f"unknown step schedule {self.step_schedule!r}; choose one of {', '.join(STEP_SCHEDULES)}"
            )
        if self.gradient not in GRADIENTS:
            raise ConfigError(f"unknown mpgd gradient {self.gradient!r}; choose one of {', '.join(GRADIENTS)}")
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
        base = ctx.base_step(out, x, rederive_eps=True)
        loss, grad = x0_gradient(ctx, base.x0, ctx.autoencode if self._projected(ctx) else None)
        grad = ctx.check_finite(loss, grad, self.scale)
        if self.gradient == "norm":  # ∇√L = ∇L/(2√L), per image
            grad = grad / (2 * loss.float().clamp_min(NORM_FLOOR).sqrt()).view(-1, *([1] * (grad.dim() - 1)))
        step = self.scale
        if correction is not None:  # SD_style: the size of this step's CFG correction
            step = step * per_image_rms(correction.float()) / per_image_rms(grad).clamp_min(1e-20)
        if self.step_schedule == "inv_sqrt_alpha_prev":
            step = step / ctx.schedule.alpha_bar_prev(ctx.t, ctx.index).sqrt()
        return ctx.finish(base, d_x0=-step * grad)
