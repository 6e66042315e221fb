"""``lgd``: Loss-Guided Diffusion with Monte-Carlo samples, LGD-MC (Song et al., ICML 2023).

Paper: "Loss-Guided Diffusion Models for Plug-and-Play Controllable Generation".

Follows TFG's implementation of it, YWolfeee/Training-Free-Guidance ``methods/lgd.py``
``LGDGuidance.guide_step`` (lines 13-73; the LGD baseline of TFG's benchmark, chosen by a
``guidance_name`` ``lgd_<n>``, ``utils/utils.py`` lines 112-113):

* the unguided step from the model's ε̂: x′_{t−1} = DDIM(x_t, ε̂, η) (lines 29-30,
  ``_predict_x_prev_from_eps``; here the scheduler's step, with the unguided run's noise);
* n = ``mc_samples`` offsets δ_k = √(1 − ᾱ_t)·ξ_k, ξ_k ~ N(0, I) (line 36: r_t = √(1 − ᾱ_t), fixed),
  here from a per-image stream of the run's seed per sample;
* x̂0(x_t) = (x_t − √(1 − ᾱ_t)·ε̂(x_t))/√ᾱ_t with its graph back through the UNet, not clamped (line 51);
* G = (1/n)·∇_{x_t} Σ_images log Σ_k exp(log p(x̂0 + δ_k)) (lines 52-67: ``logsumexp`` over the samples,
  its constant −log n dropped, then the gradient divided by n "to get the expectation"), not rescaled
  (line 68: ``rescale_grad`` is the identity without a ``node_mask``, ``tasks/utils.py`` lines 20-32);
* x_{t−1} = x′_{t−1} + s·G (line 71), s = ``scale`` (the reference's ``guidance_strength``).

log p is the guider's, as in :mod:`.tfg` (``log_prob``): ``norm`` (default) −√L/100, TFG's style guider
(``tasks/networks/style_CLIP.py`` line 59, −‖G − Gₛ‖_F/100 when L = ‖G − Gₛ‖²_F), or ``squared`` −L.
With the relative ``gram`` loss √L = ‖G − Gₛ‖_F/‖Gₛ‖_F, so the reference's strengths need ×‖Gₛ‖_F at
n = 1 (at n > 1 the log-sum-exp weights also change with the loss's scale).

On latent models the n offsets are in latent space and each x̂0 + δ_k is decoded with gradient (n·B
decodes, back through the decoder and the UNet on the CFG batch), as the reference's guider does
through its processor ``vae.decode(z / scaling_factor)`` (``tasks/base.py`` line 36). TFG has no LGD
script: its Stable Diffusion harness runs CFG 7.5, 100 steps, η = 1; n comes from the method's name
(the code's example ``lgd_10``: the default here), the strength from a search (0.25 ×2 up to 8,
``searching.py``).

Deviations: the reference calls the UNet twice (once without a graph for the step, once with it for the
guidance; the same values), here once, with its graph; its step noise is drawn from the same generator
just before the Monte-Carlo draws, here from separate streams; the 1/n on the gradient is the code's
(the paper's estimator is the gradient of the log of the mean, without it) and is kept; on pixel models
the loss reads x̂0 + δ_k through the sampler's straight-through clamp (the reference's guider reads it
as it is) and the scheduler's step clips x̂0 when its config says ``clip_sample`` (the reference's does
not); on latent models the decoded image is clamped straight-through (the reference does not clamp).
Memory: the n decodes keep their graphs at once (``--vae-checkpointing`` lowers it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob
from .tfg import LOG_PROBS, log_probability


@dataclass
class LGDGuidance(GuidanceMethod):
    """The ``lgd`` rule: LGD-MC, Monte-Carlo loss guidance (the module docstring: its reference and deviations)."""

    name = "lgd"
    paper = "Song et al. 2023, Loss-Guided Diffusion Models for Plug-and-Play Controllable Generation (LGD-MC)"
    reference = "YWolfeee/Training-Free-Guidance methods/lgd.py LGDGuidance.guide_step"
    differentiates_unet = True
    clamp = "straight-through; reference: none (x̂0 + δ read as it is)"
    latent_note = "n decodes of x̂0 + √(1−ᾱ_t)·δ_k with gradient, back through the decoder and the UNet (CFG batch); TFG's SD harness: CFG 7.5, 100 steps, eta 1"
    clip_style_layer = "hidden2"
    note = "TFG's code divides the gradient by n; the reference samples DDIM eta = 1, here the shared sampler's eta"
    scale_range = (4500.0, 150000.0)
    """Measured with ``python bench/scale_range.py --methods lgd --styles starry_night,the_scream --seeds 0,1
    --steps 30 --factors 0.03,0.1,0.3,1,3,10 --reference 32`` around 15000 (n = 10): Gram 1.53 at 4500 (≤ 0.9 ×
    1.94 unguided; 1500 gives 1.80), realism 0.080 at 150000 (under 0.082; faces barely there). Large because
    log p = −√L/100 of a relative loss is small and the code divides by n."""
    scale: float = 25000.0
    mc_samples: int = knob(10, "Monte-Carlo samples n of x0-hat + sqrt(1 - alpha_bar)*delta (the reference's lgd_n)")
    log_prob: str = knob(
        "norm",
        "the guider's log p of the loss L: -sqrt(L)/100 (norm, TFG's style guider, unsquared) or -L (squared)",
        choices=LOG_PROBS,
    )

    def __post_init__(self):
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        if int(self.mc_samples) != self.mc_samples or self.mc_samples < 1:
            raise ConfigError(f"mc samples must be an integer >= 1, got {self.mc_samples}")
        self.mc_samples = int(self.mc_samples)
        if self.log_prob not in LOG_PROBS:
            raise ConfigError(f"unknown log prob {self.log_prob!r}; choose one of {', '.join(LOG_PROBS)}")

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass (``stylediff methods`` prints them)."""
        n = self.mc_samples
        return Evaluations(unet_forward=1, unet_backward=1, objective_forward=n, objective_backward=n)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        n, batch = self.mc_samples, x.shape[0]
        radius = (1 - ctx.schedule.alpha_bar(ctx.t)).sqrt().to(x)  # lgd.py:36, r_t = √(1 − ᾱ_t)
        offsets = torch.stack([ctx.noise(tuple(x.shape[1:]), f"lgd{k}") for k in range(n)]).to(x) * radius
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            out = ctx.unet(x_in)
            x0 = ctx.split(out, x_in)[1]  # lgd.py:51, no clamp
            losses = ctx.loss((x0.unsqueeze(0) + offsets).reshape(n * batch, *x0.shape[1:])).view(n, batch)
            logp = torch.logsumexp(log_probability(losses, self.log_prob), dim=0)  # lgd.py:61-65
            grad = torch.autograd.grad(logp.sum(), x_in)[0] / n  # lgd.py:67
        grad = ctx.check_finite(losses.mean(0).detach(), grad, self.scale)
        return ctx.finish(ctx.base_step(out.detach(), x), d_prev=self.scale * grad)  # lgd.py:71
