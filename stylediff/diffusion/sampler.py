"""The sampling loop around a model adapter and a diffusers scheduler: numbered steps, no guidance rule.

The adapter (:mod:`.adapters`: pixel or latent, conditioning and classifier-free guidance inside) and a
diffusers scheduler (not a fork of diffusers): a short loop of numbered steps that knows no guidance
rule and no kind of model. Each step hands a
:class:`~.methods.base.StepContext` to the guidance method, which returns x_{t−1}; without a method
(or at scale 0, or outside its window) a step is exactly the pipeline's ``scheduler.step``, so scale 0
reproduces ``DDIMPipeline``/``DDPMPipeline``/``LDMPipeline``/``StableDiffusionPipeline``. A
``callback(dict)`` is called after every step (as k-diffusion's samplers do); :class:`HistoryRecorder`
is one such callback.

The objective is any differentiable callable ``images (N, 3, H, W) in [0, 1] -> (N,)``, e.g.
:func:`stylediff.nst.losses.style_objective`. The sampler feeds it the model's ``to_image(x̂0)`` (pixels
clamped to [-1, 1] with a straight-through gradient, or the VAE's decoding of a latent x̂0, with
gradient), resized to the guidance size.

A run starts from pure noise, or from a content image (:class:`~.starts.ContentStart`: SDEdit as
diffusers' ``StableDiffusionImg2ImgPipeline``, or DDIM inversion) at a later step; the loop then runs the
remaining steps with their indices in the full schedule. ``references`` (a style image, and the start's
content) reach the methods in model space (``ctx.reference``) and the UNet's self-attention through the
adapter (``ctx.attention``), for rules on the UNet's own features.

Seeds: each image has its own CPU generator (seed s), drawn per image exactly as diffusers draws from
a list of generators; every other random draw (recurrence, Monte-Carlo variance, and the objective's
own, such as sliced_wasserstein's projections) comes from streams derived from the image's seed
(:mod:`stylediff.core.seeding`), restarted at every call, so image i is the same alone or in a batch and
the same at every call with its seed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.errors import ConfigError, NumericalError, ResourceError
from ..core.images import resize, scaled_shape
from ..core.seeding import ImageStreams, drawing_from, image_generators
from .adapters import PixelModel
from .methods.base import GuidanceMethod, StepContext
from .schedule import Schedule, check_supported, is_ddim
from .starts import ContentStart, first_index

PRECISIONS = ("fp32", "bf16", "fp16")
GuidanceLoss = Callable[[torch.Tensor], torch.Tensor]
"""Any differentiable callable from images ``(N, 3, H, W)`` in ``[0, 1]`` to losses ``(N,)``."""


def default_guidance_size(sample_size: int, min_size: int = 1) -> int:
    """``max(sample_size, 4 * min_size)``: the deepest layer of the objective sees at least 4×4 pixels.

    A 32 px model's samples are upsampled to 64 px for a relu5_1 objective.

    Args:
        sample_size: the model's image side.
        min_size: the objective's ``min_size`` (the smallest side its layers accept).

    Returns:
        The guidance side in pixels.
    """
    return max(int(sample_size), 4 * int(min_size))


@dataclass
class SampleOutput:
    """What :class:`GuidedSampler` returns.

    Args:
        images: ``(N, 3, H, W)`` float32 in [0, 1], on the CPU.
        seeds: one seed per image.
        losses: the final objective per image at the guidance size (None without an objective).
        seconds: wall time of the loop.
        step_seconds: wall time per denoising step (recurrences included).
        history: what each step reported (:class:`HistoryRecorder`'s records).
        guidance_size: the shape the objective saw (None without an objective).
        batches: the batch sizes actually run (smaller than asked after an out-of-memory).
        start: a content start's kind, strength, t_start (its index) and first timestep (None: noise).
    """

    images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1], on the CPU
    seeds: list[int]
    losses: list[float] | None  # final objective per image at the guidance size (None without objective)
    seconds: float
    step_seconds: list[float]  # wall time per denoising step (recurrences included)
    history: list[dict[str, Any]] = field(default_factory=list)
    guidance_size: tuple[int, int] | None = None
    batches: list[int] | None = None  # batch sizes actually run (smaller than asked after an out-of-memory)
    start: dict | None = None  # a content start: kind, strength, t_start (its index), first_t (None: noise)

    @property
    def seconds_per_step(self) -> float:
        """Mean wall time of a step."""
        return sum(self.step_seconds) / max(1, len(self.step_seconds))

    @classmethod
    def concatenate(cls, parts: Sequence[SampleOutput]) -> SampleOutput:
        """One output from batches sampled one after the other (per-image lists joined, times added).

        Args:
            parts: the batches' outputs, in seed order.

        Returns:
            The joined output.
        """
        first = parts[0]
        history = []
        for records in zip(*(part.history for part in parts)):
            merged = dict(records[0])
            for key, value in merged.items():
                if isinstance(value, list):
                    merged[key] = [item for record in records for item in record[key]]
            history.append(merged)
        return cls(
            images=torch.cat([part.images for part in parts]),
            seeds=[seed for part in parts for seed in part.seeds],
            losses=None if first.losses is None else [loss for part in parts for loss in part.losses],
            seconds=sum(part.seconds for part in parts),
            step_seconds=[sum(times) for times in zip(*(part.step_seconds for part in parts))],
            history=history,
            guidance_size=first.guidance_size,
            batches=[size for part in parts for size in (part.batches or [len(part.seeds)])],
            start=first.start,
        )


def _recording(ctx: StepContext, denoiser, t) -> Callable[[torch.Tensor], torch.Tensor]:
    """``ctx.unet``: the denoiser at t, keeping its classifier-free-guidance correction in ``ctx.correction``.

    The correction is converted from the model's output space to ε-space (``Schedule.eps_change``: the
    correction of a v-prediction model is √ᾱ_t·w·(v_c − v_u) in ε).
    """

    def call(sample: torch.Tensor) -> torch.Tensor:
        out, correction = denoiser(sample, t)
        ctx.correction = None if correction is None else ctx.schedule.eps_change(correction.detach(), t)
        return out

    return call


class HistoryRecorder:
    """A step callback that keeps what each step reported (timestep, guided, loss, step size).

    Example:
        ```python
        steps = HistoryRecorder()
        out = sampler(seeds=[0, 1], callback=steps)
        steps.records[-1]  # {"step": 50, "t": 1, "guided": True, "loss": [...], ...}
        ```
    """

    def __init__(self):
        self.records: list[dict[str, Any]] = []

    def __call__(self, info: dict[str, Any]) -> None:
        """Keep one step's report, without the tensors ``x`` and ``x0``.

        Args:
            info: the step's report.
        """
        self.records.append({key: value for key, value in info.items() if key not in ("x", "x0")})


class GuidedSampler:
    """Sample ``model`` with ``scheduler``, each step guided by ``method`` on ``objective``.

    Calling the sampler (:meth:`__call__`: ``sampler(seeds, num_inference_steps=50, eta=0.0,
    precision="fp32", progress=True, description="sample", callback=None, start=None)``) returns a
    :class:`SampleOutput`. Scheduler, steps and η belong to the sampler and are shared by every method,
    so a comparison of methods changes only the guidance rule. ``sampler.method`` is ``method`` resolved
    for the model (:meth:`~.methods.base.GuidanceMethod.resolved`): what a sidecar records.

    Args:
        model: a :mod:`.adapters` adapter (``load_model(...).adapter(scheduler)``, pixel or latent), or a
            bare pixel ``UNet2DModel`` (``load_model(...).unet``).
        scheduler: a diffusers DDIM or DDPM scheduler (``model.scheduler("ddim")``).
        objective: any differentiable callable ``images (N, 3, H, W) in [0, 1] -> (N,)``; needed when the
            method is guided and reads it.
        method: a guidance rule (:func:`~.methods.make_method`); None or scale 0 samples unguided.
        guidance_size: the side at which the objective sees the images (default
            :func:`default_guidance_size`).
        references: images (``(1, 3, H, W)`` in [0, 1]) a method reads by name (``style`` for
            ``attention_distillation``).

    Raises:
        ConfigError: a guided method without an objective it needs or a reference it needs, a
            non-positive guidance size, or a scheduler the methods do not support.

    Example:
        ```python
        from stylediff.diffusion import GuidedSampler, load_model, make_method
        from stylediff.networks.vgg19 import load_vgg19
        from stylediff.nst.losses import style_objective
        from stylediff.core.images import load_image

        model = load_model("models/ddpm-emoji-faces-32")
        scheduler = model.scheduler("ddim")
        style = load_image("data/styles/starry_night.jpg", 64)
        objective = style_objective(load_vgg19(), style, ["relu1_1", "relu2_1", "relu3_1"], "gram")
        sampler = GuidedSampler(model.adapter(scheduler), scheduler, objective, make_method("x0", scale=0.03))
        out = sampler(seeds=[0, 1, 2, 3], num_inference_steps=50, eta=0.0, precision="fp32",
                      progress=False, callback=lambda info: print(info["step"], info.get("loss")))
        out.images.shape  # (4, 3, 32, 32), in [0, 1]
        ```
    """

    def __init__(
        self,
        model,
        scheduler,
        objective: GuidanceLoss | None = None,
        method: GuidanceMethod | None = None,
        guidance_size: int | None = None,
        references: dict[str, torch.Tensor] | None = None,
    ):
        self.model = model if isinstance(model, PixelModel) else PixelModel(model)
        self.scheduler = scheduler
        self.objective = objective
        # the knobs a method leaves to the model (auto, a None window) set once, for this model
        self.method = None if method is None else method.resolved(self.model.latent, self.model.cfg)
        if guidance_size is not None and guidance_size <= 0:
            raise ConfigError(f"guidance size must be a positive number of pixels, got {guidance_size}")
        self.guidance_size = guidance_size
        self.references = dict(references or {})
        if self.guided:
            if objective is None and self.method.needs_objective:
                raise ConfigError("a guidance scale > 0 needs an objective (a callable images -> (N,) losses)")
            missing = [name for name in self.method.needs_references if name not in self.references]
            if missing:
                raise ConfigError(f"method {self.method.name} needs the reference image(s) {', '.join(missing)}")
            check_supported(scheduler)

    @property
    def guided(self) -> bool:
        """Whether a method with a scale > 0 guides the steps."""
        return self.method is not None and self.method.scale > 0

    # -- geometry ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.device

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """One sample's shape in model space (pixels, or latents)."""
        return self.model.sample_shape

    def guidance_shape(self) -> tuple[int, int]:
        """The shape at which the objective sees the model's images (the image's aspect kept)."""
        h, w = self.model.image_shape
        side = self.guidance_size or default_guidance_size(max(h, w), getattr(self.objective, "min_size", 1))
        return scaled_shape((h, w), side)

    def to_objective_input(self, x0: torch.Tensor) -> torch.Tensor:
        """Model-space x̂0 -> the model's image in [0, 1] at the guidance size.

        Args:
            x0: the predicted clean sample in model space.

        Returns:
            ``(N, 3, H, W)`` in [0, 1], with gradient.
        """
        return self.resized(self.model.to_image(x0))

    def resized(self, images: torch.Tensor) -> torch.Tensor:
        """Images at the guidance shape (bilinear, antialiased when shrinking).

        Args:
            images: ``(N, 3, H, W)``.

        Returns:
            ``(N, 3, *guidance_shape())``.
        """
        shape = self.guidance_shape()
        if tuple(images.shape[-2:]) != shape:
            images = F.interpolate(
                images, size=shape, mode="bilinear", align_corners=False, antialias=shape[0] < images.shape[-2]
            )
        return images

    # -- network calls ----------------------------------------------------------------------
    def _autocast(self, precision: str):
        return torch.autocast(
            self.device.type,
            dtype=torch.float16 if precision == "fp16" else torch.bfloat16,
            enabled=precision != "fp32",
        )

    def _denoiser(self, precision: str) -> Callable[[torch.Tensor, Any], tuple]:
        def call(x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor | None]:
            with self._autocast(precision):
                out, correction = self.model.denoise(x, t)
            if precision != "fp32":
                out, correction = out.float(), None if correction is None else correction.float()
            return out, correction

        return call

    def _loss(self, precision: str, streams: ImageStreams) -> Callable[[torch.Tensor], torch.Tensor]:
        def call(x0: torch.Tensor) -> torch.Tensor:
            with self._autocast(precision), drawing_from(streams):
                return self.objective(self.to_objective_input(x0)).float()

        return call

    # -- the loop ---------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        seeds: int | Sequence[int] = 0,
        num_inference_steps: int = 50,
        eta: float = 0.0,
        precision: str = "fp32",
        progress: bool = True,
        description: str = "sample",
        callback: Callable[[dict], None] | None = None,
        start: ContentStart | None = None,
    ) -> SampleOutput:
        """Sample one image per seed, from pure noise or from ``start``.

        After an out-of-memory on CUDA the batch is split in two and retried (each image has its own
        generators: the same images come out).

        Args:
            seeds: one seed per image (an ``int``: one image).
            num_inference_steps: the scheduler's steps.
            eta: DDIM's η (ignored by DDPM).
            precision: ``fp32``, ``bf16`` (autocast, CPU or CUDA) or ``fp16`` (CUDA only).
            progress: show a progress bar.
            description: the progress bar's label.
            callback: called after every step with a dict: ``step``, ``t``, ``guided``, what the method
                recorded (``loss`` per image, step sizes…) and ``x`` (x_{t−1}).
            start: a content image at a strength (:class:`~.starts.ContentStart`); None: pure noise.

        Returns:
            The images, seeds, final losses, timings and per-step history.

        Raises:
            ConfigError: no seed, steps ≤ 0, a negative or non-finite η, an unknown precision, or fp16
                off CUDA.
            NumericalError: the loss or gradient is not finite (the message names the step), or the
                images are.
            ResourceError: out of memory with a single image.
        """
        seeds = [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds]
        if not seeds:
            raise ConfigError("give at least one seed")
        if num_inference_steps <= 0:
            raise ConfigError(f"the number of steps must be > 0, got {num_inference_steps}")
        if not (math.isfinite(eta) and eta >= 0):
            raise ConfigError(f"eta must be finite and >= 0, got {eta}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("fp16 autocast needs a CUDA device; on the CPU use bf16 or fp32")
        return self._fitting(seeds, num_inference_steps, eta, precision, progress, description, callback, start)

    def _fitting(self, seeds, steps, eta, precision, progress, description, callback, start=None) -> SampleOutput:
        try:
            return self._sample(seeds, steps, eta, precision, progress, description, callback, start)
        except torch.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(seeds) == 1:
                raise ResourceError(
                    f"out of {self.device.type} memory sampling one image: lower --guidance-size, "
                    "use --precision bf16, or a smaller model"
                ) from None
            half = (len(seeds) + 1) // 2
            warnings.warn(
                f"out of memory at batch size {len(seeds)}; retrying as {half} + {len(seeds) - half}", stacklevel=2
            )
            return SampleOutput.concatenate(
                [
                    self._fitting(part, steps, eta, precision, progress, description, callback, start)
                    for part in (seeds[:half], seeds[half:])
                ]
            )

    def _references(self, start: ContentStart | None) -> Callable[[str], torch.Tensor | None]:
        """``ctx.reference``: each reference image (and the start's content) in model space.

        Resized to the model's image shape and encoded (posterior mean) at its first use, once per call.
        """
        images = {**self.references, **({"content": start.image} if start is not None else {})}
        encoded: dict[str, torch.Tensor] = {}

        def reference(name: str) -> torch.Tensor | None:
            if name not in images:
                return None
            if name not in encoded:
                encoded[name] = self.model.encode(resize(images[name], self.model.image_shape))
            return encoded[name]

        return reference

    def _attention(self, precision: str) -> Callable:
        def call(x: torch.Tensor, t, layers: list[int]) -> list:
            with self._autocast(precision):
                return self.model.attention(x, t, layers)

        return call

    def _initial(self, seeds, generators, start: ContentStart | None, steps: int, precision: str) -> torch.Tensor:
        """The x at the first step: the pipelines' noise (one generator per image), or ``start``'s."""
        from diffusers.utils.torch_utils import randn_tensor

        if start is not None:

            def denoise(x, t):
                with self._autocast(precision):
                    return self.model.denoise_without_cfg(x, t).float()

            return start.initial(self.model, self.scheduler, steps, generators, denoise)
        generator = generators[0] if len(generators) == 1 else generators
        shape = (len(seeds), *self.sample_shape)
        return randn_tensor(shape, generator=generator, device=self.device, dtype=self.model.dtype) * (
            self.scheduler.init_noise_sigma
        )

    def _sample(
        self, seeds, num_inference_steps, eta, precision, progress, description, callback, content_start=None
    ) -> SampleOutput:
        # 1. the trajectory and the initial x (noise, one generator per image as the pipelines draw it,
        # or the content start's x at its first step: img2img sets the timesteps before drawing too)
        generators = image_generators(seeds)
        generator = generators[0] if len(generators) == 1 else generators
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        steps = len(timesteps)
        first = 0 if content_start is None else first_index(steps, content_start.strength)
        x = self._initial(seeds, generators, content_start, steps, precision)
        # 2. what every step shares
        schedule = Schedule(self.scheduler, self.device)
        streams = ImageStreams(seeds)
        denoiser = self._denoiser(precision)
        reference = self._references(content_start)
        attention = self._attention(precision)
        loss = self._loss(precision, streams) if self.objective is not None else None
        state: dict = {}
        step_kwargs = {"eta": eta} if is_ddim(self.scheduler) else {}
        if self.method is not None:
            self.method.begin()
        recorder = HistoryRecorder()
        step_seconds: list[float] = []
        start = time.perf_counter()
        bar = tqdm(range(first, steps), desc=description, disable=not progress, leave=False, dynamic_ncols=True)
        for index in bar:  # the global index: the DDPM update's ᾱ_prev, schedules and windows read it
            t = timesteps[index]
            tick = time.perf_counter()
            # 3. one step: the method's (or the scheduler's), every scheduler call with this step's noise
            states = [g.get_state() for g in generators]

            def scheduler_step(model_output, sample, t=t, states=states):
                for g, saved in zip(generators, states):
                    g.set_state(saved)
                return self.scheduler.step(model_output, t, sample, generator=generator, **step_kwargs)

            ctx = StepContext(
                x=x,
                t=t,
                index=index,
                steps=steps,
                eta=eta,
                schedule=schedule,
                unet=None,
                loss=loss,
                scheduler_step=scheduler_step,
                noise=streams.normal,
                clamp=self.model.clamp,
                autoencode=self.model.autoencode,
                state=state,
                attention=attention,
                attention_layers=self.model.attention_layers,
                reference=reference,
            )
            ctx.unet = _recording(ctx, denoiser, t)
            guided = self.method is not None and self.method.active(index, steps)
            x = self.method.step(ctx) if self.method is not None else scheduler_step(ctx.unet(x), x).prev_sample
            step_seconds.append(time.perf_counter() - tick)
            # 4. report the step
            info = {"step": index + 1, "t": int(t), "guided": guided, **ctx.record}
            recorder(info)
            if callback is not None:
                callback({**info, "x": x})
            if "loss" in ctx.record:
                bar.set_postfix(loss=f"{sum(ctx.record['loss']) / len(ctx.record['loss']):.4g}", refresh=False)
        bar.close()
        seconds = time.perf_counter() - start
        if not torch.isfinite(x).all():
            raise NumericalError("sampling produced non-finite pixels: lower the guidance scale or set clip_grad")
        # 5. the images and their final loss
        start_info = None if content_start is None else content_start.describe(steps, timesteps)
        return self._output(x, seeds, streams, seconds, step_seconds, recorder, start_info)

    def _output(self, x, seeds, streams, seconds, step_seconds, recorder, start) -> SampleOutput:
        """The final images of ``x`` (model space), their final loss and the run's record.

        What every engine of this sampler returns; the loss draws from ``streams`` (each image's own).
        """
        images = self.model.final_images(x)
        losses = None
        if self.objective is not None:
            with drawing_from(streams):
                losses = self.objective(self.resized(images)).float().tolist()
        return SampleOutput(
            images=images.cpu(),
            seeds=seeds,
            losses=losses,
            seconds=seconds,
            step_seconds=step_seconds,
            history=recorder.records,
            guidance_size=self.guidance_shape() if self.objective is not None else None,
            batches=[len(seeds)],
            start=start,
        )
