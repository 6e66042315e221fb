"""``attention_distillation``: Attention Distillation (Zhou, Gao, Chen and Huang, CVPR 2025).

Paper: "Attention Distillation: A Unified Approach to Visual Characteristics Transfer".

Follows xugao97/AttentionDistillation (commit ``142800c389bb4dff41e7f79cb9c2e88c981bbec2``):
``losses.py`` ``ad_loss`` (``:10-30``) and ``q_loss`` (``:34-38``); ``pipeline_sd.py`` ``ADPipeline.AD``
(``:621-673``) called after each ``scheduler.step`` of ``ADPipeline.sample`` (``:270-274``), and
``extract_feature`` (``:675-690``); the attention capture of ``utils.py`` ``register_attn_control``
(``:11-119``), here the model adapter's hook (:mod:`stylediff.diffusion.attention`).

The loss, on self-attention layers l of the UNet at timestep τ (q, k, v: the layer's queries, keys and
values for the optimised x; K_s, V_s: those of the style image's latent noised to τ; q_c: the content's
queries likewise):

    L(x) = Σ_l mean |SDPA(q, k, v) − sg[SDPA(a·q, K_s, V_s)]| + w · Σ_l mean |q − sg[q_c]|

(sg: no gradient; the target is recomputed from the current q at every iteration; a = ``attn_scale``;
means over heads, tokens and channels; w = ``query_weight`` only when the run has a content image).

Sample mode (this method): after the step's own ``scheduler.step`` gives x_{t−1}, a new Adam with
learning rate ``scale`` takes ``iterations`` steps on x_{t−1} against L at τ = the timestep of x_{t−1}
(``max(t − T/n, 0)``); the style (and content) latent is noised to τ with a fresh draw at every step; on a
text model the UNet's attention calls use the empty prompt without classifier-free guidance (the
denoising call keeps its prompt and CFG). ``adain on`` first renormalises x_{t−1} per channel to the
noised style latent's mean and standard deviation (``utils.py:133-143``), at every step, as the
reference's style-specific text-to-image does. ``scale`` 0 is the unguided sample.

Optimise mode (``ad_mode optimize``, the reference's style transfer and texture synthesis,
``ADPipeline.optimize``, ``pipeline_sd.py:281-368``) is not a sampling loop: :mod:`stylediff.diffusion.distillation`
runs it (one Adam over the whole run, the clean content or noise optimised against L at each DDIM
timestep with the clean style and content latents).

Layers: the reference's ``Controller(self_layers=(10, 16))`` on SD 1.5 and ``(64, 70)`` on SDXL are the
last 6 self-attention layers in forward order, all in the decoder; ``attention_layers`` N takes the last
min(N, n) of the n self-attention layers in the UNet's up blocks (both demo models and the tiny SD test
UNet have 2 there, so all their decoder self-attention).

Reference settings (``ad.ipynb``): style transfer optimise, lr 0.05, 1 iteration, 200 steps, w = 0.25
(cell 8); texture synthesis optimise, lr 0.05, 300 steps (cell 2), or sample, lr 0.05, 3 iterations,
CFG 1, prompt "" (cell 4); style-specific text-to-image sample, lr 0.015, 3 iterations, CFG 7.5, AdaIN
(cell 11); ``sample``'s signature default w = 0.25 (``:99-130``). Defaults here: ``iterations`` 3 and w 0.25
are the reference's; ``scale`` (the learning rate) 0.005 is the geometric middle of the range
``bench/scale_range.py`` measures on the faces model from noise, 0.003–0.01, as every method's. The
reference's 0.05 and 0.015 (tuned for SD 1.5's 64×64 latents) destroy the 32 px demo models' samples.
For style transfer (a content start and the query term keep the face) 0.01 is the demo models' setting:
on held-out faces at strength 0.6 the pixel model keeps the face in the painting's palette at 0.01 and
loses it to texture from 0.02; the latent demo model (8×8 latents) gains a little style up to 0.03 and
breaks into blotches from 0.1 (docs/part2/methods/attention_distillation.md). On Stable Diffusion pass
the reference's ``--scale 0.05`` (transfer, texture) or 0.015 (text-to-image).

Deviations: the loss is summed over the batch's images (each image's loss is the reference's loss on
that image alone), where the reference averages it over the batch: with Adam's ε an image's result then
depends on its batch companions, here it does not (identical at batch 1); the noise that brings the
style and content latents to τ is each image's own draw (``ctx.noise``), where the reference draws one
for the batch; the style image is resized to the model's image size bilinearly (the reference: bicubic
to 512²); with a content image the run starts from the sampler's content start (SDEdit or inversion),
where the reference's ``sample`` with a content image starts from noise; the reference runs in bf16 with
fp32 latents (``--precision bf16``), here fp32 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError
from .base import Evaluations, GuidanceMethod, StepContext, knob

ADAIN = ("off", "on")
AD_MODES = ("sample", "optimize")


def distillation_loss(records, style, content=None, query_weight: float = 0.25, attn_scale: float = 1.0):
    """L per image ``(N,)``: Σ_l mean|out − sg[SDPA(a·q, K_s, V_s)]| + w·Σ_l mean|q − sg[q_c]|.

    ``losses.py`` ``ad_loss`` + ``weight · q_loss``, each image's own.

    Args:
        records: the optimised x's :class:`~..attention.AttentionRecord` per layer (a batch of N).
        style: the style's records per layer (a batch of N, or of 1 shared).
        content: the content's records per layer (likewise), or None: no query term.
        query_weight: w.
        attn_scale: a.

    Returns:
        ``(N,)``.
    """
    n = records[0].q.shape[0]
    loss = 0
    for own, reference in zip(records, style):
        keys, values = (reference.k.expand(n, -1, -1, -1), reference.v.expand(n, -1, -1, -1))
        target = F.scaled_dot_product_attention(own.q * attn_scale, keys, values).detach()
        loss = loss + (own.out - target).abs().float().flatten(1).mean(1)
    if content is None:
        return loss
    queries = 0
    for own, reference in zip(records, content):
        queries = queries + (own.q - reference.q.detach()).abs().float().flatten(1).mean(1)
    return loss + queries * query_weight


def adain(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The reference's ``utils.py`` ``adain`` (``:133-143``) per image.

    Each channel of ``source`` renormalised to the mean and (unbiased) standard deviation of the same
    channel of ``target`` (image i's own).

    Args:
        source: ``(N, C, H, W)``.
        target: ``(N, C, H, W)`` or ``(1, C, H, W)``.
        eps: added to the source's standard deviation.

    Returns:
        ``(N, C, H, W)``.
    """
    mean, std = source.mean(dim=(2, 3), keepdim=True), source.std(dim=(2, 3), keepdim=True)
    target_mean, target_std = target.mean(dim=(2, 3), keepdim=True), target.std(dim=(2, 3), keepdim=True)
    return (source - mean) / (std + eps) * target_std + target_mean


def optimise(z: torch.Tensor, optimizer, iterations: int, features, style, content, query_weight, attn_scale):
    """``iterations`` Adam steps of ``optimizer`` on ``z`` (which it holds) against :func:`distillation_loss`.

    Args:
        z: the optimised tensor.
        optimizer: an Adam holding ``z``.
        iterations: how many steps.
        features: ``features(z)`` gives z's attention records.
        style: the style's records.
        content: the content's records, or None.
        query_weight: w.
        attn_scale: a.

    Returns:
        The loss per image of the last iteration (before its step).
    """
    for _ in range(iterations):
        optimizer.zero_grad()
        with torch.enable_grad():
            loss = distillation_loss(features(z), style, content, query_weight, attn_scale)
            loss.sum().backward()
        optimizer.step()
    return loss.detach()


@dataclass
class AttentionDistillation(GuidanceMethod):
    """The ``attention_distillation`` rule: Adam steps on x_{t−1} against the UNet's self-attention (the module docstring: its reference and deviations)."""

    name = "attention_distillation"
    paper = "Zhou et al. 2025, Attention Distillation: A Unified Approach to Visual Characteristics Transfer"
    reference = "xugao97/AttentionDistillation pipeline_sd.py ADPipeline.AD/optimize, losses.py ad_loss, q_loss"
    differentiates_unet = True
    needs_objective = False
    needs_references = ("style",)
    clamp = "none: the loss reads the UNet's self-attention of x_{t-1}, not x̂0 (as the reference)"
    latent_note = "the reference's own setting: Adam on the latent x_{t-1}, the UNet's attention on the null prompt"
    note = "Adam on x_{t-1} after each step (lr = scale); the style latent's keys/values as the attention target"
    scale_range = (0.003, 0.01)
    scale: float = 0.005
    iterations: int = knob(3, "Adam iterations per step (the reference's 3; ad_mode optimize: per timestep, its 1)")
    query_weight: float = knob(0.25, "weight w of the content term on the queries (used with a content image)")
    attn_scale: float = knob(1.0, "query scale a inside the attention target SDPA(a·q, K_s, V_s) (the reference's 1)")
    attention_layers: int = knob(6, "the last N self-attention layers of the UNet's decoder (the reference's 6)")
    adain: str = knob("off", "AdaIN of x_{t-1} to the noised style latent before each step", choices=ADAIN)
    ad_mode: str = knob(
        "sample", "sample: guide each sampling step; optimize: the reference's transfer engine", choices=AD_MODES
    )

    def __post_init__(self):
        """Check the knobs (a one-line ConfigError names a bad value)."""
        super().__post_init__()
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ConfigError(f"iterations must be an integer >= 1, got {self.iterations}")
        if self.attention_layers < 1:
            raise ConfigError(f"attention_layers must be >= 1, got {self.attention_layers}")
        if self.adain not in ADAIN or self.ad_mode not in AD_MODES:
            raise ConfigError(f"adain must be one of {ADAIN} and ad_mode one of {AD_MODES}")
        self.iterations = int(self.iterations)
        self._content = False  # whether the last run read a content image (one more UNet call a step)

    def pass_evaluations(self) -> Evaluations:
        """Network evaluations of one guided pass.

        The denoising call (sample mode), the style's (and content's) attention, then per iteration one
        UNet forward and backward.
        """
        calls = (1 if self.ad_mode == "sample" else 0) + (2 if self._content else 1)
        return Evaluations(unet_forward=calls + self.iterations, unet_backward=self.iterations)

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass of the rule from x_t: returns x_{t−1} (the module docstring states the update)."""
        with torch.no_grad():
            base = ctx.base_step(ctx.unet(x), x)
        tau = ctx.prev_timestep
        layers = ctx.attention_layers(self.attention_layers)
        n, shape = x.shape[0], tuple(x.shape[1:])
        scheduler = ctx.schedule.scheduler
        timesteps = torch.full((n,), tau, dtype=torch.long)

        def noised(name: str) -> torch.Tensor:
            clean = ctx.reference(name).expand(n, *shape)
            return scheduler.add_noise(clean, ctx.noise(shape, f"ad_{name}").to(clean), timesteps)

        prev = base.prev
        if self.adain == "on":
            prev = adain(prev, noised("style"))
        with torch.no_grad():
            style = ctx.attention(noised("style"), tau, layers)
            self._content = ctx.reference("content") is not None
            content = ctx.attention(noised("content"), tau, layers) if self._content else None
        z = prev.detach().float().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=self.scale)
        loss = optimise(
            z,
            optimizer,
            self.iterations,
            lambda latent: ctx.attention(latent, tau, layers),
            style,
            content,
            self.query_weight,
            self.attn_scale,
        )
        ctx.record["ad_loss"] = loss.tolist()
        distilled = z.detach().to(base.prev)
        ctx.finish(base, d_prev=distilled - base.prev)  # records the step's size; base + (z − base) is not z bitwise
        return distilled
