"""Where a sampling run starts: pure noise (the default), or a content image noised or inverted.

A content image is noised (SDEdit) or inverted (DDIM inversion) to the level of the first remaining step.
A start is the sampler's, not a guidance method's: every method runs unchanged from it, and sees the
content only through the objective (a content term) or, for attention-based rules, as the sampler's
``content`` reference.

SDEdit follows diffusers' ``StableDiffusionImg2ImgPipeline`` (diffusers 0.42.1,
``pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py``) exactly:

* ``get_timesteps`` (``:724-733``): ``init_timestep = min(int(n·strength), n)``, ``t_start = n − init_timestep``
  (``int`` truncates: n = 50, strength 0.6 → 30 steps from ``timesteps[20]``);
* ``prepare_latents`` (``:735-797``): with one generator per image, image i is encoded alone and its latent
  drawn from the encoder's distribution with generator i (the first draw), then the noise is
  ``randn_tensor`` from the same generators (the second draw), and
  ``x = scheduler.add_noise(x0, noise, timesteps[t_start])``, without ``init_noise_sigma``. On a pixel
  model the "encoder" is ``2x − 1`` and draws nothing.

The loop then runs the global steps ``t_start … n−1`` (the sampler keeps the step's index in the full
schedule, so the DDPM update's ᾱ_prev, TFG's schedules and guidance windows keep meaning noise levels).

DDIM inversion (``inversion``) runs diffusers' ``DDIMInverseScheduler`` (``schedulers/scheduling_ddim_inverse.py``)
from the content's posterior mean up to the same level, over the first ``init_timestep`` steps of the
inverse schedule (DiffEdit's ``get_inverse_timesteps``,
``pipelines/deprecated/stable_diffusion_diffedit/pipeline_stable_diffusion_diffedit.py:741-752``), with
the model's prediction without classifier-free guidance (w = 1: CFG-scale inversion drifts, Null-text
inversion's observation); it needs the DDIM scheduler and draws nothing. A forward DDIM η > 0 adds noise
the inversion did not take out, so it reconstructs the content only at η = 0.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.errors import ConfigError
from .schedule import is_ddim

STARTS = ("sdedit", "inversion")
DEFAULT_STRENGTH = 0.8
"""``StableDiffusionImg2ImgPipeline.__call__``'s default strength (``:860-885``)."""


def first_index(steps: int, strength: float) -> int:
    """t_start of ``get_timesteps``: the index in the n-step schedule where a content start begins.

    Args:
        steps: n, the schedule's steps.
        strength: the img2img strength in (0, 1].

    Returns:
        ``n − min(int(n·strength), n)``.

    Raises:
        ConfigError: no step would be left to run.
    """
    init_timestep = min(int(steps * strength), steps)
    if init_timestep == 0:
        raise ConfigError(
            f"strength {strength:g} of {steps} steps leaves no step to run (int(steps x strength) = 0): "
            "raise --strength or --steps"
        )
    return steps - init_timestep


@dataclass(frozen=True)
class ContentStart:
    """Start from a content image, noised or inverted to the level of step ``first_index(n, strength)``.

    Args:
        image: ``(1, 3, H, W)`` in [0, 1] at the model's image shape.
        strength: the img2img strength in (0, 1]: the fraction of the steps that run.
        kind: ``sdedit`` (noised as the img2img pipeline) or ``inversion`` (DDIM inversion).

    Raises:
        ConfigError: an unknown kind, a strength outside (0, 1], or not one (1, 3, H, W) image.

    Example:
        ```python
        content = load_image("face.png")  # at the model's image size
        out = sampler(seeds=[0, 1], start=ContentStart(content, strength=0.6, kind="sdedit"))
        ```
    """

    image: torch.Tensor
    strength: float = DEFAULT_STRENGTH
    kind: str = "sdedit"

    def __post_init__(self):
        """Check the kind, the strength and the image's shape."""
        if self.kind not in STARTS:
            raise ConfigError(f"unknown start {self.kind!r}; choose one of noise, {', '.join(STARTS)}")
        if not (math.isfinite(self.strength) and 0 < self.strength <= 1):
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if self.image.dim() != 4 or self.image.shape[:2] != (1, 3):
            raise ConfigError(f"a content image is one (1, 3, H, W) image, got shape {tuple(self.image.shape)}")

    def describe(self, steps: int, timesteps: torch.Tensor) -> dict:
        """What a sidecar records of the start.

        Args:
            steps: the schedule's steps.
            timesteps: the scheduler's timesteps.

        Returns:
            ``{start, strength, t_start, first_t}``.
        """
        index = first_index(steps, self.strength)
        return {"start": self.kind, "strength": self.strength, "t_start": index, "first_t": int(timesteps[index])}

    def initial(self, model, scheduler, steps: int, generators: list, denoise: Callable) -> torch.Tensor:
        """The x at step ``first_index`` for every image (one generator each).

        Args:
            model: the model adapter (it encodes the image).
            scheduler: the sampler's scheduler, after ``scheduler.set_timesteps(steps)``.
            steps: the schedule's steps.
            generators: one per image.
            denoise: ``denoise(x, t)``, the model output without classifier-free guidance (inversion only).

        Returns:
            x at the first step, one row per generator.

        Raises:
            ConfigError: the image is not at the model's image shape, or inversion without DDIM.
        """
        index = first_index(steps, self.strength)
        shape = model.image_shape
        if tuple(self.image.shape[-2:]) != tuple(shape):
            raise ConfigError(
                f"the content image is {self.image.shape[-1]}x{self.image.shape[-2]} px; this model makes "
                f"{shape[1]}x{shape[0]} px images"
            )
        images = self.image.expand(len(generators), -1, -1, -1)
        if self.kind == "sdedit":
            return self._noised(model, scheduler, index, images, generators)
        return self._inverted(model, scheduler, steps, index, images, denoise)

    @staticmethod
    def _noised(model, scheduler, index, images, generators) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        x0 = model.encode(images, generators)
        generator = generators[0] if len(generators) == 1 else generators
        noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return scheduler.add_noise(x0, noise, scheduler.timesteps[index : index + 1].repeat(len(generators)))

    @staticmethod
    def _inverted(model, scheduler, steps, index, images, denoise) -> torch.Tensor:
        from diffusers import DDIMInverseScheduler

        if not is_ddim(scheduler):
            raise ConfigError("--start inversion needs the DDIM scheduler (--scheduler ddim)")
        accepted = inspect.signature(DDIMInverseScheduler.__init__).parameters
        # the keys it takes (a DDPM config's variance_type is only a warning there, and means nothing to DDIM)
        inverse = DDIMInverseScheduler.from_config({k: v for k, v in scheduler.config.items() if k in accepted})
        inverse.set_timesteps(steps)
        timesteps = inverse.timesteps if index == 0 else inverse.timesteps[:-index]
        x = model.encode(images[:1])
        for t in timesteps:
            x = inverse.step(denoise(x, t), t, x).prev_sample
        return x.expand(len(images), *x.shape[1:]).clone()
