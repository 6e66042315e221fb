"""One image-optimisation engine for feature inversion, texture synthesis and style transfer.

The image's pixels are the only parameters. Each step is one VGG forward and backward pass
(L-BFGS runs with ``max_iter=1`` per step and keeps its curvature history across steps), so a
step costs what the network costs and the progress bar counts real work. After every step the
pixels are projected back onto ``[0, 1]``: the image that is written is the image that was
optimised, and the reported final loss is measured on it. Multi-scale runs
optimise at increasing sizes, each initialised by upsampling the previous result. Every random draw
(the initial noise, a loss's projections) follows the run's seed (:mod:`stylediff.core.seeding`).

The output is the iterate with the lowest loss, not the last one. Without a line search L-BFGS
can overshoot (the projection onto [0, 1] also makes its curvature pairs inexact): in the findings
grid 189 of 399 runs had a step whose loss was more than twice the best so far, and in 6 the last
iterate ended 2-68x above the best one. A strong-Wolfe line search would prevent the overshoot at
one or more extra network passes per step; keeping the best iterate costs one image copy.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from ..core.errors import ConfigError, NumericalError
from ..core.images import resize, scaled_shape
from ..core.seeding import ImageStreams, drawing_from
from ..networks.base import FeatureNetwork
from .losses import ContentTerm, Objective, StyleTerm

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("noise", "content", "mean", "spectrum")


@dataclass
class OptimizeConfig:
    """How to optimise: everything a sidecar needs to rerun the optimisation."""

    steps: int = 300
    optimizer: str = "lbfgs"
    lr: float | None = None  # default: 1.0 for L-BFGS, 0.02 for Adam
    seed: int = 0
    init: str = "noise"
    scales: tuple[int, ...] = ()  # longest sides of coarser passes run before the final size
    history_size: int = 50
    first_step: float | None = None  # L-BFGS's first step, RMS change of a pixel; None: torch's (L1 length lr)
    tv_weight: float = 0.0
    clamp: bool = True  # project pixels onto [0, 1] after every step
    progress: bool = True

    def __post_init__(self):
        if self.steps <= 0:
            raise ConfigError(f"steps must be > 0, got {self.steps}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if self.first_step is not None and not (math.isfinite(self.first_step) and self.first_step > 0):
            raise ConfigError(f"first step must be a finite number > 0, got {self.first_step}")
        if not math.isfinite(self.tv_weight) or self.tv_weight < 0:
            raise ConfigError(f"tv weight must be finite and >= 0, got {self.tv_weight}")
        if any(s <= 0 for s in self.scales):
            raise ConfigError(f"scales must be positive sizes, got {list(self.scales)}")
        self.scales = tuple(int(s) for s in self.scales)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OptimizeResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1]
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per step
    seconds: float = 0.0

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def initial_image(
    shape: tuple[int, int], init: str, seed: int, reference: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """Uniform white noise, the (resized) reference image, the reference's mean colour plus uniform
    noise of amplitude 0.1, or random phase noise with the reference's spectrum (:func:`random_phase`).
    Full-amplitude white noise leaves high-frequency residue that a style loss barely constrains, so
    texture synthesis starts from ``spectrum`` (``mean`` before; see :func:`random_phase`)."""
    generator = torch.Generator().manual_seed(seed)
    if init == "spectrum" and reference is not None:
        return random_phase(resize(reference.cpu(), shape), generator).to(device)
    noise = torch.rand((1, 3, *shape), generator=generator)
    if init == "noise" or reference is None:
        image = noise
    elif init == "content":
        image = resize(reference.cpu(), shape)
    else:
        image = reference.cpu().mean(dim=(2, 3), keepdim=True) + 0.1 * (noise - 0.5)
    return image.to(device)


LAYOUT_CYCLES = 6
""":func:`random_phase` keeps the mean colour at frequencies below this many cycles per image (the longest
side): those are the layout's scale, and a start that carries them carries the exemplar's layout over
(``layout_copy``, which ``bench/texture_defaults.py`` reports for the textures grown from it)."""


def periodic_component(image: torch.Tensor) -> torch.Tensor:
    """Moisan's periodic component ("Periodic plus smooth image decomposition", JMIV 2011, eq. 10 and
    algorithm 1): ``image`` minus the smooth image whose Laplacian is the jumps across opposite borders,
    so that the image wraps around without an edge, whose spectrum would be a bright cross."""
    height, width = image.shape[-2:]
    jumps = torch.zeros_like(image)
    rows = image[..., -1, :] - image[..., 0, :]
    jumps[..., 0, :] += rows
    jumps[..., -1, :] -= rows
    columns = image[..., :, -1] - image[..., :, 0]
    jumps[..., :, 0] += columns
    jumps[..., :, -1] -= columns
    q = torch.arange(height, dtype=image.dtype).unsqueeze(1)
    r = torch.arange(width, dtype=image.dtype)
    laplacian = 2 * torch.cos(2 * math.pi * q / height) + 2 * torch.cos(2 * math.pi * r / width) - 4
    laplacian[0, 0] = 1
    smooth = torch.fft.fft2(jumps) / laplacian
    smooth[..., 0, 0] = 0
    return image - torch.fft.ifft2(smooth).real


def random_phase(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random phase noise (Galerne, Gousseau & Morel, "Random Phase Textures", IEEE TIP 2011) above the
    layout's frequencies: the image's Fourier amplitudes with the phases of white Gaussian noise, one
    phase field for the three channels (so the colours keep their correlations), zero below
    :data:`LAYOUT_CYCLES` cycles per image, plus the mean colour, clipped to [0, 1].

    It has the exemplar's colours and its power spectrum at the scales of strokes and detail, which
    the shallow layers' statistics largely describe, and none of its layout (the phases carry it). As a
    texture's start it reached pastiche's Gram distance in fewer steps than the mean colour with noise
    (``bench/texture_defaults.py``, docs/benchmarks.md). As in the paper, the spectrum is that of the image's
    :func:`periodic_component`: the jump across the borders of the image itself would add streaks
    along the axes, which the optimisation did not remove in 13 steps.
    """
    image = periodic_component(image)
    mean = image.mean(dim=(2, 3), keepdim=True)
    shape = image.shape[-2:]
    noise = torch.fft.rfft2(torch.randn((1, 1, *shape), generator=generator))
    phase = noise / noise.abs().clamp_min(1e-12)
    frequency = torch.maximum(torch.fft.fftfreq(shape[0]).abs().unsqueeze(1), torch.fft.rfftfreq(shape[1]))
    detail = frequency >= LAYOUT_CYCLES / max(shape)
    spectrum = torch.fft.rfft2(image - mean) * phase * detail
    return (torch.fft.irfft2(spectrum, s=shape) + mean).clamp(0, 1)


_DYNAMO_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
"""``torch.optim.Optimizer`` methods wrapped in ``torch._disable_dynamo``, which imports ``torch._dynamo`` on
their first call: 2.4 s of a CLI run's start-up, more than the whole 1-s budget from ``import torch``
to the first step, for a compiler this engine never uses."""


@contextlib.contextmanager
def _without_dynamo_import():
    """While the engine runs, let those wrappers call the plain method instead of importing torch._dynamo.

    ``_disable_dynamo``'s wrapper looks for a cached ``__dynamo_disable`` on the function it wraps and
    imports dynamo only when there is none; "disable dynamo" is the identity when nothing is being
    compiled, so caching the function itself is exact. Nothing is changed when dynamo is already
    imported (a user compiling something), and the cache is removed on exit, so code outside the engine
    gets torch's own behaviour."""
    from torch.optim import Optimizer

    patched = []
    if "torch._dynamo" not in sys.modules:
        for name in _DYNAMO_GUARDED:
            function = getattr(vars(Optimizer).get(name), "__wrapped__", None)
            if function is not None and not hasattr(function, "__dynamo_disable"):
                function.__dynamo_disable = function
                patched.append(function)
    try:
        yield
    finally:
        for function in patched:
            if getattr(function, "__dynamo_disable", None) is function:
                del function.__dynamo_disable


def _sized_first_step(optimizer, image: torch.Tensor, closure, config: OptimizeConfig):
    """The closure to hand L-BFGS, its first step sized to move the pixels by ``config.first_step`` (RMS).

    L-BFGS's first iteration steps ``-g·min(1, 1/‖g‖₁)·lr``: for an image, a step of L1 length lr over all
    its pixels, which moves each by ~1e-5, wastes an evaluation, and whose curvature pair then misjudges
    the second step. Here the closure is evaluated once, its gradient sets lr so that that step moves the
    pixels by ``first_step``, and the returned closure hands that evaluation to L-BFGS's first call (the
    image and its gradient are still those of it); the caller restores lr after the step.

    Returns:
        ``closure`` itself for Adam or without ``first_step``, else the closure that reuses the evaluation.
    """
    if config.optimizer != "lbfgs" or not config.first_step:
        return closure
    cached = [closure()]
    grad = image.grad
    rms = grad.pow(2).mean().sqrt().item()
    if rms > 0:
        optimizer.param_groups[0]["lr"] = config.first_step * max(grad.abs().sum().item(), 1.0) / rms

    def reusing() -> torch.Tensor:
        return cached.pop() if cached else closure()

    return reusing


def _optimize_image(
    objective: Objective, init: torch.Tensor, config: OptimizeConfig, description: str = "optimize"
) -> OptimizeResult:
    """Minimise ``objective`` over the pixels of ``init`` for ``config.steps`` steps.

    The loss is divided by its value at the start so that L-BFGS's fixed tolerances and
    curvature test see numbers of order one whatever the objective's scale. A non-finite
    loss or gradient stops the run with :class:`NumericalError`.
    """
    image = init.detach().clone().requires_grad_(True)
    if config.optimizer == "lbfgs":
        optimizer = torch.optim.LBFGS(
            [image],
            lr=config.lr or 1.0,
            max_iter=1,
            history_size=config.history_size,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    else:
        optimizer = torch.optim.Adam([image], lr=config.lr or 0.02)
    history: list[dict[str, float]] = []
    scale: list[float] = []
    best = {"loss": math.inf, "image": None, "step": 0}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total, parts = objective.evaluate(image)
        loss = total.sum()
        value = loss.item()
        if not math.isfinite(value):
            raise NumericalError(
                f"{description}: loss became {value} at step {len(history) + 1} "
                f"(parts: {', '.join(f'{k}={v.sum().item():.3g}' for k, v in parts.items())}); "
                "lower the learning rate or the weights"
            )
        if not scale:
            scale.append(1.0 / max(value, 1e-30))
        scaled = loss * scale[0]
        scaled.backward()
        if not torch.isfinite(image.grad).all():
            raise NumericalError(f"{description}: gradient became non-finite at step {len(history) + 1}")
        history.append(
            {"step": len(history) + 1, "loss": value, **{name: part.sum().item() for name, part in parts.items()}}
        )
        if value < best["loss"]:
            best.update(loss=value, image=image.detach().clone(), step=len(history))
        return scaled.detach()

    start = time.perf_counter()
    with tqdm(
        total=config.steps, desc=description, disable=not config.progress, leave=False, dynamic_ncols=True
    ) as bar:
        lr = optimizer.param_groups[0]["lr"]
        step_closure = _sized_first_step(optimizer, image, closure, config)
        for _ in range(config.steps):
            optimizer.step(step_closure)
            optimizer.param_groups[0]["lr"] = lr  # after a sized first step: L-BFGS's own
            if config.clamp:
                with torch.no_grad():
                    image.clamp_(0, 1)
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]['loss']:.4g}", refresh=False)
    if not torch.isfinite(image).all():
        raise NumericalError(f"{description}: the optimised image has non-finite pixels")
    output = image.detach().clamp(0, 1)
    with torch.no_grad():
        final_total, final_parts = objective.evaluate(output)
        if best["loss"] < final_total.sum().item():
            output = best["image"].clamp(0, 1)
            final_total, final_parts = objective.evaluate(output)
    history.append(
        {
            "step": len(history) + 1,
            "loss": final_total.sum().item(),
            "best_step": best["step"],
            **{name: part.sum().item() for name, part in final_parts.items()},
        }
    )
    return OptimizeResult(image=output, history=history, seconds=time.perf_counter() - start)


def optimize_image(
    objective: Objective, init: torch.Tensor, config: OptimizeConfig, description: str = "optimize"
) -> OptimizeResult:
    """Minimise ``objective`` over the pixels of ``init`` for ``config.steps`` steps (see
    :func:`_optimize_image`), without paying for an import of torch's compiler."""
    with _without_dynamo_import():
        return _optimize_image(objective, init, config, description)


COARSEST_SCALE = 64
"""The smallest pass of :func:`coarse_to_fine`. At 64 px relu5_1 still has 4×4 positions; a 32-px pass
as well gave no consistent gain (Starry Night, 12 steps per scale, Gram distance to the style: 256 px
0.26 with it against 0.23 without, 128 px 0.29 against 0.33)."""


def coarse_to_fine(size: int) -> tuple[int, ...]:
    """The coarse passes run before ``size`` by default: its halvings down to :data:`COARSEST_SCALE`.

    A step at half the size costs about a quarter as much and moves the large structures the deep
    layers describe as far as a full-size step does; the fine pass then only has to add detail. On
    Starry Night at 256 px (style read at 512, from the mean colour) 12 steps at each of 64, 128 and
    256 px reached a Gram distance of 0.23 in 10 s, where one scale needed 48 steps and 23 s for
    0.24, and pastiche's 150 steps 79 s for 0.35 (bench/nst_vs_pastiche.py has the medians).
    256 → (64, 128); 128 → (64,); below 128 → ()."""
    scales = []
    side = size // 2
    while side >= COARSEST_SCALE:
        scales.append(side)
        side //= 2
    return tuple(reversed(scales))


def _multiscale(
    build: Callable[[tuple[int, int]], Objective],
    shape: tuple[int, int],
    config: OptimizeConfig,
    reference: torch.Tensor | None,
    device: torch.device,
    description: str,
) -> OptimizeResult:
    """Run the passes of ``config.scales`` (coarse to fine) then the final size, chaining the images."""
    shapes = [scaled_shape(shape, s) for s in config.scales if s < max(shape)] + [tuple(shape)]
    image = initial_image(shapes[0], config.init, config.seed, reference, device)
    history: list[dict[str, float]] = []
    seconds = 0.0
    with drawing_from(ImageStreams([config.seed])):  # a loss's random draws follow the run's seed
        for index, current in enumerate(shapes):
            if index:
                image = resize(image, current)
            result = optimize_image(build(current), image, config, f"{description} {current[1]}x{current[0]}")
            image, seconds = result.image, seconds + result.seconds
            history += [{**entry, "scale": max(current)} for entry in result.history]
    return OptimizeResult(image=image, history=history, seconds=seconds)


def invert(vgg: FeatureNetwork, image: torch.Tensor, layer: str, config: OptimizeConfig) -> OptimizeResult:
    """Feature inversion (Mahendran & Vedaldi): reconstruct ``image`` from its activations at ``layer``."""
    vgg.check_layers([layer])
    image = image.to(next(vgg.parameters()).device)

    def build(shape):
        term = ContentTerm(vgg, resize(image, shape), [layer])
        return Objective(vgg, {"content": (term, 1.0)}, tv_weight=config.tv_weight)

    return _multiscale(build, tuple(image.shape[-2:]), config, image, image.device, f"invert {layer}")


def synthesize_texture(
    vgg: FeatureNetwork,
    style: torch.Tensor,
    layers: list[str] | str,
    loss: str,
    shape: tuple[int, int],
    config: OptimizeConfig,
    layer_weights: list[float] | None = None,
) -> OptimizeResult:
    """Texture synthesis (Gatys et al. 2015): match the style statistics of ``style`` from noise.

    The style statistics are computed once; ``shape`` (the output size) may differ from the style's.
    """
    style = style.to(next(vgg.parameters()).device)
    term = StyleTerm(vgg, style, layers, loss, layer_weights)
    objective = Objective(vgg, {"style": (term, 1.0)}, tv_weight=config.tv_weight)
    return _multiscale(lambda _shape: objective, shape, config, style, style.device, f"texture {loss}")


def transfer_style(
    vgg: FeatureNetwork,
    content: torch.Tensor,
    style: torch.Tensor,
    layers: list[str] | str,
    loss: str,
    config: OptimizeConfig,
    content_layer: str | None = None,
    style_weight: float = 10.0,
    content_weight: float = 1.0,
    layer_weights: list[float] | None = None,
) -> OptimizeResult:
    """Neural style transfer (Gatys et al. 2016): content of ``content`` with the style of ``style``
    (``content_layer`` None: the network's own content layer, relu4_2 for VGG-19)."""
    content_layer = content_layer or vgg.content_layer
    device = next(vgg.parameters()).device
    content, style = content.to(device), style.to(device)
    style_term = StyleTerm(vgg, style, layers, loss, layer_weights)

    def build(shape):
        content_term = ContentTerm(vgg, resize(content, shape), [content_layer])
        return Objective(
            vgg,
            {"content": (content_term, content_weight), "style": (style_term, style_weight)},
            tv_weight=config.tv_weight,
        )

    return _multiscale(build, tuple(content.shape[-2:]), config, content, device, f"transfer {loss}")
