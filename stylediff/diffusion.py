"""Style-guided sampling of pixel-space diffusion models, around diffusers (not a fork of it).

* :func:`load_model` reads a ``UNet2DModel`` and its scheduler config from a hub id
  (``google/ddpm-cifar10-32``…) or a local diffusers folder through ``from_pretrained``; a model
  that is not there is a :class:`~stylediff.errors.WeightsError`, never random weights.
* :func:`make_scheduler` builds a diffusers scheduler by name (``ddim``, ``ddpm``) from the
  model's scheduler config, as ``DDIMPipeline`` does.
* :class:`StyleGuidedSampler` ``(unet, scheduler, objective, config)`` runs the sampling loop.
  Every step is the diffusers scheduler's own ``step`` on the model's output (same noise draw);
  a guided step adds one explicit term to its result. With scale 0 (or outside the guidance
  window) a step is exactly the pipeline's step, so scale 0 reproduces ``DDIMPipeline``/``DDPMPipeline``.

The guidance objective is any differentiable callable ``images (N, 3, H, W) in [0, 1] -> (N,)``,
e.g. :func:`stylediff.losses.style_objective`. At each guided step the sampler predicts x̂0 from
the model output, clamps it to [-1, 1] with a straight-through gradient (saturated pixels keep
their gradient), maps it to [0, 1], resizes it to ``guidance_size`` and evaluates the objective.

Step rule, per image, with σ_t = √(1 − ᾱ_t), g the gradient of the loss, s the scale and
δ = s·σ_t·ĝ:

* ``through_unet`` (Dhariwal & Nichol 2021, classifier guidance with log p = −loss):
  g = ∇_{x_t} loss(x̂0(x_t)) through the UNet; the noise prediction becomes ε̂ = ε + δ, i.e.
  x_{t-1} = step(ε) + k_t·δ with k_t = ∂x_{t-1}/∂ε of the scheduler's update (DDIM
  √(1 − ᾱ_{t-1} − σ_η²) − √ᾱ_{t-1}·σ_t/√ᾱ_t; DDPM −c_t·σ_t/√ᾱ_t). This is exactly
  ``scheduler.step(ε̂)`` when x̂0 is not clipped; unlike feeding ε̂ to a clipping scheduler
  (``clip_sample=True``), it never lets the clip cancel the x̂0 part and leave the ε part pushing uphill.
* ``x0`` (MPGD, He et al. 2024): g = ∇_{x̂0} loss(x̂0) with no UNet backward,
  x̂0' = clip(x̂0 − δ·50/n) for n steps, and x_{t-1} = step(ε) + c_t·(x̂0' − x̂0), where c_t is the scheduler's
  coefficient of x̂0 (DDIM √ᾱ_{t-1}; DDPM √ᾱ_{t-1}·β_t/(1 − ᾱ_t)): the DDIM/DDPM update from the
  corrected x̂0 with the model's own ε.
* ``normalize="per_step"`` (default): ĝ = g·‖ε‖/‖g‖ at every step (norms over each image's pixels;
  ε is the model's noise prediction, ‖ε‖ ≈ √(3HW)), the ratio-of-norms rescaling of FreeDoM/MPGD,
  so s is the size of the correction relative to ε whatever the loss, layer set, image size or step.
  ``"first_step"``: the ratio ‖ε‖/‖g‖ of the first guided step, kept for the whole trajectory: the
  same size as ``per_step`` at the start, then the raw gradient's own rise and fall over the steps.
  ``"none"``: ĝ = g (raw gradient; the useful scales then depend on the loss's magnitude, ~1000x
  larger than normalised ones for the Gram loss).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import ConfigError, NumericalError, ResourceError, WeightsError
from .vgg import STYLE_LAYERS_GATYS, check_layers
from .provenance import file_sha256

MODES = ("through_unet", "x0")
NORMALIZATIONS = ("per_step", "first_step", "none")
SCHEDULER_NAMES = ("ddim", "ddpm")
PRECISIONS = ("fp32", "bf16", "fp16")
X0_REFERENCE_STEPS = 50
"""x0-mode corrections are multiplied by 50/n for n inference steps, so a scale means the same total
correction whatever the number of steps (factor 1 at the default 50 steps). through_unet needs no
such factor: its shift k_t·δ of x_{t-1} already shrinks with the step size."""
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

GuidanceLoss = Callable[[torch.Tensor], torch.Tensor]
"""Any differentiable callable from images ``(N, 3, H, W)`` in ``[0, 1]`` to losses ``(N,)``."""


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class GuidanceConfig:
    """How to steer the sampler. ``loss``, ``layers`` and ``layer_weights`` describe the VGG style
    objective built by :meth:`StyleGuidedSampler.from_style`; a user's own objective ignores them.

    ``window`` is the part of the trajectory that is guided, as fractions from pure noise (0) to the
    final image (1): step i of n is guided when ``start <= (i + 0.5) / n <= end``.
    ``recurrence`` k repeats each guided step k times (Universal Guidance's self-recurrence):
    after each of the first k−1 passes x_{t-1} is re-noised to x_t with fresh noise.
    ``guidance_size`` is the side (longest) at which x̂0 is fed to the objective; ``None`` means
    ``max(sample_size, 4 * objective.min_size)``, so a 32 px model's samples are upsampled to
    64 px for a relu5_1 objective and its deepest layer sees 4×4 pixels, not 2×2.
    ``clip_grad`` c: instead of stopping on a non-finite loss or gradient, zero the non-finite
    entries and cap each entry of the step at ±c (in model units, [-1, 1] images).
    """

    scale: float = 0.0
    mode: str = "x0"
    normalize: str = "per_step"
    window: tuple[float, float] = (0.0, 1.0)
    recurrence: int = 1
    guidance_size: int | None = None
    clip_grad: float | None = None
    loss: str = "gram"
    layers: tuple[str, ...] = STYLE_LAYERS_GATYS
    layer_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ConfigError(f"guidance scale must be finite and >= 0, got {self.scale}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown guidance mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown gradient normalisation {self.normalize!r}; choose one of "
                              f"{', '.join(NORMALIZATIONS)}")
        window = tuple(float(w) for w in self.window)
        if len(window) != 2 or not (0.0 <= window[0] <= window[1] <= 1.0):
            raise ConfigError(f"guidance window must be two fractions 0 <= start <= end <= 1, got {self.window}")
        self.window = window
        if int(self.recurrence) != self.recurrence or self.recurrence < 1:
            raise ConfigError(f"recurrence must be an integer >= 1, got {self.recurrence}")
        self.recurrence = int(self.recurrence)
        if self.guidance_size is not None and self.guidance_size <= 0:
            raise ConfigError(f"guidance size must be a positive number of pixels, got {self.guidance_size}")
        if self.clip_grad is not None and not (math.isfinite(self.clip_grad) and self.clip_grad > 0):
            raise ConfigError(f"clip_grad must be a finite number > 0, got {self.clip_grad}")
        self.layers = tuple(check_layers(list(self.layers) if not isinstance(self.layers, str) else self.layers))
        if self.layer_weights is not None:
            self.layer_weights = tuple(float(w) for w in self.layer_weights)

    def active(self, index: int, steps: int) -> bool:
        """Whether step ``index`` (0 = noisiest) of ``steps`` is guided."""
        position = (index + 0.5) / steps
        return self.scale > 0 and self.window[0] <= position <= self.window[1]

    def to_dict(self) -> dict[str, Any]:
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in asdict(self).items()}


def default_guidance_size(sample_size: int, min_size: int = 1) -> int:
    """``max(sample_size, 4 * min_size)``: the deepest layer of the objective sees at least 4×4 pixels."""
    return max(int(sample_size), 4 * int(min_size))


# --------------------------------------------------------------------------------------------
# loading


@dataclass
class DiffusionModel:
    """A loaded UNet with its scheduler config and where they came from (for the sidecar)."""

    unet: Any  # diffusers.UNet2DModel
    scheduler_config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_size(self) -> tuple[int, int]:
        size = self.unet.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def scheduler(self, name: str = "ddim"):
        return make_scheduler(name, self.scheduler_config)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _is_connection_error(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 20:
        name = type(exc).__name__
        if "Connect" in name or "Timeout" in name or "gaierror" in name or "Offline" in name:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _not_found(model: str, reason: str, offline: bool = False) -> WeightsError:
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    where = "HF_HUB_OFFLINE=1 / offline" if offline or _offline() else "no network"
    return WeightsError(
        f"model {model} not found locally (HF_HOME={home}) and {where}: run `huggingface-cli download {model}` "
        f"(or `hf download {model}`) on a machine with internet (same HF_HOME), or pass a local diffusers folder "
        f"({reason})"
    )


def _local_weights(folder: Path) -> Path | None:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def load_model(model: str | os.PathLike, device: str | torch.device = "cpu", *, revision: str | None = None,
               cache_dir: str | os.PathLike | None = None, local_files_only: bool | None = None) -> DiffusionModel:
    """Load a pixel-space ``UNet2DModel`` and its scheduler config.

    ``model`` is a local diffusers pipeline folder (``unet/`` + ``scheduler/``, as
    ``DDPMPipeline.save_pretrained`` writes; a flat folder with ``config.json`` and
    ``scheduler_config.json`` also works) or a hub id, read through ``from_pretrained`` (downloaded
    into the Hugging Face cache when online; read from it with ``HF_HUB_OFFLINE=1``).
    """
    from diffusers import DDPMScheduler, UNet2DModel

    text = str(model)
    path = Path(text).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise WeightsError(f"model {text} is a file: pass a diffusers folder (unet/ and scheduler/) or a hub id")
        if not ((path / "unet" / "config.json").is_file() or (path / "config.json").is_file()):
            raise WeightsError(f"{text} is not a diffusers model folder: expected unet/config.json and "
                               "scheduler/scheduler_config.json (as DDPMPipeline.save_pretrained writes)")
        source: str | Path = path
    elif _HUB_ID.match(text) and not text.startswith((".", "~")):
        source = text
    else:
        raise WeightsError(f"model folder {text} not found: pass an existing diffusers folder or a hub id such as "
                           "google/ddpm-cifar10-32")

    kwargs: dict[str, Any] = {"revision": revision, "cache_dir": cache_dir}
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only

    def attempt(loader, subfolders):
        error: BaseException | None = None
        for subfolder in subfolders:
            try:
                return loader(source, subfolder=subfolder, **kwargs), subfolder
            except Exception as exc:  # diffusers/huggingface_hub raise OSError, ValueError, HTTP errors…
                error = exc
                if _is_connection_error(exc):
                    break
        if local:
            raise WeightsError(f"cannot load the diffusion model from {text}: {str(error).splitlines()[0]}") from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _not_found(text, reason, bool(local_files_only)) from None

    unet, unet_sub = attempt(lambda src, **kw: UNet2DModel.from_pretrained(src, **kw), ("unet", None))
    config, _ = attempt(lambda src, **kw: DDPMScheduler.load_config(src, **kw), ("scheduler", None))
    unet = unet.to(device).eval().requires_grad_(False)

    weights_file, commit = None, None
    rel = f"{unet_sub}/" if unet_sub else ""
    if local:
        weights_file = _local_weights(path / unet_sub if unet_sub else path)
    else:
        from huggingface_hub import try_to_load_from_cache

        for name in WEIGHT_FILES:
            found = try_to_load_from_cache(text, rel + name, cache_dir=cache_dir, revision=revision)
            if isinstance(found, str):
                weights_file = Path(found)
                parts = weights_file.parts
                if "snapshots" in parts:
                    commit = parts[parts.index("snapshots") + 1]
                break
    info = {
        "id": text,
        "source": "local" if local else "hub",
        "path": str(path.resolve()) if local else None,
        "revision": commit or revision,
        "weights_file": (rel + weights_file.name) if weights_file else None,
        "sha256": file_sha256(weights_file) if weights_file else None,
        "parameters": sum(p.numel() for p in unet.parameters()),
        "sample_size": unet.config.sample_size,
        "scheduler_class": config.get("_class_name"),
    }
    return DiffusionModel(unet=unet, scheduler_config=dict(config), info=info)


def make_scheduler(name: str, config: dict[str, Any]):
    """A diffusers scheduler by name from a model's scheduler config (as the pipelines convert it)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    classes = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}
    if name not in classes:
        raise ConfigError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
    return classes[name].from_config(config)


# --------------------------------------------------------------------------------------------
# sampling


@dataclass
class SampleOutput:
    images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1], on the CPU
    seeds: list[int]
    losses: list[float] | None  # final objective per image at guidance_size (None without objective)
    seconds: float
    step_seconds: list[float]  # wall time per denoising step (recurrences included)
    history: list[dict[str, Any]]  # per step: timestep, guided, mean loss and step size when guided
    guidance_size: tuple[int, int] | None = None
    batches: list[int] | None = None  # batch sizes actually run (smaller than asked after an out-of-memory)

    @property
    def seconds_per_step(self) -> float:
        return sum(self.step_seconds) / max(1, len(self.step_seconds))

    @classmethod
    def concatenate(cls, parts: Sequence["SampleOutput"]) -> "SampleOutput":
        """One output from batches sampled one after the other (per-image lists joined, times added)."""
        first = parts[0]
        history = []
        for records in zip(*(part.history for part in parts)):
            merged = dict(records[0])
            for key, value in merged.items():
                if isinstance(value, list):
                    merged[key] = [item for record in records for item in record[key]]
            history.append(merged)
        return cls(images=torch.cat([part.images for part in parts]),
                   seeds=[seed for part in parts for seed in part.seeds],
                   losses=None if first.losses is None else [loss for part in parts for loss in part.losses],
                   seconds=sum(part.seconds for part in parts),
                   step_seconds=[sum(times) for times in zip(*(part.step_seconds for part in parts))],
                   history=history, guidance_size=first.guidance_size,
                   batches=[size for part in parts for size in (part.batches or [len(part.seeds)])])


def image_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image: image i with seed s is the same alone or in a batch (as diffusers
    draws per image from a list of generators)."""
    return [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]


def _derived_seed(seed: int, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little") & (2**63 - 1)


def _per_image_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


class StyleGuidedSampler:
    """Sample a diffusers ``UNet2DModel`` with a scheduler, guided by a loss on the predicted x̂0.

    ``sampler(seeds, num_inference_steps=50, eta=0.0)`` returns a :class:`SampleOutput`. With
    ``config.scale == 0`` the loop is ``DDIMPipeline``/``DDPMPipeline``'s loop step for step.
    """

    def __init__(self, unet, scheduler, objective: GuidanceLoss | None = None,
                 config: GuidanceConfig | None = None):
        self.unet = unet
        self.scheduler = scheduler
        self.objective = objective
        self.config = config or GuidanceConfig()
        self._first_ratio: torch.Tensor | None = None  # "first_step" normalisation, per image, per call
        if self.config.scale > 0 and objective is None:
            raise ConfigError("a guidance scale > 0 needs an objective (a callable images -> (N,) losses)")
        from diffusers import DDIMScheduler, DDPMScheduler

        if self.config.scale > 0 and not isinstance(scheduler, (DDIMScheduler, DDPMScheduler)):
            raise ConfigError(f"guidance supports the DDIM and DDPM schedulers, not {type(scheduler).__name__}")

    @classmethod
    def from_style(cls, unet, scheduler, style: torch.Tensor, config: GuidanceConfig | None = None, vgg=None):
        """Guide by the VGG style loss of ``style`` (``(1, 3, H, W)`` in [0, 1]) with ``config.loss``/``layers``."""
        from .losses import style_objective
        from .vgg import load_vgg19

        config = config or GuidanceConfig()
        vgg = vgg or load_vgg19(device=unet.device)
        objective = style_objective(vgg, style.to(unet.device), list(config.layers), config.loss,
                                    list(config.layer_weights) if config.layer_weights else None)
        return cls(unet, scheduler, objective, config)

    # -- geometry and conversions -----------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, *size)

    def guidance_shape(self) -> tuple[int, int]:
        h, w = self.sample_shape[1:]
        side = self.config.guidance_size or default_guidance_size(max(h, w), getattr(self.objective, "min_size", 1))
        ratio = side / max(h, w)
        return max(1, round(h * ratio)), max(1, round(w * ratio))

    def to_objective_input(self, x0: torch.Tensor) -> torch.Tensor:
        """Model-space x̂0 in [-1, 1] -> [0, 1] at the guidance size. The clamp is straight-through:
        the loss sees a valid image and saturated pixels still get a gradient."""
        clamped = x0 + (x0.clamp(-1, 1) - x0).detach()
        images = (clamped + 1) / 2
        shape = self.guidance_shape()
        if tuple(images.shape[-2:]) != shape:
            images = F.interpolate(images, size=shape, mode="bilinear", align_corners=False,
                                   antialias=shape[0] < images.shape[-2])
        return images

    def _alpha_bar(self, t) -> torch.Tensor:
        return self.scheduler.alphas_cumprod[int(t)].to(self.device, torch.float32)

    def _prev_alpha_bar(self, t, index: int) -> torch.Tensor:
        timesteps = self.scheduler.timesteps
        prev = int(timesteps[index + 1]) if index + 1 < len(timesteps) else -1
        if hasattr(self.scheduler, "final_alpha_cumprod"):  # DDIM: same rule as its step
            prev = int(t) - self.scheduler.config.num_train_timesteps // self.scheduler.num_inference_steps
            final = self.scheduler.final_alpha_cumprod
        else:
            final = torch.tensor(1.0)
        value = self.scheduler.alphas_cumprod[prev] if prev >= 0 else final
        return torch.as_tensor(value).to(self.device, torch.float32)

    def split(self, model_output: torch.Tensor, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ε, x̂0)`` from the model output, whatever the scheduler's prediction type."""
        kind = self.scheduler.config.prediction_type
        out = model_output[:, : x.shape[1]]  # learned-variance models append the variance channels
        ab = self._alpha_bar(t)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if kind == "epsilon":
            return out, (x - s * out) / a
        if kind == "sample":
            return (x - a * out) / s, out
        if kind == "v_prediction":
            return a * out + s * x, a * x - s * out
        raise ConfigError(f"unsupported prediction type {kind!r} (epsilon, sample or v_prediction)")

    def x0_coefficient(self, t, index: int) -> torch.Tensor:
        """c_t: how much x_{t-1} moves per unit change of x̂0 in the scheduler's step (ε held fixed)."""
        from diffusers import DDIMScheduler, DDPMScheduler

        ab_prev = self._prev_alpha_bar(t, index)
        if isinstance(self.scheduler, DDIMScheduler):
            return ab_prev.sqrt()
        if isinstance(self.scheduler, DDPMScheduler):
            ab = self._alpha_bar(t)
            beta = 1 - ab / ab_prev
            return ab_prev.sqrt() * beta / (1 - ab)
        raise ConfigError(f"guidance supports the DDIM and DDPM schedulers, not {type(self.scheduler).__name__}")

    def eps_coefficient(self, t, index: int, eta: float = 0.0) -> torch.Tensor:
        """k_t = ∂x_{t-1}/∂ε of the scheduler's update with x̂0 = (x_t − σ_t·ε)/√ᾱ_t left unclipped:
        DDIM √(1 − ᾱ_{t-1} − σ_η²) − √ᾱ_{t-1}·σ_t/√ᾱ_t; DDPM −c_t·σ_t/√ᾱ_t (c_t: :meth:`x0_coefficient`).
        Negative: moving ε along +g moves x_{t-1} along −g, downhill."""
        from diffusers import DDIMScheduler

        ab, ab_prev = self._alpha_bar(t), self._prev_alpha_bar(t, index)
        x0_per_eps = -(1 - ab).sqrt() / ab.sqrt()
        if isinstance(self.scheduler, DDIMScheduler):
            variance = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
            direction = (1 - ab_prev - eta**2 * variance).clamp_min(0).sqrt()
            return direction + ab_prev.sqrt() * x0_per_eps
        return self.x0_coefficient(t, index) * x0_per_eps

    # -- one step ---------------------------------------------------------------------------

    def _autocast(self, precision: str):
        if precision == "fp32" or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    def _unet(self, x: torch.Tensor, t, precision: str) -> torch.Tensor:
        with self._autocast(precision):
            out = self.unet(x, t).sample
        return out.float() if precision != "fp32" else out

    def guidance_gradient(self, x: torch.Tensor, t, precision: str = "fp32", mode: str | None = None):
        """Evaluate the objective at x̂0(x_t) and its gradient.

        Returns ``(grad, loss, model_output, eps, x0)``: in ``through_unet`` mode ``grad`` is
        ∇_{x_t} (backward through the UNet); in ``x0`` mode it is ∇_{x̂0} and the UNet runs without
        a graph. ``x0`` is clipped to the scheduler's range in ``x0`` mode (the value it corrects).
        """
        mode = mode or self.config.mode
        with torch.enable_grad():
            if mode == "through_unet":
                x_in = x.detach().requires_grad_(True)
                model_output = self._unet(x_in, t, precision)
                eps, x0 = self.split(model_output, x_in, t)
                with self._autocast(precision):
                    loss = self.objective(self.to_objective_input(x0)).float()
                grad = torch.autograd.grad(loss.sum(), x_in)[0]
                return grad, loss.detach(), model_output.detach(), eps.detach(), x0.detach()
            with torch.no_grad():
                model_output = self._unet(x, t, precision)
                eps, x0 = self.split(model_output, x, t)
                if self.scheduler.config.clip_sample:
                    limit = self.scheduler.config.clip_sample_range
                    x0 = x0.clamp(-limit, limit)
            x0_in = x0.detach().requires_grad_(True)
            with self._autocast(precision):
                loss = self.objective(self.to_objective_input(x0_in)).float()
            grad = torch.autograd.grad(loss.sum(), x0_in)[0]
            return grad, loss.detach(), model_output, eps, x0

    def _guidance_step(self, grad: torch.Tensor, loss: torch.Tensor, eps: torch.Tensor, t, index: int,
                       steps: int) -> torch.Tensor:
        """s·σ_t·ĝ with ĝ the (normalised) gradient; checks and optional clipping."""
        config = self.config
        finite = torch.isfinite(loss).all() and torch.isfinite(grad).all()
        if not finite and config.clip_grad is None:
            values = ", ".join(f"{v:.4g}" for v in loss.tolist())
            raise NumericalError(
                f"guidance loss or gradient became non-finite at step {index + 1}/{steps} (t={int(t)}, "
                f"loss per image: {values}, scale {config.scale:g}): lower the scale, keep normalisation on, "
                "or set clip_grad (--clip-grad)"
            )
        grad = torch.nan_to_num(grad.float(), nan=0.0, posinf=0.0, neginf=0.0)
        if config.normalize == "per_step":
            grad = grad * _per_image_norm(eps.float()) / _per_image_norm(grad).clamp_min(1e-12)
        elif config.normalize == "first_step":
            if self._first_ratio is None:
                self._first_ratio = _per_image_norm(eps.float()) / _per_image_norm(grad).clamp_min(1e-12)
            grad = grad * self._first_ratio
        sigma = (1 - self._alpha_bar(t)).sqrt()
        delta = config.scale * sigma * grad
        if config.mode == "x0":  # one x̂0 correction per step: keep the trajectory's total independent of n
            delta = delta * (X0_REFERENCE_STEPS / steps)
        if config.clip_grad is not None:
            delta = delta.clamp(-config.clip_grad, config.clip_grad)
        return delta

    def step(self, x: torch.Tensor, t, index: int, steps: int, generator, eta: float = 0.0,
             precision: str = "fp32", record: dict | None = None) -> torch.Tensor:
        """One denoising step x_t -> x_{t-1} (guided when the window says so)."""
        from diffusers import DDIMScheduler

        kwargs = {"eta": eta} if isinstance(self.scheduler, DDIMScheduler) else {}
        if not self.config.active(index, steps):
            with torch.no_grad():
                model_output = self._unet(x, t, precision)
                return self.scheduler.step(model_output, t, x, generator=generator, **kwargs).prev_sample
        grad, loss, model_output, eps, x0 = self.guidance_gradient(x, t, precision)
        delta = self._guidance_step(grad, loss, eps, t, index, steps)
        with torch.no_grad():
            out = self.scheduler.step(model_output, t, x, generator=generator, **kwargs)
            if self.config.mode == "through_unet":
                prev = out.prev_sample + self.eps_coefficient(t, index, eta) * delta
            else:
                corrected = out.pred_original_sample - delta  # the scheduler's own (clipped/thresholded) x̂0
                if self.scheduler.config.clip_sample:
                    limit = self.scheduler.config.clip_sample_range
                    corrected = corrected.clamp(-limit, limit)
                coef = self.x0_coefficient(t, index)
                prev = out.prev_sample + coef * (corrected - out.pred_original_sample)
        if record is not None:
            record["loss"] = loss.tolist()
            record["step_rms"] = delta.flatten(1).pow(2).mean(1).sqrt().tolist()
        return prev

    def _renoise(self, x_prev: torch.Tensor, t, index: int, generators: list[torch.Generator]) -> torch.Tensor:
        """x_{t-1} -> x_t by the forward process: √(ᾱ_t/ᾱ_{t-1})·x_{t-1} + √(1 − ᾱ_t/ᾱ_{t-1})·ξ."""
        ratio = self._alpha_bar(t) / self._prev_alpha_bar(t, index)
        noise = torch.cat([torch.randn((1, *x_prev.shape[1:]), generator=g) for g in generators]).to(x_prev)
        return ratio.sqrt() * x_prev + (1 - ratio).sqrt() * noise

    # -- the loop ---------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, seeds: int | Sequence[int] = 0, num_inference_steps: int = 50, eta: float = 0.0,
                 precision: str = "fp32", progress: bool = True, description: str = "sample") -> SampleOutput:
        """Sample one image per seed (``int`` = one image)."""
        seeds = [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds]
        if not seeds:
            raise ConfigError("give at least one seed")
        if num_inference_steps <= 0:
            raise ConfigError(f"the number of steps must be > 0, got {num_inference_steps}")
        if not (math.isfinite(eta) and eta >= 0):
            raise ConfigError(f"eta must be finite and >= 0, got {eta}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision != "fp32" and self.device.type != "cuda":
            raise ConfigError(f"{precision} autocast needs a CUDA device; use precision fp32 on {self.device.type}")
        return self._sample_fitting(seeds, num_inference_steps, eta, precision, progress, description)

    def _sample_fitting(self, seeds: list[int], num_inference_steps: int, eta: float, precision: str,
                        progress: bool, description: str) -> SampleOutput:
        """Sample ``seeds`` as one batch; after an out-of-memory, as two halves (recursively). Each image
        has its own generators, so a split batch gives the same images as the whole one."""
        try:
            return self._sample(seeds, num_inference_steps, eta, precision, progress, description)
        except torch.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(seeds) == 1:
                raise ResourceError(f"out of {self.device.type} memory sampling one image: lower --guidance-size, "
                                    "use --precision bf16, or a smaller model") from None
            half = (len(seeds) + 1) // 2
            warnings.warn(f"out of memory at batch size {len(seeds)}; retrying as {half} + {len(seeds) - half}",
                          stacklevel=2)
            return SampleOutput.concatenate([
                self._sample_fitting(part, num_inference_steps, eta, precision, progress, description)
                for part in (seeds[:half], seeds[half:])])

    def _sample(self, seeds: list[int], num_inference_steps: int, eta: float, precision: str, progress: bool,
                description: str) -> SampleOutput:
        from diffusers.utils.torch_utils import randn_tensor

        generators = image_generators(seeds)
        generator = generators[0] if len(generators) == 1 else generators
        x = randn_tensor((len(seeds), *self.sample_shape), generator=generator, device=self.device,
                         dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        steps = len(timesteps)
        renoise_generators = image_generators([_derived_seed(s, "recurrence") for s in seeds])
        self._first_ratio = None
        history: list[dict[str, Any]] = []
        step_seconds: list[float] = []
        start = time.perf_counter()
        bar = tqdm(timesteps, desc=description, disable=not progress, leave=False, dynamic_ncols=True)
        for index, t in enumerate(bar):
            tick = time.perf_counter()
            record: dict[str, Any] = {"step": index + 1, "t": int(t), "guided": self.config.active(index, steps)}
            repeats = self.config.recurrence if record["guided"] else 1
            states = [g.get_state() for g in generators]
            for repeat in range(repeats):
                if repeat:
                    for g, state in zip(generators, states):  # every pass draws the step noise the
                        g.set_state(state)                     # unguided run draws, so seeds stay aligned
                    x = self._renoise(x_prev, t, index, renoise_generators)
                x_prev = self.step(x, t, index, steps, generator, eta, precision, record)
            x = x_prev
            step_seconds.append(time.perf_counter() - tick)
            if "loss" in record:
                bar.set_postfix(loss=f"{sum(record['loss']) / len(record['loss']):.4g}", refresh=False)
            history.append(record)
        bar.close()
        seconds = time.perf_counter() - start
        if not torch.isfinite(x).all():
            raise NumericalError("sampling produced non-finite pixels: lower the guidance scale or set clip_grad")
        images = (x.float() / 2 + 0.5).clamp(0, 1)
        losses = None
        if self.objective is not None:
            losses = self.objective(self.to_objective_input(images * 2 - 1)).float().tolist()
        return SampleOutput(images=images.cpu(), seeds=seeds, losses=losses, seconds=seconds,
                            step_seconds=step_seconds, history=history,
                            guidance_size=self.guidance_shape() if self.objective is not None else None,
                            batches=[len(seeds)])


def image_grid(images: torch.Tensor, columns: int | None = None, padding: int = 2) -> torch.Tensor:
    """``(N, 3, H, W)`` -> ``(1, 3, H', W')`` grid on white, ``columns`` default min(N, 8)."""
    n, c, h, w = images.shape
    columns = columns or min(n, 8)
    rows = math.ceil(n / columns)
    grid = torch.ones(1, c, rows * h + (rows + 1) * padding, columns * w + (columns + 1) * padding)
    for i in range(n):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[0, :, top: top + h, left: left + w] = images[i]
    return grid
