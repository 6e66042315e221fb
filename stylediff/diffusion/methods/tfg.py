"""``tfg``: Training-Free Guidance (Ye et al., NeurIPS 2024), the unified rule with its four knobs.

Paper: "TFG: Unified Training-Free Guidance for Diffusion Models".

Follows YWolfeee/Training-Free-Guidance ``methods/tfg.py`` ``TFGGuidance.guide_step`` (lines 76-133,
with ``tilde_get_guidance`` 18-40 and the schedules of ``get_rho``/``get_mu``/``get_std`` 48-74):

* the guider's log-probability of the objective L (``log_prob``): ``norm`` (default) log p = −√L/100,
  TFG's style guider ``tasks/networks/style_CLIP.py`` line 59, ``-(diff ** 2).sum(dim=1).sqrt() / 100`` =
  −‖G − Gₛ‖_F/100, unsquared, exactly when L = ‖G − Gₛ‖²_F; ``squared``: log p = −L (the rule before);
* variance guidance (γ): log p smoothed over Gaussian perturbations of its input,
  ℓ̃(x) = log mean_k exp(log p(x + γ_t·δ_k)), K = ``mc_samples`` draws δ_k ~ N(0, I) per pass from a
  per-image stream of the run's seed; γ_t = γ·√(1 − ᾱ_t) (``variance_schedule`` decrease) or γ;
* mean guidance through the UNet (ρ): Δ_t = ρ_t·∇_{x_t}ℓ̃(x̂0(x_t)), not normalised (its
  ``rescale_grad`` is the identity without a ``node_mask``, ``tasks/utils.py`` 20-32);
* x̂0-space iterations (μ, N_iter = ``inner_steps``): from x̂0 clamped to [-1, 1],
  x̂0 ← x̂0 + μ_t·∇ℓ̃(x̂0) N_iter times (the gradient re-evaluated at each point), Δ_0 the total change;
* x_{t−1} = DDIM(x̂0, ε̂) + Δ_t/√α_t + √ᾱ_prev·Δ_0, α_t = ᾱ_t/ᾱ_prev; N_recur = ``recurrence`` passes
  with forward-process re-noising between them;
* schedules over the n inference steps: s_i = α_i (increase), 1 − α_i (decrease) or 1 (constant), and
  ρ_i = ρ·s_i·n/Σ s (likewise μ_i), so that their mean over the trajectory is ρ (μ).

On latent models: as the reference's Stable Diffusion tasks (``tasks/base.py`` line 36: the guider's
processor is ``vae.decode(z / scaling_factor)``), both terms see L(decode(·)): ρ back through the
decoder and the UNet, μ's iterations on z0 through the decoder only, γ's perturbations in latent space;
x̂0 is not clamped (its ``clip_x0=False``; ``ctx.clamp`` is the identity for latents). Its SD style
script (``scripts/style_transfer.sh``) uses ρ = 0.25, μ = 2, γ = 0.1, K = 1, N_iter = 4, N_recur = 1,
100 steps, η = 1, CFG 7.5 (hard-coded, ``diffusion/stable_diffusion.py`` line 65), CLIP ViT-B/16
``hidden_states[2]`` (``style_CLIP.py`` line 46: ``clip_style_layer = "hidden2"``).

The loss's scale: with ``log_prob norm`` the step is linear in the objective's √L, so the reference's ρ
and μ hold as they are for L = ‖G − Gₛ‖²_F of unnormalised Gram matrices; stylediff's ``gram`` loss is
relative, √L = ‖G − Gₛ‖_F/‖Gₛ‖_F, so it needs ρ and μ (``--scale``) ×‖Gₛ‖_F of the style image at
K = 1 (a factor per style; with K > 1 the smoothing also differs). Stable Diffusion deviations
(docs/part2/methods/tfg.md lists them): the reference's time grid is SD 1.5's PNDM scheduler's, 101
timesteps with 981 twice and no last step to ᾱ_0, over which it normalises the ρ/μ schedules (here the
sampler's DDIM grid); it feeds the decoded [-1, 1] image straight into CLIP's mean/std normalisation
and normalises the style target twice (``style_CLIP.py`` lines 38 and 44; here CLIP sees the image in
[0, 1] once normalised, the target likewise); its style image is resized by PIL's bilinear filter; the
decoded image is clamped to [-1, 1] here (straight-through), not there.

``scale`` multiplies ρ and μ (the strength one sweeps; the beam search of ``stylediff search`` tunes
ρ, μ and γ themselves). Defaults: the repository's 32 px CIFAR-10 setting (ρ = 1, μ = 0.25,
γ = 0.001, N_iter = 4, N_recur = 1, K = 1; increase/increase/decrease). With ρ = 0, N_iter = 1,
γ = 0, a constant μ schedule and ``log_prob squared`` the rule is exactly TFG's MPGD baseline, ``mpgd``
with ``step_schedule constant`` and ``gradient squared`` (tested); the original MPGD's x̂0 step s/√ᾱ_prev is not one of TFG's
schedules, so "MPGD is a special case of TFG" holds up to the step size's schedule. Deviation: TFG
samples with DDIM η = 1 in all its scripts; here the sampler's η (0 by default).

Clamp: as the reference (``methods/base.py`` ``BaseGuidance._predict_x0`` with its default
``clip_x0=True``, ``clip_sample_range=1``), x̂0 is clamped to [-1, 1] *inside* the graph of the mean
guidance, so pixels saturated in x̂0 get no gradient (every other method reads x̂0 through the
sampler's straight-through clamp), and the x̂0 iterations and the DDIM step start from the clamped
x̂0 with ε̂ re-derived from it (``_predict_x_prev_from_zero``). The x̂0 iterates may leave [-1, 1]; the
loss reads them through the straight-through clamp (the reference's guider reads them as they are).

Pixel defaults changed with ``log_prob norm`` (issue 33): the step is now ∇(√L/100) = ∇L/(200√L) where
it was ∇L, so ``scale`` means something else and ``scale_range`` was re-measured.

Search (``stylediff search``): ``search_factors`` are ``searching.py``'s factors (ρ ×2, μ ×2, γ ×10);
its starting values (ρ 0.25, μ 0.25, γ 0.001) and caps (8, 8, 1) are ``search_start`` and
``search_caps`` here, with ``scale`` held at 1 (not searched), so the searched ρ, μ, γ are TFG's. They are
TFG's values for its raw-Gram log p; with stylediff's relative losses log p is ‖Gₛ‖_F times smaller, and
on the pixel demo model the whole grid lies below ``scale_range`` (which starts at 90 for ρ = 1, μ = 0.25).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob
from .dps import NORM_FLOOR

SCHEDULES = ("increase", "decrease", "constant")
VARIANCE_SCHEDULES = ("decrease", "constant")
LOG_PROBS = ("norm", "squared")
LOG_PROB_DIVISOR = 100.0
"""TFG's style guider returns −‖G − Gₛ‖_F / 100 (``tasks/networks/style_CLIP.py`` line 59)."""


def log_probability(losses: torch.Tensor, kind: str) -> torch.Tensor:
    """The guider's log p of objective values L.

    Args:
        losses: L per image.
        kind: ``norm``: −√L/100 (TFG's style_CLIP: −‖G − Gₛ‖_F/100 when L = ‖G − Gₛ‖²_F; √ of max(L, 1e-12),
            finite gradient at a perfect match); ``squared``: −L.

    Returns:
        log p per image.
    """
    if kind == "norm":
        return -losses.clamp_min(NORM_FLOOR).sqrt() / LOG_PROB_DIVISOR
    return -losses


@dataclass
class TFGGuidance(GuidanceMethod):
    """The ``tfg`` rule: Training-Free Guidance with its four knobs (the module docstring: its reference and deviations)."""

    name = "tfg"
    paper = "Ye et al. 2024, TFG: Unified Training-Free Guidance for Diffusion Models"
    reference = "YWolfeee/Training-Free-Guidance methods/tfg.py TFGGuidance.guide_step"
    differentiates_unet = True
    clamp = "in-graph [-1, 1], as the reference (_predict_x0 with clip_x0=True)"
    clip_style_layer = "hidden2"
    latent_note = "tasks/base.py decodes inside the guider: ρ through decoder and UNet, μ iterations on z0 through the decoder; latent x̂0 not clamped (its clip_x0=False)"
    scale_range = (90.0, 3000.0)
    """Re-measured for ``log_prob norm`` (−√L/100) with ``python bench/scale_range.py --methods tfg --styles
    starry_night,the_scream --seeds 0,1 --steps 30 --factors 0.03,0.1,0.3,1,3,10 --reference 32`` around 300:
    Gram 1.67 at 90 (≤ 0.9 × 1.94 unguided; 30 gives 1.91), realism 0.074 at 3000 (under 0.082). With log p = −L
    it was 0.3–9."""
    note = "the reference samples with DDIM eta = 1; here the shared sampler's eta (0 by default)"
    search_factors = {"rho": 2.0, "mu": 2.0, "variance": 10.0}  # TFG's searching.py: factors,
    search_start = {"scale": 1.0, "rho": 0.25, "mu": 0.25, "variance": 0.001}  # init_* values,
    search_caps = {"rho": 8.0, "mu": 8.0, "variance": 1.0}  # and max_* caps
    scale: float = 500.0
    rho: float = knob(1.0, "mean guidance through the UNet (times --scale)")
    mu: float = knob(0.25, "x0-space guidance (times --scale)")
    variance: float = knob(0.001, "std of the Gaussian smoothing of the loss (gamma)")
    inner_steps: int = knob(4, "x0-space iterations N_iter")
    mc_samples: int = knob(1, "Monte-Carlo samples of the smoothed loss")
    rho_schedule: str = knob("increase", "schedule of rho over the steps", choices=SCHEDULES)
    mu_schedule: str = knob("increase", "schedule of mu over the steps", choices=SCHEDULES)
    variance_schedule: str = knob("decrease", "schedule of gamma over the steps", choices=VARIANCE_SCHEDULES)
    log_prob: str = knob(
        "norm",
        "the guider's log p of the loss L: -sqrt(L)/100 (norm, TFG's style guider, unsquared) or -L (squared)",
        choices=LOG_PROBS,
    )

    def __post_init__(self):
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        for name in ("rho", "mu", "variance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be finite and >= 0, got {value}")
        for name in ("inner_steps", "mc_samples"):
            value = getattr(self, name)
            if int(value) != value or value < (1 if name == "mc_samples" else 0):
                raise ConfigError(
                    f"{name.replace('_', ' ')} must be an integer >= {1 if name == 'mc_samples' else 0}, got {value}"
                )
            setattr(self, name, int(value))
        for name in ("rho_schedule", "mu_schedule"):
            if getattr(self, name) not in SCHEDULES:
                raise ConfigError(
                    f"unknown {name.replace('_', ' ')} {getattr(self, name)!r}; choose one of {', '.join(SCHEDULES)}"
                )
        if self.variance_schedule not in VARIANCE_SCHEDULES:
            raise ConfigError(f"unknown variance schedule {self.variance_schedule!r}; choose decrease or constant")
        if self.log_prob not in LOG_PROBS:
            raise ConfigError(f"unknown log prob {self.log_prob!r}; choose one of {', '.join(LOG_PROBS)}")

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        mean = int(self.rho > 0)
        inner = self.inner_steps * int(self.mu > 0)
        k = self.mc_samples if self.variance > 0 else 1
        return Evaluations(
            unet_forward=1,
            unet_backward=mean,
            objective_forward=(mean + inner) * k,
            objective_backward=(mean + inner) * k,
        )

    # -- schedules --------------------------------------------------------------------------
    def _weights(self, ctx: StepContext, kind: str) -> float:
        """s_i·n/Σ s at this step for a schedule ``kind`` (cached per sampling call)."""
        key = f"tfg_{kind}"
        if key not in ctx.state:
            timesteps = ctx.schedule.scheduler.timesteps
            alphas = torch.stack(
                [ctx.schedule.alpha_bar(t) / ctx.schedule.alpha_bar_prev(t, i) for i, t in enumerate(timesteps)]
            )
            s = {"increase": alphas, "decrease": 1 - alphas, "constant": torch.ones_like(alphas)}[kind]
            ctx.state[key] = (s * len(s) / s.sum()).tolist()
        return ctx.state[key][ctx.index]

    def _smoothed(
        self, ctx: StepContext, x0: torch.Tensor, offsets: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ℓ̃ per image, log mean_k exp(log p(x0 + offset_k)), and the mean loss over the offsets.

        ℓ̃ = log p for one zero offset; the mean loss is what the step reports.
        """
        if offsets is None:
            loss = ctx.loss(x0)
            return log_probability(loss, self.log_prob), loss
        k = offsets.shape[0]
        batch = x0.shape[0]
        losses = ctx.loss((x0.unsqueeze(0) + offsets).reshape(k * batch, *x0.shape[1:])).view(k, batch)
        return torch.logsumexp(log_probability(losses, self.log_prob), dim=0) - math.log(k), losses.mean(0)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        schedule = ctx.schedule
        ab, ab_prev = schedule.alpha_bar(ctx.t), schedule.alpha_bar_prev(ctx.t, ctx.index)
        rho = self.scale * self.rho * self._weights(ctx, self.rho_schedule)
        mu = self.scale * self.mu * self._weights(ctx, self.mu_schedule)
        gamma = self.variance * ((1 - ab).sqrt().item() if self.variance_schedule == "decrease" else 1.0)
        offsets = None
        if gamma > 0:
            offsets = torch.stack(
                [gamma * ctx.noise(tuple(x.shape[1:]), f"variance{k}") for k in range(self.mc_samples)]
            ).to(x)
        d_prev = None
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(rho > 0)
            out = ctx.unet(x_in)
            x0 = ctx.clamp(ctx.split(out, x_in)[1])  # in the graph: _predict_x0 with clip_x0
            if rho > 0:  # tfg.py:103-111
                logp, loss = self._smoothed(ctx, x0, offsets)
                grad = ctx.check_finite(loss.detach(), torch.autograd.grad(logp.sum(), x_in)[0], self.scale)
                d_prev = rho * grad / (ab / ab_prev).sqrt()
        out, x0 = out.detach(), x0.detach()
        moved = x0
        for _ in range(self.inner_steps if mu > 0 else 0):  # tfg.py:118-123
            with torch.enable_grad():
                leaf = moved.detach().requires_grad_(True)
                logp, loss = self._smoothed(ctx, leaf, offsets)
                grad = ctx.check_finite(loss.detach(), torch.autograd.grad(logp.sum(), leaf)[0], self.scale)
            moved = moved + mu * grad
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # ε̂ re-derived from the clamped x̂0
        base = ctx.base_step(out, x)
        return ctx.finish(base, d_x0=moved - base.x0, d_eps=eps - base.eps, d_prev=d_prev)
