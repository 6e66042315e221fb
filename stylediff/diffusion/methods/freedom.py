"""``freedom``: FreeDoM (Yu et al., ICCV 2023, "FreeDoM: Training-Free Energy-Guided Conditional
Diffusion Model").

Follows vvictoryuki/FreeDoM's pixel-space rule, ``Face-GD/functions/denoising.py``
``clip_ddim_diffusion``, and the guidance/time-travel windows of its style sampler
``SD_style/ldm/models/diffusion/ddim.py`` ``DDIMSampler.p_sample_ddim_conditional``:

* g = ∇_{x_t} E(x̂0(x_t)) back through the UNet, E = L;
* x_{t−1} = x′_{t−1} − ρ_t·g, with the RMS-ratio step ρ_t = s·rms(ε̂)·√((1 − ᾱ_t)/ᾱ_t)·c1_t / rms(g) and
  c1_t = √ᾱ_prev·(1 − ᾱ_t/ᾱ_prev)/(1 − ᾱ_t) (the reference's ``l1 … * 0.02 / rms(norm_grad)`` with
  s = 0.02 there): the step's size does not depend on the loss's magnitude;
* time travel: inside ``travel_window`` each guided step is done ``recurrence`` times, re-noising
  x_{t−1} → x_t = √(ᾱ_t/ᾱ_prev)·x_{t−1} + √(1 − ᾱ_t/ᾱ_prev)·z between passes (fresh z);
* guidance only inside ``window``. Defaults are the style sampler's: guidance for t ∈ [300, 700]
  (window 0.3–0.7 of the trajectory), r = 3 for t ∈ [400, 700] (travel window 0.3–0.6).

On a model with classifier-free guidance (Stable Diffusion) the step size is the reference's
``SD_style`` rule: ρ_t = s·rms(w·(ε_c − ε_u))/rms(g), the size of the CFG correction of this step
(``ctx.correction``; s = 0.2 there: pass ``--scale 0.2``), with g back through the VAE decoder, the
UNet (on the CFG batch) and x_t (``decode_first_stage`` with gradient).

Deviations: rms is per image (the reference's batch is one image); the reference's E is the unsquared
Gram-residual norm, and with the RMS ratio E = L gives the same step; the reference always steps with
the DDPM posterior (DDIM η = 1), here the sampler's η is used (0 by default).

Clamp: the reference feeds the unclipped x̂0 to its energy (no clamp anywhere in ``clip_ddim_diffusion``)
and steps with the unclipped x̂0; here the loss reads x̂0 through the sampler's straight-through clamp,
and the scheduler's step clips x̂0 when its config says ``clip_sample`` (a deviation only then).

Default scale 0.1 vs the reference's 0.02: the reference's constant multiplies an RMS ratio tuned for a
CLIP/ArcFace energy of 256 px faces, 100 DDIM steps with η = 1 and up to 10 time-travel passes
(ImageNet window 500–800); here the energy is a Gram distance, 50 steps with η = 0 and 3 passes, and
``scale_range`` is measured on the demo model by ``bench/scale_range.py`` (see ``GuidanceMethod``):
0.02 lies below its low end 0.03 (the Gram distance falls by less than 10 %), the default is the
range's geometric middle. (The style sampler ``SD_style`` normalises differently again:
rms(CFG correction)·0.2/rms(g).)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob, per_image_rms, unet_gradient


@dataclass
class FreeDoMGuidance(GuidanceMethod):
    name = "freedom"
    paper = "Yu et al. 2023, FreeDoM: Training-Free Energy-Guided Conditional Diffusion Model"
    reference = "vvictoryuki/FreeDoM Face-GD/functions/denoising.py clip_ddim_diffusion; SD_style ddim.py"
    differentiates_unet = True
    clamp = "straight-through; reference: none (unclipped x̂0 to the energy and the update)"
    latent_note = "SD_style: g through decoder, UNet (CFG batch) and x_t; with CFG ρ = s·rms(w(ε_c − ε_u))/rms(g), the reference's s = 0.2"
    scale_range = (0.03, 0.3)
    note = "the reference steps with the DDPM posterior (eta = 1); here the shared sampler's eta (0 by default)"
    scale: float = 0.1
    window: tuple[float, float] = (0.3, 0.7)
    recurrence: int = 3
    travel_window: tuple[float, float] = knob((0.3, 0.6), "START,END of the time-travel part of the trajectory")

    def __post_init__(self):
        super().__post_init__()
        travel = tuple(float(w) for w in self.travel_window)
        if len(travel) != 2 or not (0.0 <= travel[0] <= travel[1] <= 1.0):
            raise ConfigError(f"travel window must be two fractions 0 <= start <= end <= 1, got {self.travel_window}")
        self.travel_window = travel

    def repeats(self, index: int, steps: int) -> int:
        return self.recurrence if self.in_window(self.travel_window, index, steps) else 1

    def pass_evaluations(self) -> Evaluations:
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        out, eps, _, loss, grad = unet_gradient(ctx, x)
        grad = ctx.check_finite(loss, grad, self.scale)
        schedule = ctx.schedule
        ab, ab_prev = schedule.alpha_bar(ctx.t), schedule.alpha_bar_prev(ctx.t, ctx.index)
        c1 = ab_prev.sqrt() * (1 - ab / ab_prev) / (1 - ab)
        target = self.scale * per_image_rms(eps.float()) * ((1 - ab) / ab).sqrt() * c1
        if ctx.correction is not None:  # SD_style: the size of this step's CFG correction
            target = self.scale * per_image_rms(ctx.correction.float())
        rho = target / per_image_rms(grad).clamp_min(1e-20)
        return ctx.finish(ctx.base_step(out, x), d_prev=-rho * grad)
