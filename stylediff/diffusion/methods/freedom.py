"""``freedom``: FreeDoM (Yu et al., ICCV 2023).

Paper: "FreeDoM: Training-Free Energy-Guided Conditional Diffusion Model".

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

Step size (``step_size``): ``cfg`` is the reference's Stable Diffusion rule (``SD_style/ldm/models/
diffusion/ddim.py`` lines 227-236 and 257-263): ρ_t = s·rms(w·(ε_c − ε_u))/rms(g), the size of this
step's classifier-free-guidance correction in ε-space (``ctx.correction``, converted from v for a
v-prediction model), s = 0.2 there (``--scale 0.2``), with g = ∇_{z_t}‖G − Gₛ‖ back through the VAE
decoder, the UNet (on the CFG batch) and z_t (``decode_first_stage`` with gradient, lines 257-262), and
z_{t−1} = c1·x̂0 + c2·z_t + c3·ξ − ρ_t·g (lines 265-273); ``pixel`` is the Face-GD rule above; ``auto``
(default) resolves to ``cfg`` where classifier-free guidance runs and to ``pixel`` elsewhere (pixel
models, LDM, SD at w <= 1), once before sampling, and the sidecar records the resolved rule.

Stable Diffusion style layer: CLIP ViT-B/16 ``feats[2]`` of OpenAI CLIP's ``encode_image_with_features``
(``SD_style/.../clip/base_clip.py`` line 58, ``clip/model.py`` lines 354-356: the output of the third
block) = transformers' ``hidden_states[3]``: ``clip_style_layer = "hidden3"``, the default ``--layers``
with ``--network clip-vit-b16``.

Deviations on Stable Diffusion (docs/part2/methods/freedom.md lists them too): the reference runs
CFG 5 (``SD_style/run.sh``; the CLI's default is 7.5: pass ``--cfg-scale 5``), SD v1-4, 100 DDIM steps
and always the DDPM posterior (DDIM η = 1, its ``--ddim_eta`` is ignored), here the sampler's steps and
η (pass ``--steps 100 --eta 1``); its windows are step indices (guidance for 70 > index >= 30, time
travel ×3 for 70 > index >= 40), equal to the fractions 0.3–0.7 and 0.3–0.6 at 100 steps only; it runs
the UNet and VAE under fp16 autocast and CLIP with fp16 weights (here ``--precision``, fp32 by
default); its Gram matrix is taken of batch element 0 only and its ρ is one number for the batch
(``.item()``; its batch is one image), here per image; it reads the style image with PIL's bilinear
resize to 224 px, here stylediff's loader and the same bicubic resize as the output; its energy is the
unsquared norm ‖G − Gₛ‖_F of unnormalised Gram matrices, here L (the relative ``gram`` loss): with the
RMS-ratio step both give the same step; the decoded image is clamped to [-1, 1] here (straight-through),
nowhere in the reference.

Pixel deviations: rms is per image (the reference's batch is one image); the reference's E is the
unsquared Gram-residual norm, and with the RMS ratio E = L gives the same step; the reference always
steps with the DDPM posterior (DDIM η = 1), here the sampler's η is used (0 by default).

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
    unet_gradient,
)


@dataclass
class FreeDoMGuidance(GuidanceMethod):
    """The ``freedom`` rule: FreeDoM's energy guidance with time travel (the module docstring: its reference and deviations)."""

    name = "freedom"
    paper = "Yu et al. 2023, FreeDoM: Training-Free Energy-Guided Conditional Diffusion Model"
    reference = "vvictoryuki/FreeDoM Face-GD/functions/denoising.py clip_ddim_diffusion; SD_style ddim.py"
    differentiates_unet = True
    clamp = "straight-through; reference: none (unclipped x̂0 to the energy and the update)"
    latent_note = "SD_style: g through decoder, UNet (CFG batch) and x_t; step size cfg: ρ = s·rms(w(ε_c − ε_u))/rms(g), the reference's s = 0.2 (CFG 5, 100 steps, eta 1)"
    clip_style_layer = "hidden3"
    scale_range = (0.03, 0.3)
    note = "the reference steps with the DDPM posterior (eta = 1); here the shared sampler's eta (0 by default)"
    scale: float = 0.1
    window: tuple[float, float] = (0.3, 0.7)
    recurrence: int = 3
    travel_window: tuple[float, float] = knob((0.3, 0.6), "START,END of the time-travel part of the trajectory")
    step_size: str = knob(
        "auto",
        "rho = s*rms(CFG correction)/rms(g) (cfg, the SD_style sampler's), s*rms(eps)*sqrt((1-ab)/ab)*c1/rms(g) "
        "(pixel, Face-GD's), or auto: cfg where classifier-free guidance runs, else pixel",
        choices=STEP_SIZES,
    )

    def __post_init__(self):
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        travel = tuple(float(w) for w in self.travel_window)
        if len(travel) != 2 or not (0.0 <= travel[0] <= travel[1] <= 1.0):
            raise ConfigError(f"travel window must be two fractions 0 <= start <= end <= 1, got {self.travel_window}")
        self.travel_window = travel
        resolve_step_size(self.name, self.step_size, cfg=True)  # an unknown name fails here

    def resolved(self, latent: bool, cfg: bool) -> FreeDoMGuidance:
        """The ``auto`` knobs set for the model (see :meth:`GuidanceMethod.resolved`)."""
        return replace(self, step_size=resolve_step_size(self.name, self.step_size, cfg))

    def repeats(self, index: int, steps: int) -> int:
        """``recurrence`` passes inside the travel window, one outside it."""
        return self.recurrence if self.in_window(self.travel_window, index, steps) else 1

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=1, objective_backward=1)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        out, eps, _, loss, grad = unet_gradient(ctx, x)
        grad = ctx.check_finite(loss, grad, self.scale)
        schedule = ctx.schedule
        if self.step_size == "cfg":  # SD_style ddim.py:263, the CFG correction in ε-space
            target = self.scale * per_image_rms(ctx.correction.float())
        else:  # Face-GD denoising.py: rms(ε̂)·√((1 − ᾱ_t)/ᾱ_t)·c1
            ab = schedule.alpha_bar(ctx.t)
            c1 = schedule.posterior_coefficient(ctx.t, ctx.index)
            target = self.scale * per_image_rms(eps.float()) * ((1 - ab) / ab).sqrt() * c1
        rho = target / per_image_rms(grad).clamp_min(1e-20)
        return ctx.finish(ctx.base_step(out, x), d_prev=-rho * grad)
