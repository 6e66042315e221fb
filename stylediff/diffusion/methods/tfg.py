"""``tfg``: Training-Free Guidance (Ye et al., NeurIPS 2024, "TFG: Unified Training-Free Guidance for
Diffusion Models"), the unified rule with its four knobs.

Follows YWolfeee/Training-Free-Guidance ``methods/tfg.py`` ``TFGGuidance.guide_step`` (with
``tilde_get_guidance`` and the schedules of ``get_rho``/``get_mu``/``get_std``), log p = −L:

* variance guidance (γ): the loss smoothed over Gaussian perturbations of its input,
  L̃(x) = −log mean_k exp(−L(x + γ_t·δ_k)), K = ``mc_samples`` draws δ_k ~ N(0, I) per pass from a
  per-image stream of the run's seed; γ_t = γ·√(1 − ᾱ_t) (``variance_schedule`` decrease) or γ;
* mean guidance through the UNet (ρ): Δ_t = −ρ_t·∇_{x_t}L̃(x̂0(x_t));
* x̂0-space iterations (μ, N_iter = ``inner_steps``): from x̂0 clamped to [-1, 1],
  x̂0 ← x̂0 − μ_t·∇L̃(x̂0) N_iter times (the gradient re-evaluated at each point), Δ_0 the total change;
* x_{t−1} = DDIM(x̂0, ε̂) + Δ_t/√α_t + √ᾱ_prev·Δ_0, α_t = ᾱ_t/ᾱ_prev; N_recur = ``recurrence`` passes
  with forward-process re-noising between them;
* schedules over the n inference steps: s_i = α_i (increase), 1 − α_i (decrease) or 1 (constant), and
  ρ_i = ρ·s_i·n/Σ s (likewise μ_i), so that their mean over the trajectory is ρ (μ).

On latent models: as the reference's Stable Diffusion tasks (``tasks/base.py``: the guider's processor
is ``vae.decode(z / scaling_factor)``), both terms see L(decode(·)): ρ back through the decoder and the
UNet, μ's iterations on z0 through the decoder only, γ's perturbations in latent space; x̂0 is not
clamped (its ``clip_x0=False``; ``ctx.clamp`` is the identity for latents). Its SD style script uses
ρ = 0.25, μ = 2, γ = 0.1, N_iter = 4, 100 steps, η = 1.

``scale`` multiplies ρ and μ (the strength one sweeps; the beam search of ``stylediff search`` tunes
ρ, μ and γ themselves). Defaults: the repository's 32 px CIFAR-10 setting (ρ = 1, μ = 0.25,
γ = 0.001, N_iter = 4, N_recur = 1, K = 1; increase/increase/decrease). With ρ = 0, N_iter = 1,
γ = 0 and a constant μ schedule the rule is exactly TFG's MPGD baseline, ``mpgd`` with
``step_schedule constant`` (tested); the original MPGD's x̂0 step s/√ᾱ_prev is not one of TFG's
schedules, so "MPGD is a special case of TFG" holds up to the step size's schedule. Deviation: TFG
samples with DDIM η = 1 in all its scripts; here the sampler's η (0 by default).

Clamp: as the reference (``methods/base.py`` ``BaseGuidance._predict_x0`` with its default
``clip_x0=True``, ``clip_sample_range=1``), x̂0 is clamped to [-1, 1] *inside* the graph of the mean
guidance, so pixels saturated in x̂0 get no gradient (every other method reads x̂0 through the
sampler's straight-through clamp), and the x̂0 iterations and the DDIM step start from the clamped
x̂0 with ε̂ re-derived from it (``_predict_x_prev_from_zero``). The x̂0 iterates may leave [-1, 1]; the
loss reads them through the straight-through clamp (the reference's guider reads them as they are).

Search (``stylediff search``): ``search_factors`` are ``searching.py``'s factors (ρ ×2, μ ×2, γ ×10);
its starting values (ρ 0.25, μ 0.25, γ 0.001) and caps (8, 8, 1) are ``search_start`` and
``search_caps`` here, with ``scale`` held at 1 (not searched), so the searched ρ, μ, γ are TFG's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob

SCHEDULES = ("increase", "decrease", "constant")
VARIANCE_SCHEDULES = ("decrease", "constant")


@dataclass
class TFGGuidance(GuidanceMethod):
    name = "tfg"
    paper = "Ye et al. 2024, TFG: Unified Training-Free Guidance for Diffusion Models"
    reference = "YWolfeee/Training-Free-Guidance methods/tfg.py TFGGuidance.guide_step"
    differentiates_unet = True
    clamp = "in-graph [-1, 1], as the reference (_predict_x0 with clip_x0=True)"
    latent_note = "tasks/base.py decodes inside the guider: ρ through decoder and UNet, μ iterations on z0 through the decoder; latent x̂0 not clamped (its clip_x0=False)"
    scale_range = (0.3, 9.0)
    note = "the reference samples with DDIM eta = 1; here the shared sampler's eta (0 by default)"
    search_factors = {"rho": 2.0, "mu": 2.0, "variance": 10.0}  # TFG's searching.py: factors,
    search_start = {"scale": 1.0, "rho": 0.25, "mu": 0.25, "variance": 0.001}  # init_* values,
    search_caps = {"rho": 8.0, "mu": 8.0, "variance": 1.0}  # and max_* caps
    scale: float = 1.5
    rho: float = knob(1.0, "mean guidance through the UNet (times --scale)")
    mu: float = knob(0.25, "x0-space guidance (times --scale)")
    variance: float = knob(0.001, "std of the Gaussian smoothing of the loss (gamma)")
    inner_steps: int = knob(4, "x0-space iterations N_iter")
    mc_samples: int = knob(1, "Monte-Carlo samples of the smoothed loss")
    rho_schedule: str = knob("increase", "schedule of rho over the steps", choices=SCHEDULES)
    mu_schedule: str = knob("increase", "schedule of mu over the steps", choices=SCHEDULES)
    variance_schedule: str = knob("decrease", "schedule of gamma over the steps", choices=VARIANCE_SCHEDULES)

    def __post_init__(self):
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

    def pass_evaluations(self) -> Evaluations:
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

    def _smoothed(self, ctx: StepContext, x0: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        """L̃ per image: −log mean_k exp(−L(x0 + offset_k)) (= L for one zero offset)."""
        if offsets is None:
            return ctx.loss(x0)
        k = offsets.shape[0]
        batch = x0.shape[0]
        losses = ctx.loss((x0.unsqueeze(0) + offsets).reshape(k * batch, *x0.shape[1:])).view(k, batch)
        return -(torch.logsumexp(-losses, dim=0) - math.log(k))

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
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
            if rho > 0:
                loss = self._smoothed(ctx, x0, offsets)
                grad = ctx.check_finite(loss.detach(), torch.autograd.grad(loss.sum(), x_in)[0], self.scale)
                d_prev = -rho * grad / (ab / ab_prev).sqrt()
        out, x0 = out.detach(), x0.detach()
        moved = x0
        for _ in range(self.inner_steps if mu > 0 else 0):
            with torch.enable_grad():
                leaf = moved.detach().requires_grad_(True)
                loss = self._smoothed(ctx, leaf, offsets)
                grad = ctx.check_finite(loss.detach(), torch.autograd.grad(loss.sum(), leaf)[0], self.scale)
            moved = moved - mu * grad
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # ε̂ re-derived from the clamped x̂0
        base = ctx.base_step(out, x)
        return ctx.finish(base, d_x0=moved - base.x0, d_eps=eps - base.eps, d_prev=d_prev)
