"""What a diffusion model is to the sampler: the seam between pixel-space and latent models.

A model adapter owns three things, and nothing else knows which kind of model it is:

* ``sample_shape``: the shape of one x_t (pixels, or latents);
* ``denoise(x, t)``: the model output at x_t with the conditioning and classifier-free guidance folded
  in (``out = out_u + w·(out_c − out_u)``, one UNet call on the doubled "CFG batch", as diffusers'
  ``StableDiffusionPipeline.__call__`` does it), returned with the CFG correction ``w·(out_c − out_u)``
  in the model's output space (ε, v or x0; None without CFG). The sampler hands methods its ε-space
  value w·(ε_c − ε_u) (``Schedule.eps_change``), the quantity FreeDoM's and MPGD's Stable Diffusion
  samplers take their step size from, for every prediction type;
* ``to_image(x̂0)``: model-space x̂0 → images ``(N, 3, H, W)`` in [0, 1], differentiable: the identity
  (with a straight-through clamp to [-1, 1]) for pixel models; for latent ones the decoding as the
  model's pipeline does it (FreeDoM/UGD's ``decode_first_stage_with_grad``): ``decode(x̂0 /
  scaling_factor)``, and for SDXL ``decode(x̂0·latents_std/scaling_factor + latents_mean)`` when the VAE
  config has them, in fp32 under fp16 autocast when it says ``force_upcast``
  (``StableDiffusionXLPipeline.__call__``), then the same straight-through clamp (a stated deviation:
  none of the Stable Diffusion references clamps the decoded image).

The adapter also owns what content starts and attention-based rules need of the model
(:meth:`PixelModel.encode`: images → model space, as the img2img pipeline draws it;
:meth:`PixelModel.denoise_without_cfg` for DDIM inversion; :meth:`PixelModel.attention` and
:meth:`PixelModel.attention_hook`: the UNet's self-attention, :mod:`.attention`), so neither the sampler
nor a method knows which kind of model it runs.

:class:`~.sampler.GuidedSampler` owns the loop and the objective's resize; the guidance methods
(:mod:`.methods`) own the rules and see x̂0 only through ``ctx.loss`` = L(to_image(x̂0)), so every
method, the callback, recurrence, windows and the OOM split work unchanged for both kinds.
:mod:`.loading` owns reading components from disk or the hub cache; :func:`make_adapter` turns a
loaded model plus prompt, CFG scale and memory options into an adapter.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from ..core.errors import ConfigError
from .attention import AttentionHook, AttentionRecord, Edit, decoder_layers

DEFAULT_CFG_SCALE = 7.5
"""Classifier-free guidance scale of diffusers' Stable Diffusion pipelines and of TFG's Stable Diffusion
harness (``diffusion/stable_diffusion.py``); FreeDoM's and MPGD's style scripts run 5, Universal
Guidance's 3 (``--cfg-scale``; docs/part2/sampler.md lists each reference's)."""


class Denoised(NamedTuple):
    """What ``denoise`` returns: the model output after classifier-free guidance, and its CFG correction."""

    output: torch.Tensor  # the model output (ε, x0 or v) after classifier-free guidance
    correction: torch.Tensor | None  # w·(out_c − out_u) of CFG in the output's space, None without CFG


def straight_through_clamp(x: torch.Tensor) -> torch.Tensor:
    """The value of x clamped to [-1, 1]; where x has a graph, its gradient passes saturated entries too.

    Args:
        x: any tensor.

    Returns:
        ``x + (clamp(x) − x).detach()`` with grad enabled, else ``clamp(x)``.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return x + (x.clamp(-1, 1) - x).detach()
    return x.clamp(-1, 1)


class PixelModel:
    """A pixel-space ``UNet2DModel`` (or any module with its ``config`` and ``forward(x, t).sample``).

    Args:
        unet: the UNet.
        info: its provenance (the sidecar's).
    """

    latent = False

    def __init__(self, unet, info: dict[str, Any] | None = None):
        self.unet = unet
        self.info = info or {}

    @property
    def device(self) -> torch.device:
        """The UNet's device."""
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype."""
        return self.unet.dtype

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """One x_t's shape: ``(channels, H, W)``."""
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, *size)

    @property
    def image_shape(self) -> tuple[int, int]:
        """The images' ``(H, W)`` (a pixel model's sample shape)."""
        return tuple(self.sample_shape[1:])

    @property
    def cfg(self) -> bool:
        """Whether ``denoise`` runs classifier-free guidance."""
        return False

    @property
    def cfg_batch(self) -> int:
        """UNet inputs per image in one denoiser call (2 with classifier-free guidance)."""
        return 1

    def denoise(self, x: torch.Tensor, t) -> Denoised:
        """The model output at x_t (conditioning and classifier-free guidance folded in).

        Args:
            x: x_t in model space.
            t: the timestep.

        Returns:
            The output (ε, v or x0) and the CFG correction ``w·(out_c − out_u)`` (None without CFG).
        """
        return Denoised(self.unet(x, t).sample, None)

    def clamp(self, x0: torch.Tensor) -> torch.Tensor:
        """The valid range of a model-space x̂0 (methods that clamp x̂0 call this): [-1, 1] pixels."""
        return x0.clamp(-1, 1)

    def to_image(self, x0: torch.Tensor) -> torch.Tensor:
        """Model-space x̂0 → images in [0, 1], differentiable (pixels: a straight-through clamp to [-1, 1]).

        Args:
            x0: the predicted clean sample in model space.

        Returns:
            ``(N, 3, H, W)`` in [0, 1].
        """
        return straight_through_clamp(x0) / 2 + 0.5

    def final_images(self, x: torch.Tensor) -> torch.Tensor:
        """The sampler's last x as images in [0, 1] (as the pipelines post-process it)."""
        return (x.float() / 2 + 0.5).clamp(0, 1)

    def autoencode(self, x0: torch.Tensor) -> torch.Tensor:
        """``encode(decode(x̂0))``, MPGD's projection: a latent model's only.

        Raises:
            ConfigError: always, for a pixel model.
        """
        raise ConfigError("the autoencoder projection needs a latent model with an encoder (a VAE)")

    # -- content images and the UNet's attention (content starts, attention-based rules) -----------
    def encode(self, images: torch.Tensor, generators: list | None = None) -> torch.Tensor:
        """Images → model space: ``2x − 1`` for pixels (nothing is drawn).

        The result is contiguous (NCHW): a channels-last or expanded input would change the UNet's kernels'
        rounding.

        Args:
            images: ``(N, 3, H, W)`` in [0, 1].
            generators: one per image: a latent model draws from its encoder's distribution with them.

        Returns:
            The images in model space.
        """
        return (images.to(self.device, self.dtype) * 2 - 1).contiguous()

    def denoise_without_cfg(self, x: torch.Tensor, t) -> torch.Tensor:
        """The model output at x_t with no classifier-free guidance: what DDIM inversion steps with.

        For a text model, the conditional prediction.

        Args:
            x: x_t in model space.
            t: the timestep.

        Returns:
            The model output.
        """
        return self.unet(x, t).sample

    def attention_conditioning(self, n: int) -> dict:
        """The UNet's keyword arguments of an attention call (none for an unconditional UNet).

        Args:
            n: the batch size.

        Returns:
            The keyword arguments.
        """
        return {}

    def attention_layers(self, count: int) -> list[int]:
        """The last ``count`` self-attention layers of the UNet's decoder (:func:`.attention.decoder_layers`).

        Args:
            count: how many.

        Returns:
            Their forward-order numbers.
        """
        return decoder_layers(self.unet, count)

    def attention_hook(self, layers: list[int], record: bool = True, edit: Edit | None = None) -> AttentionHook:
        """A ``with`` block in which every UNet call records (and ``edit`` changes) the self-attention of ``layers``.

        For rules that edit the denoising call itself.

        Args:
            layers: forward-order numbers of self-attention layers.
            record: keep q, k, v and the output of each call.
            edit: changes what a layer attends with (None: nothing).

        Returns:
            The hook (a context manager).
        """
        return AttentionHook(self.unet, layers, record, edit)

    def attention(self, x: torch.Tensor, t, layers: list[int], edit: Edit | None = None) -> list[AttentionRecord]:
        """One UNet call on x at t, returning the self-attention records of ``layers`` in their order.

        Without classifier-free guidance and with the null prompt on a text model (Attention
        Distillation's ``extract_feature``, ``pipeline_sd.py:675-690``); differentiable when x requires
        grad (the output is dropped).

        Args:
            x: the sample in model space.
            t: the timestep.
            layers: forward-order numbers of self-attention layers.
            edit: changes what a layer attends with (None: nothing).

        Returns:
            One record (q, k, v, output) per layer.
        """
        with self.attention_hook(layers, edit=edit) as hook:
            self.unet(x, t, **self.attention_conditioning(x.shape[0]))
        return hook.ordered()


class LatentModel(PixelModel):
    """A UNet on the latents of an autoencoder, optionally text-conditioned with classifier-free guidance.

    Args:
        unet: ``UNet2DConditionModel`` (SD 1.x/2.x/XL) or ``UNet2DModel`` (unconditional, as ``LDMPipeline``).
        vae: the pipeline's ``AutoencoderKL`` or ``VQModel`` (final images, and the encoder of MPGD's
            projection).
        decoder: the differentiable decoder guidance goes through (the VAE, or a cheaper
            ``AutoencoderTiny``; None: the VAE).
        conditioning: the UNet's keyword arguments for (unconditional, conditional) prompts, each with a
            batch of one (repeated to the batch at each call); None for an unconditional UNet.
        cfg_scale: w; CFG runs, as diffusers does, when w > 1 (else the conditional prediction alone).
        info: its provenance (the sidecar's).
        sdxl: decode as ``StableDiffusionXLPipeline`` does (``latents_mean``/``latents_std``,
            ``force_upcast``).
        null_conditioning: the UNet's keyword arguments for the empty prompt "" (batch of one), which
            attention calls use (Attention Distillation's ``null_embeds``, ``pipeline_sd.py:228-233``).

    Raises:
        ConfigError: a negative or non-finite ``cfg_scale``.
    """

    latent = True

    def __init__(
        self,
        unet,
        vae,
        decoder=None,
        conditioning: tuple[dict, dict] | None = None,
        cfg_scale: float = DEFAULT_CFG_SCALE,
        info: dict[str, Any] | None = None,
        sdxl: bool = False,
        null_conditioning: dict | None = None,
    ):
        super().__init__(unet, info)
        self.sdxl = sdxl
        self.null_conditioning = null_conditioning
        if not (math.isfinite(cfg_scale) and cfg_scale >= 0):
            raise ConfigError(f"the classifier-free guidance scale must be finite and >= 0, got {cfg_scale}")
        self.vae = vae
        self.decoder = decoder if decoder is not None else vae
        self.conditioning = conditioning
        self.cfg_scale = float(cfg_scale)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent along a side (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_shape(self) -> tuple[int, int]:
        """The decoded images' ``(H, W)``."""
        return tuple(side * self.vae_scale_factor for side in self.sample_shape[1:])

    @property
    def cfg(self) -> bool:
        """Whether ``denoise`` runs classifier-free guidance (a text model with w > 1)."""
        return self.conditioning is not None and self.cfg_scale > 1

    @property
    def cfg_batch(self) -> int:
        """UNet inputs per image in one denoiser call (2 with classifier-free guidance)."""
        return 2 if self.cfg else 1

    @staticmethod
    def _batched(kwargs: dict, n: int) -> dict:
        """Each tensor of a batch-of-one conditioning repeated to n images (nested dicts too)."""
        return {
            key: (LatentModel._batched(value, n) if isinstance(value, dict) else value.expand(n, *value.shape[1:]))
            for key, value in kwargs.items()
        }

    @staticmethod
    def _cfg_batch(unconditional: dict, conditional: dict, n: int) -> dict:
        """[unconditional × n, conditional × n] of every tensor (the order of ``torch.cat([x, x])``)."""
        return {
            key: (
                LatentModel._cfg_batch(unconditional[key], value, n)
                if isinstance(value, dict)
                else torch.cat([unconditional[key], value]).repeat_interleave(n, 0)
            )
            for key, value in conditional.items()
        }

    def denoise(self, x: torch.Tensor, t) -> Denoised:
        """The output with CFG as ``StableDiffusionPipeline.__call__``: one call on the doubled batch (see the base class)."""
        if self.conditioning is None:
            return Denoised(self.unet(x, t).sample, None)
        unconditional, conditional = self.conditioning
        if not self.cfg:
            return Denoised(self.unet(x, t, **self._batched(conditional, x.shape[0])).sample, None)
        both = self._cfg_batch(unconditional, conditional, x.shape[0])
        out_u, out_c = self.unet(torch.cat([x, x]), t, **both).sample.chunk(2)
        correction = self.cfg_scale * (out_c - out_u)
        return Denoised(out_u + correction, correction)

    def clamp(self, x0: torch.Tensor) -> torch.Tensor:
        """The identity: latents have no fixed range."""
        return x0  # latents have no fixed range

    def _latent_statistics(self, decoder, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """SDXL's per-channel ``latents_mean``/``latents_std`` of ``decoder``.

        None where the pipeline uses none: SD 1.x/2.x and LDM never do, an SDXL VAE only when its config has
        both.
        """
        config = decoder.config
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if not self.sdxl or mean is None or std is None:
            return None
        return (torch.tensor(mean).view(1, -1, 1, 1).to(like), torch.tensor(std).view(1, -1, 1, 1).to(like))

    @staticmethod
    def upcasts(decoder, device_type: str) -> bool:
        """Whether SDXL's pipeline would decode in fp32 here.

        The VAE config says ``force_upcast`` and the decoder would run in fp16 (stylediff keeps fp32
        weights, so: fp16 autocast on ``device_type``).

        Args:
            decoder: the VAE or tiny decoder.
            device_type: ``cpu`` or ``cuda``.

        Returns:
            True when it would.
        """
        if not getattr(decoder.config, "force_upcast", False):
            return False
        return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16

    def _decode(self, decoder, z: torch.Tensor) -> torch.Tensor:
        statistics = self._latent_statistics(decoder, z)
        scale = decoder.config.scaling_factor
        z = z / scale if statistics is None else z * statistics[1] / scale + statistics[0]
        if self.sdxl and self.upcasts(decoder, z.device.type):  # the SDXL VAE gives NaN in fp16
            with torch.autocast(z.device.type, enabled=False):
                return decoder.decode(z.float()).sample
        return decoder.decode(z).sample

    def to_image(self, x0: torch.Tensor) -> torch.Tensor:
        """Latent x̂0 decoded with gradient as the pipeline decodes, then the straight-through clamp, in [0, 1]."""
        return straight_through_clamp(self._decode(self.decoder, x0).float()) / 2 + 0.5

    def final_images(self, x: torch.Tensor) -> torch.Tensor:
        """The last latent decoded by the full VAE, in [0, 1]."""
        with torch.no_grad():
            return (self._decode(self.vae, x).float() / 2 + 0.5).clamp(0, 1)

    def encode(self, images: torch.Tensor, generators: list | None = None) -> torch.Tensor:
        """Images → latents ``scaling_factor · E(2x − 1)``.

        A ``VQModel`` has no distribution: its ``latents``.

        Args:
            images: ``(N, 3, H, W)`` in [0, 1].
            generators: None: the posterior mean (Attention Distillation's ``image2latent``,
                ``pipeline_sd.py:45-52``); else a sample drawn from generator i for image i, each image
                encoded alone (``StableDiffusionImg2ImgPipeline.prepare_latents`` with a list of
                generators; ``retrieve_latents``' default ``sample``).

        Returns:
            The latents.

        Raises:
            ConfigError: the VAE has no encoder.
        """
        if not hasattr(self.vae, "encode"):
            raise ConfigError("a content image needs a VAE with an encoder")
        x = (images.to(self.device, self.vae.dtype) * 2 - 1).contiguous()
        if generators is None:
            encoded = self.vae.encode(x)
            latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
        else:
            parts = []
            for i, generator in enumerate(generators):
                encoded = self.vae.encode(x[i : i + 1])
                parts.append(
                    encoded.latent_dist.sample(generator) if hasattr(encoded, "latent_dist") else encoded.latents
                )
            latents = torch.cat(parts)
        statistics = self._latent_statistics(self.vae, latents)  # SDXL's img2img: (z − mean)·scaling_factor/std
        if statistics is not None:
            return (latents - statistics[0]) * self.vae.config.scaling_factor / statistics[1]
        return latents * self.vae.config.scaling_factor

    def denoise_without_cfg(self, x: torch.Tensor, t) -> torch.Tensor:
        """The conditional prediction alone (see the base class)."""
        if self.conditioning is None:
            return self.unet(x, t).sample
        return self.unet(x, t, **self._batched(self.conditioning[1], x.shape[0])).sample

    def attention_conditioning(self, n: int) -> dict:
        """The empty prompt's conditioning repeated to ``n`` (a text model), else none.

        Raises:
            ConfigError: a text model without its empty-prompt conditioning.
        """
        if self.conditioning is None:
            return {}
        if self.null_conditioning is None:
            raise ConfigError(
                "attention calls of a text model need its empty-prompt conditioning (make_adapter sets it)"
            )
        return self._batched(self.null_conditioning, n)

    def autoencode(self, x0: torch.Tensor) -> torch.Tensor:
        """The latent projected through the autoencoder, ``encode(decode(x̂0))`` (MPGD's projection).

        Args:
            x0: the latent x̂0.

        Returns:
            The projected latent (the encoder's mode).

        Raises:
            ConfigError: the VAE has no encoder.
        """
        if not hasattr(self.vae, "encode"):
            raise ConfigError("the autoencoder projection needs a VAE with an encoder")
        image = self._decode(self.vae, x0)
        encoded = self.vae.encode(image)
        latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
        statistics = self._latent_statistics(self.vae, latents)
        scale = self.vae.config.scaling_factor
        return latents * scale if statistics is None else (latents - statistics[0]) * scale / statistics[1]


def _text_pipeline(components: dict[str, Any], scheduler):
    """A diffusers pipeline object around the loaded parts, for its own ``encode_prompt``.

    So prompts, padding, negative prompts and SDXL's pooled embeddings are encoded exactly as the pipeline
    does. Its constructor also updates an outdated SD scheduler config (``steps_offset`` 1, ``clip_sample``
    off) as ``StableDiffusionPipeline`` does for every run, so the sampler's scheduler matches it.
    """
    import warnings

    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="(?s).*(steps_offset|clip_sample)")
        return _pipeline_of(components, scheduler, StableDiffusionPipeline, StableDiffusionXLPipeline)


def _pipeline_of(components: dict[str, Any], scheduler, sd_class, sdxl_class):
    if "text_encoder_2" in components:
        return sdxl_class(
            vae=components["vae"],
            text_encoder=components["text_encoder"],
            tokenizer=components["tokenizer"],
            text_encoder_2=components["text_encoder_2"],
            tokenizer_2=components["tokenizer_2"],
            unet=components["unet"],
            scheduler=scheduler,
            image_encoder=None,
            feature_extractor=None,
            force_zeros_for_empty_prompt=components["options"]["force_zeros_for_empty_prompt"],
            add_watermarker=False,
        )
    return sd_class(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        unet=components["unet"],
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


@torch.no_grad()
def encode_prompts(
    components: dict[str, Any],
    scheduler,
    prompt: str,
    negative_prompt: str | None,
    cfg_scale: float,
    image_shape: tuple[int, int],
) -> tuple[dict, dict]:
    """The UNet's keyword arguments (batch of one) for the negative and the positive prompt.

    Args:
        components: the loaded pipeline parts.
        scheduler: the sampler's scheduler.
        prompt: the prompt.
        negative_prompt: the negative prompt (None: zeros, as the pipelines without one).
        cfg_scale: the CFG scale (the negative prompt is encoded when it is > 1).
        image_shape: the images' ``(H, W)`` (SDXL's time ids).

    Returns:
        ``(negative, positive)`` keyword arguments.
    """
    pipe = _text_pipeline(components, scheduler)
    device = components["unet"].device
    cfg = cfg_scale > 1
    if "text_encoder_2" not in components:
        positive, negative = pipe.encode_prompt(prompt, device, 1, cfg, negative_prompt)
        negative = torch.zeros_like(positive) if negative is None else negative
        return {"encoder_hidden_states": negative}, {"encoder_hidden_states": positive}
    positive, negative, pooled, negative_pooled = pipe.encode_prompt(
        prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg, negative_prompt=negative_prompt
    )
    projection = components["text_encoder_2"].config.projection_dim
    time_ids = pipe._get_add_time_ids(
        image_shape, (0, 0), image_shape, dtype=positive.dtype, text_encoder_projection_dim=projection
    ).to(device)
    if negative is None:
        negative, negative_pooled = torch.zeros_like(positive), torch.zeros_like(pooled)
    return (
        {
            "encoder_hidden_states": negative,
            "added_cond_kwargs": {"text_embeds": negative_pooled, "time_ids": time_ids},
        },
        {"encoder_hidden_states": positive, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}},
    )


def make_adapter(
    model,
    scheduler,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    cfg_scale: float | None = None,
    decoder=None,
    vae_checkpointing: bool = False,
) -> PixelModel:
    """The adapter of a loaded :class:`~.loading.DiffusionModel`.

    Args:
        model: the loaded model.
        scheduler: the sampler's scheduler (prompts are encoded by the pipeline with it).
        prompt: the prompt of a text model.
        negative_prompt: its negative prompt.
        cfg_scale: the classifier-free guidance scale (None: 7.5).
        decoder: a loaded ``AutoencoderTiny`` for guidance, or None for the VAE.
        vae_checkpointing: gradient checkpointing in the decoder.

    Returns:
        A :class:`PixelModel`, or a :class:`LatentModel` with its prompts encoded and its decoder chosen.

    Raises:
        ConfigError: one line, for an option the model cannot use (a prompt for an unconditional model, a
            decoder for a pixel model) or a bad CFG scale.
    """
    components = model.components
    text = "text_encoder" in components
    name = model.info.get("id")
    if not text and (prompt is not None or negative_prompt is not None or cfg_scale is not None):
        kind = "latent" if "vae" in components else "pixel-space"
        raise ConfigError(
            f"--prompt, --negative-prompt and --cfg-scale need a text-conditioned model; {name} is "
            f"an unconditional {kind} model"
        )
    if "vae" not in components:
        if decoder is not None or vae_checkpointing:
            raise ConfigError(
                f"--decoder and --vae-checkpointing need a latent model (a VAE); {name} is a pixel-space model"
            )
        return PixelModel(model.unet, model.info)
    cfg_scale = DEFAULT_CFG_SCALE if cfg_scale is None else float(cfg_scale)
    if not (math.isfinite(cfg_scale) and cfg_scale >= 0):
        raise ConfigError(f"the classifier-free guidance scale must be finite and >= 0, got {cfg_scale}")
    conditioning = null = None
    if text:
        latent = PixelModel(model.unet).sample_shape[1:]
        factor = 2 ** (len(components["vae"].config.block_out_channels) - 1)
        shape = tuple(side * factor for side in latent)
        conditioning = encode_prompts(components, scheduler, prompt or "", negative_prompt, cfg_scale, shape)
        null = encode_prompts(components, scheduler, "", None, 1.0, shape)[1]  # "" without CFG: the positive branch
    chosen = decoder if decoder is not None else components["vae"]
    if vae_checkpointing:
        chosen.enable_gradient_checkpointing()
    sdxl = "text_encoder_2" in components
    return LatentModel(
        model.unet, components["vae"], chosen, conditioning, cfg_scale, model.info, sdxl=sdxl, null_conditioning=null
    )
