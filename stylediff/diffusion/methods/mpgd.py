"""``mpgd``: Manifold Preserving Guided Diffusion (He et al., ICLR 2024): the x̂0 step.

Its autoencoder projection (MPGD-AE) is an option on latent models.

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
* ``step_schedule``: ``inv_sqrt_alpha_prev`` (the pixel default, the reference): c_t = s/√ᾱ_prev, so x_{t−1}
  moves by the constant −s·∇‖r‖ (``x_0_hat -= norm_grad * self.scale / at.sqrt()``, at = ᾱ_prev,
  ``condition_methods.py`` line 91);
  ``constant``: c_t = s, the MPGD baseline of TFG's code (YWolfeee/Training-Free-Guidance
  ``methods/mpgd.py``), which equals TFG with ρ = 0, N_iter = 1, γ = 0 and a constant μ schedule
  (with ``gradient squared``); ``posterior``: the Stable Diffusion sampler's (below).

Clamp: the reference's gradient is taken at the already clipped x̂0 with no clamp in its graph; the
sampler's straight-through clamp is then the identity, so the two agree. Deviations: the norm is taken per image
and summed (the reference's single norm over its batch would couple images); the reference's eta is
0.5, here the sampler's η is shared by every method (0 by default); the reference samples DDIM only,
with DDPM the same x̂0 step enters the DDPM posterior mean.

On a latent model x̂0 is the latent z0 and the gradient is ∇_{z0}L(decode(z0)): through the VAE
decoder only, never the UNet (MPGD's speed claim). The reference's Stable Diffusion sampler
(``nonlinear/SD_style/ldm/models/diffusion/ddim.py`` ``DDIMSampler.p_sample_ddim_conditional_x0``,
lines 202-281) does, per guided step:

* ε_u, ε_c from the CFG batch, ``correction = ε_c − ε_u``, ε̂ = ε_u + w·correction (lines 230-236);
  x̂0 = (z_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t (255), detached (257);
* g = ∇_{x̂0}‖G(decode(x̂0)) − Gₛ‖_F (260-263) and ρ_eff = ρ·rms(w·correction)/rms(g) (266, its
  "/ a_prev.sqrt()" commented out);
* x̂0′ = x̂0 − ρ_eff·g (269), then the DDPM posterior z_{t−1} = c1·x̂0′ + c2·z_t + c3·ξ (271-275),
  c1 = √ᾱ_prev·(1 − ᾱ_t/ᾱ_prev)/(1 − ᾱ_t): z_{t−1} moves by −c1·ρ_eff·g;
* guidance for 0.7·n > index >= 0.3·n (214-221): the window 0.3–0.7.

Knobs for that: ``step_schedule posterior`` moves x_{t−1} by −c1·c_t·g (``Schedule.posterior_coefficient``,
applied to x_{t−1} directly, so at any η; at η = 1 the base step is the reference's posterior too);
``step_size cfg`` is c_t = s·rms(w·(ε_c − ε_u))/rms(g) with the CFG correction in ε-space (converted for
v-prediction models), ``pixel`` is c_t = s (the linear-inverse code's); ``auto`` (the defaults) resolve
once before sampling to the reference of the model at hand: the SD sampler's on a latent model with
classifier-free guidance (``step_schedule`` ``posterior``, ``step_size`` ``cfg``, a ``window`` left unset
(None) at 0.3–0.7), the unconditional code's elsewhere (``inv_sqrt_alpha_prev``, ``pixel``, 0–1): an
unconditional latent model (an LDM, or Stable Diffusion at ``--cfg-scale`` ≤ 1) has no CFG correction to
size the step by, and its reference is the unconditional one. The sidecar records the resolved values. With ``step_size cfg`` the loss's scale cancels, so ``gradient`` norm and squared give the same
step. So ``--scale 15`` with ``--cfg-scale 5 --steps 100 --eta 1`` is the reference's ``run.sh``.

Stable Diffusion style layer: OpenAI CLIP ViT-B/16 ``feats[2]`` (``clip/base_clip.py`` line 65), the
output of the third block = transformers' ``hidden_states[3]``: ``clip_style_layer = "hidden3"``.

Deviations on Stable Diffusion (docs/part2/methods/mpgd.md lists them too): the reference runs CFG 5,
ρ 15, ``--tt 1`` and 100 steps (``run.sh``; the CLI's defaults are CFG 7.5 and 50 steps), SD v1-4
(``style.py`` line 221), batch 1 (its ρ_eff is one number over the batch, ``.item()``; here per image),
and fp32 (its ``precision_scope("cuda") and model.ema_scope()`` enters only the second; CLIP keeps fp16
weights); with ``--tt`` > 1 its ``rho`` is rebound to ρ_eff and compounds over the passes (a bug not
reproduced: here every pass uses s); its Gram is of batch element 0, its style image read with PIL's
bilinear resize to 224 px; the decoded image is clamped to [-1, 1] here (straight-through), nowhere in
the reference. MPGD-AE: the reference's projection (``linear_inv/guided_diffusion/condition_methods.py``
``AESampling``, lines 95-136) is in its pixel-space code, where a pixel x̂0 goes through an external
latent-diffusion autoencoder for 0.3 < t < 0.5 with the step ×0.0075 there; the SD style sampler has no
projection. ``ae_window`` here is a different construction on latent models: inside it the loss is taken
at decode(encode(decode(z0))), the gradient going back through the encoder and both decodes (latent
models with an encoder; off by default, ``ae_window`` 0,0), without the 0.0075 factor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ...core.errors import ConfigError
from .base import (
    STEP_SIZES,
    Evaluations,
    GuidanceMethod,
    StepContext,
    knob,
    per_image_rms,
    resolve_step_size,
    x0_gradient,
)
from .dps import NORM_FLOOR

STEP_SCHEDULES = ("auto", "posterior", "inv_sqrt_alpha_prev", "constant")
GRADIENTS = ("norm", "squared")
LATENT_WINDOW = (0.3, 0.7)
"""The Stable Diffusion sampler's guided part, 0.7·n > index >= 0.3·n (``SD_style/.../ddim.py`` 214-221)."""


@dataclass
class MPGDGuidance(GuidanceMethod):
    """The ``mpgd`` rule: Manifold Preserving Guided Diffusion (the module docstring: its reference and deviations)."""

    name = "mpgd"
    paper = "He et al. 2024, Manifold Preserving Guided Diffusion"
    reference = (
        "KellyYutongHe/mpgd_pytorch guided_gaussian_diffusion.py DDIMx0 + WoProjSampling.conditioning; "
        "nonlinear/SD_style ddim.py p_sample_ddim_conditional_x0"
    )
    differentiates_unet = False
    latent_note = "∇_{z0}L(decode(z0)), decoder only, no UNet backward; SD_style: z_{t−1} moves by −c1·s·rms(w(ε_c − ε_u))/rms(g)·g inside 0.3–0.7 (ρ 15, CFG 5, 100 steps); ae_window: a latent MPGD-AE variant"
    clamp = "gradient at the clipped x̂0, as the reference (clip_denoised, then the gradient)"
    clip_style_layer = "hidden3"
    scale_range = (5.0, 15.0)
    """Re-measured for the unsquared-norm step with report/scale_range/README.md's command
    (``--methods mpgd --factors 0.03,0.1,0.3,1,3,10``, log_mpgd_norm.txt): 1.5 gives Gram 1.76, just
    above 0.9 × 1.94 unguided; 15 realism 0.036, 50 0.088 (destroyed). The squared rule's was 0.45–15."""
    note = "the reference used eta = 0.5 (pixels) and the DDPM posterior (eta = 1, SD); here the shared sampler's eta"
    scale: float = 9.0
    window: tuple[float, float] | None = None
    step_schedule: str = knob(
        "auto",
        "the x0 step's schedule: s/sqrt(alpha_bar_prev) (inv_sqrt_alpha_prev, the original's), s (constant, TFG's "
        "MPGD baseline), c1*s on x_{t-1} (posterior, the SD sampler's), or auto: posterior on latent models "
        "with classifier-free guidance, else inv_sqrt_alpha_prev",
        choices=STEP_SCHEDULES,
    )
    step_size: str = knob(
        "auto",
        "c = s*rms(CFG correction)/rms(g) (cfg, the SD_style sampler's), s (pixel, the linear-inverse code's), "
        "or auto: cfg where classifier-free guidance runs, else pixel",
        choices=STEP_SIZES,
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
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        if self.step_schedule not in STEP_SCHEDULES:
            raise ConfigError(
                f"unknown step schedule {self.step_schedule!r}; choose one of {', '.join(STEP_SCHEDULES)}"
            )
        if self.gradient not in GRADIENTS:
            raise ConfigError(f"unknown mpgd gradient {self.gradient!r}; choose one of {', '.join(GRADIENTS)}")
        resolve_step_size(self.name, self.step_size, cfg=True)  # an unknown name fails here
        window = tuple(float(w) for w in self.ae_window)
        if len(window) != 2 or not (0.0 <= window[0] <= window[1] <= 1.0):
            raise ConfigError(f"ae window must be two fractions 0 <= start <= end <= 1, got {self.ae_window}")
        self.ae_window = window

    def resolved(self, latent: bool, cfg: bool) -> MPGDGuidance:
        """The ``auto`` knobs set for the model (see :meth:`GuidanceMethod.resolved`)."""
        schedule = self.step_schedule
        sd_sampler = latent and cfg  # the SD_style sampler's rule needs a CFG correction to size its step
        if schedule == "auto":
            schedule = "posterior" if sd_sampler else "inv_sqrt_alpha_prev"
        window = self.window if self.window is not None else (LATENT_WINDOW if sd_sampler else (0.0, 1.0))
        return replace(
            self, window=window, step_schedule=schedule, step_size=resolve_step_size(self.name, self.step_size, cfg)
        )

    def _projected(self, ctx: StepContext) -> bool:
        return self.ae_window[1] > 0 and self.in_window(self.ae_window, ctx.index, ctx.steps)

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        return Evaluations(unet_forward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        with torch.no_grad():
            out = ctx.unet(x)
        correction = ctx.correction
        base = ctx.base_step(out, x, rederive_eps=True)
        loss, grad = x0_gradient(ctx, base.x0, ctx.autoencode if self._projected(ctx) else None)
        grad = ctx.check_finite(loss, grad, self.scale)
        if self.gradient == "norm":  # ∇√L = ∇L/(2√L), per image
            grad = grad / (2 * loss.float().clamp_min(NORM_FLOOR).sqrt()).view(-1, *([1] * (grad.dim() - 1)))
        step = self.scale
        if self.step_size == "cfg":  # SD_style ddim.py:266, the CFG correction in ε-space
            step = step * per_image_rms(correction.float()) / per_image_rms(grad).clamp_min(1e-20)
        if self.step_schedule == "posterior":  # x̂0 −= c·g, then c1·x̂0 + c2·z_t + c3·ξ (ddim.py:269-275)
            return ctx.finish(base, d_prev=-ctx.schedule.posterior_coefficient(ctx.t, ctx.index) * step * grad)
        if self.step_schedule == "inv_sqrt_alpha_prev":
            step = step / ctx.schedule.alpha_bar_prev(ctx.t, ctx.index).sqrt()
        return ctx.finish(base, d_x0=-step * grad)
