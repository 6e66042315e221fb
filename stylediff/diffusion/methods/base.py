"""What every guidance method shares: the per-step context, the window and recurrence loop, the description.

The per-step context the sampler hands it, the window and recurrence (time travel) loop, and the
description ``stylediff methods`` prints.

A method sees one denoising step through a :class:`StepContext`: it may call the UNet
(``ctx.unet``), the objective on a model-space x̂0 (``ctx.loss``), the scheduler's own step
(``ctx.base_step``, always with the step noise of the unguided run), and then states its change to
that step as Δx̂0, Δε̂ and a direct shift of x_{t−1} (``ctx.finish``). The sampler knows no method;
a method knows no sampler loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import torch

from ...core.errors import ConfigError, NumericalError
from ..schedule import Schedule, is_ddim


@dataclass(frozen=True)
class Evaluations:
    """Network evaluations (each on the whole batch) of one denoising step."""

    unet_forward: int = 0
    unet_backward: int = 0
    objective_forward: int = 0
    objective_backward: int = 0

    def __add__(self, other: Evaluations) -> Evaluations:
        """The evaluations of both, counted together."""
        return Evaluations(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def __mul__(self, k: int) -> Evaluations:
        """The evaluations of ``k`` such steps."""
        return Evaluations(*(a * k for a in self.as_tuple()))

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(unet_forward, unet_backward, objective_forward, objective_backward)``."""
        return (self.unet_forward, self.unet_backward, self.objective_forward, self.objective_backward)

    def to_dict(self) -> dict[str, int]:
        """The four counts by name."""
        return asdict(self)


UNGUIDED_STEP = Evaluations(unet_forward=1)


@dataclass
class BaseStep:
    """The scheduler's own step from the model output: x_{t−1}, and the (x̂0, ε̂) pair it used."""

    prev: torch.Tensor
    x0: torch.Tensor  # the scheduler's x̂0 (clipped when its config says clip_sample)
    eps: torch.Tensor  # the model's ε̂


@dataclass
class StepContext:
    """One denoising step as a method sees it (made by the sampler for every step)."""

    x: torch.Tensor
    t: Any
    index: int
    steps: int
    eta: float
    schedule: Schedule
    unet: Callable[[torch.Tensor], torch.Tensor]
    """x_t -> model output, conditioning and classifier-free guidance folded in (autocast as configured);
    differentiable when x_t requires grad."""
    loss: Callable[[torch.Tensor], torch.Tensor]
    """model-space x̂0 -> objective per image ``(N,)`` of the model's image of it (``to_image``: pixels
    clamped straight-through, or latents decoded with gradient), resized to the guidance size."""
    scheduler_step: Callable[[torch.Tensor, torch.Tensor], Any]
    """(model output, x_t) -> the scheduler's output, always drawing the unguided run's step noise."""
    noise: Callable[[tuple, str], torch.Tensor]
    """(shape of one image, purpose) -> one standard normal draw per image from its own stream."""
    clamp: Callable[[torch.Tensor], torch.Tensor] = lambda x0: x0.clamp(-1, 1)
    """A model-space x̂0 clamped to the model's valid range ([-1, 1] for pixels; latents are not clamped)."""
    autoencode: Callable[[torch.Tensor], torch.Tensor] | None = None
    """x̂0 -> encode(decode(x̂0)) through the model's autoencoder (latent models; MPGD's projection)."""
    correction: torch.Tensor | None = None
    """w·(ε_c − ε_u) of the last ``unet`` call's classifier-free guidance, in ε-space whatever the model
    predicts (the sampler converts a v- or x0-prediction's correction with ``Schedule.eps_change``);
    None without CFG."""
    state: dict = field(default_factory=dict)
    """Kept across the steps of one sampling call (e.g. a first step's normalisation ratio)."""
    record: dict = field(default_factory=dict)
    """What the step reports to the callback: loss per image, rms of the guidance's change of x_{t−1}."""
    attention: Callable[[torch.Tensor, Any, list[int]], list] | None = None
    """(x, t, layers) -> the :class:`~..attention.AttentionRecord` of each self-attention layer in ``layers``
    (forward-order numbers) in one UNet call on x at t: null prompt, no classifier-free guidance, the
    sampler's autocast; differentiable when x requires grad (the model adapter's ``attention``)."""
    attention_layers: Callable[[int], list[int]] | None = None
    """count -> the last ``count`` self-attention layers of the UNet's decoder, in forward order."""
    reference: Callable[[str], torch.Tensor | None] = lambda name: None
    """name (``style``, ``content``) -> that reference image in model space (the VAE's posterior mean, or
    ``2x − 1``), a batch of one at the model's image shape; None when the run has none."""

    @property
    def prev_timestep(self) -> int:
        """The timestep of the x_{t−1} this step makes.

        DDIM's t − T/n, 0 at the end (Attention Distillation's ``max(t − T // n, 0)``,
        ``pipeline_sd.py:622-627``); DDPM's next timestep, 0 after the last.
        """
        scheduler = self.schedule.scheduler
        if is_ddim(scheduler):
            return max(int(self.t) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps, 0)
        timesteps = scheduler.timesteps
        return int(timesteps[self.index + 1]) if self.index + 1 < len(timesteps) else 0

    @property
    def clip_range(self) -> float | None:
        """The scheduler's ``clip_sample_range`` when it clips x̂0, else None."""
        config = self.schedule.scheduler.config
        return float(config.clip_sample_range) if config.clip_sample else None

    def split(self, model_output: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ε̂, x̂0)`` of a model output at x (:meth:`~stylediff.diffusion.schedule.Schedule.split` at this t)."""
        return self.schedule.split(model_output, x, self.t)

    def base_step(self, model_output: torch.Tensor, x: torch.Tensor, rederive_eps: bool = False) -> BaseStep:
        """The scheduler's step, with the step noise of the unguided run.

        diffusers calls DDIM with ``use_clipped_model_output=False``: the model's ε̂ beside the clipped x̂0.

        Args:
            model_output: the UNet's output at x.
            x: x_t.
            rederive_eps: ε̂ re-derived from x_t and the clipped x̂0 instead,
                ε̂ = (x_t − √ᾱ_t·x̂0)/√(1 − ᾱ_t), as guided-diffusion's ``ddim_sample`` and the DDIM samplers
                of DPS/MPGD do (equal to the model's ε̂ when nothing is clipped; DDPM's update has no ε̂
                term).

        Returns:
            x_{t−1} and the (x̂0, ε̂) it used, without graph.
        """
        with torch.no_grad():
            out = self.scheduler_step(model_output.detach(), x.detach())
            eps, _ = self.split(model_output.detach(), x.detach())
            base = BaseStep(prev=out.prev_sample, x0=out.pred_original_sample, eps=eps)
            if rederive_eps:
                ab = self.schedule.alpha_bar(self.t)
                rederived = (x.detach() - ab.sqrt() * base.x0) / (1 - ab).sqrt()
                coefficient = self.schedule.eps_coefficient(self.t, self.index, self.eta)
                base = BaseStep(prev=base.prev + coefficient * (rederived - eps), x0=base.x0, eps=rederived)
        return base

    def finish(
        self,
        base: BaseStep,
        d_x0: torch.Tensor | None = None,
        d_eps: torch.Tensor | None = None,
        d_prev: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The guided x_{t−1} = base + c_x0·Δx̂0 + c_ε·Δε̂ + Δx_{t−1} (the update is linear in x̂0 and ε̂).

        Records the RMS of the change per image (``step_rms``).

        Args:
            base: the scheduler's step (:meth:`base_step`).
            d_x0: Δx̂0 with ε̂ held.
            d_eps: Δε̂ with x̂0 held.
            d_prev: a direct shift of x_{t−1}.

        Returns:
            x_{t−1}.
        """
        with torch.no_grad():
            prev = base.prev
            if d_x0 is not None:
                prev = prev + self.schedule.x0_coefficient(self.t, self.index) * d_x0
            if d_eps is not None:
                prev = prev + self.schedule.eps_coefficient(self.t, self.index, self.eta) * d_eps
            if d_prev is not None:
                prev = prev + d_prev
            self.record["step_rms"] = (prev - base.prev).flatten(1).pow(2).mean(1).sqrt().tolist()
        return prev

    def check_finite(
        self, loss: torch.Tensor, grad: torch.Tensor, scale: float, clip: float | None = None
    ) -> torch.Tensor:
        """Check the loss and gradient, and record the loss per image.

        Args:
            loss: the loss per image.
            grad: its gradient.
            scale: the method's scale (for the message).
            clip: the method's ``clip_grad``; set, non-finite entries are zeroed instead of failing.

        Returns:
            The gradient (float32), non-finite entries zeroed.

        Raises:
            NumericalError: a non-finite loss or gradient without ``clip``: the message names the step,
                its timestep, the loss per image and the scale.
        """
        if not (torch.isfinite(loss).all() and torch.isfinite(grad).all()) and clip is None:
            values = ", ".join(f"{v:.4g}" for v in loss.tolist())
            raise NumericalError(
                f"guidance loss or gradient became non-finite at step {self.index + 1}/{self.steps} "
                f"(t={int(self.t)}, loss per image: {values}, scale {scale:g}): lower the scale, or set clip_grad "
                "(--clip-grad)"
            )
        self.record["loss"] = loss.detach().float().tolist()
        return torch.nan_to_num(grad.float(), nan=0.0, posinf=0.0, neginf=0.0)


STEP_SIZES = ("auto", "cfg", "pixel")
"""FreeDoM's and MPGD's step-size rules: ``cfg`` = their Stable Diffusion samplers' (the size of this
step's classifier-free-guidance correction over the gradient's), ``pixel`` = their pixel-space code's,
``auto`` = ``cfg`` where classifier-free guidance runs, else ``pixel``."""


def resolve_step_size(method: str, step_size: str, cfg: bool) -> str:
    """``step_size`` with ``auto`` resolved for a model with or without classifier-free guidance.

    Args:
        method: the method's name (for messages).
        step_size: ``auto``, ``cfg`` or ``pixel``.
        cfg: whether classifier-free guidance runs.

    Returns:
        ``cfg`` or ``pixel``.

    Raises:
        ConfigError: an unknown step size, or ``cfg`` without classifier-free guidance (there is no
            correction to measure).
    """
    if step_size not in STEP_SIZES:
        raise ConfigError(f"unknown {method} step size {step_size!r}; choose one of {', '.join(STEP_SIZES)}")
    if step_size == "auto":
        return "cfg" if cfg else "pixel"
    if step_size == "cfg" and not cfg:
        raise ConfigError(
            f"{method} --step-size cfg needs classifier-free guidance (a text model with --cfg-scale > 1); "
            "use --step-size pixel"
        )
    return step_size


def knob(default: Any, help: str, **spec: Any) -> Any:
    """A method's knob: a dataclass field with its ``stylediff sample`` help in its metadata.

    The CLI makes the flag ``--NAME`` from it, typed by the field's annotation, under the method's group. A
    subclass that only changes the default redeclares the field plainly (``window: tuple[float, float] =
    (0.3, 0.7)``); the help is found up the class tree. The API pages show the default in the class's
    signature and the help as the field's description (``docs/griffe_knobs.py``).

    Args:
        default: the knob's default.
        help: the flag's help text.
        **spec: more metadata (``choices`` for a string knob).

    Returns:
        A ``dataclasses.field``.

    Example:
        ```python
        rho: float = knob(1.0, "mean-guidance strength rho")
        log_prob: str = knob("norm", "log p = -sqrt(L)/100 (norm) or -L (squared)", choices=("norm", "squared"))
        ```
    """
    return field(default=default, metadata={"help": help, **spec})


def per_image_norm(x: torch.Tensor) -> torch.Tensor:
    """‖x_i‖ over each image's pixels, shaped to broadcast against x.

    Args:
        x: ``(N, ...)``.

    Returns:
        ``(N, 1, …, 1)``.
    """
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def per_image_rms(x: torch.Tensor) -> torch.Tensor:
    """√mean(x_i²) over each image's pixels, shaped to broadcast against x.

    Args:
        x: ``(N, ...)``.

    Returns:
        ``(N, 1, …, 1)``.
    """
    return x.flatten(1).pow(2).mean(1).sqrt().view(-1, *([1] * (x.dim() - 1)))


def unet_gradient(ctx: StepContext, x: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Model output at x_t with its graph, and ∇_{x_t} of ``loss_of(loss per image)`` back through the UNet.

    Args:
        ctx: the step.
        x: x_t.
        loss_of: a function of the loss per image whose gradient is taken (None: the loss).

    Returns:
        ``(model_output, eps, x0, loss, grad)``, all but ``grad`` detached.
    """
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        out = ctx.unet(x_in)
        eps, x0 = ctx.split(out, x_in)
        loss = ctx.loss(x0)
        value = loss if loss_of is None else loss_of(loss)
        grad = torch.autograd.grad(value.sum(), x_in)[0]
    return out.detach(), eps.detach(), x0.detach(), loss.detach(), grad


def x0_gradient(
    ctx: StepContext, x0: torch.Tensor, project: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss at x̂0 (or at ``project(x̂0)``) and ∇_{x̂0} (no UNet in the graph).

    Args:
        ctx: the step.
        x0: x̂0 in model space.
        project: a map applied before the loss (MPGD's autoencoder projection), or None.

    Returns:
        ``(loss, grad)``, the loss detached.
    """
    with torch.enable_grad():
        x0_in = x0.detach().requires_grad_(True)
        loss = ctx.loss(x0_in if project is None else project(x0_in))
        grad = torch.autograd.grad(loss.sum(), x0_in)[0]
    return loss.detach(), grad


@dataclass
class GuidanceMethod:
    """A guidance rule: one denoising step given a :class:`StepContext`.

    Class attributes describe it (``stylediff methods`` prints them); dataclass fields are its knobs,
    each a CLI flag of the same name. ``scale`` is every method's strength; ``window`` the guided
    part of the trajectory (fractions from pure noise, 0, to the image, 1: step i of n is guided when
    start <= (i + ½)/n <= end); ``recurrence`` k repeats a guided step k times, re-noising x_{t−1} back
    to x_t by the forward process between passes (Universal Guidance's self-recurrence, FreeDoM's time
    travel, TFG's N_recur), every pass with the unguided run's step noise. The API pages list each
    method's knobs, with their help, under the class's attributes.

    Raises:
        ConfigError: a negative or non-finite scale, a window that is not two fractions
            0 ≤ start ≤ end ≤ 1, or a recurrence that is not an integer ≥ 1.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    differentiates_unet: ClassVar[bool] = False
    """Whether its guidance gradient is taken through the UNet (a UNet backward per guided pass)."""
    scale_range: ClassVar[tuple[float, float]] = (0.0, 0.0)
    """Range of ``scale`` in which the Gram style loss moves the faces demo model's samples without
    destroying them, measured with ``python bench/scale_range.py`` (30 DDIM steps, 2 styles × 2 seeds,
    scales a factor √10 apart): low = the first scale whose Gram distance is ≤ 0.9 × the unguided one;
    high = the last whose realism distance is ≤ 30 % of the way to noise's (faces still visible by eye).
    The default ``scale`` is the range's geometric middle, rounded."""
    note: ClassVar[str] = ""
    clamp: ClassVar[str] = "straight-through (the project's own rule)"
    """How the loss reads x̂0 here and in the reference: ``straight-through`` = the sampler's clamp to
    [-1, 1] whose gradient passes saturated pixels; ``in-graph`` = a plain clamp (no gradient there)."""
    latent_note: ClassVar[str] = ""
    """What the rule does on a latent model (ctx.loss decodes x̂0 with gradient) and how its reference does it."""
    search_factors: ClassVar[dict[str, float]] = {"scale": 2.0}
    """Knobs ``stylediff search`` multiplies, each by its factor, one child per knob per round."""
    search_start: ClassVar[dict[str, float]] = {}
    """Where ``stylediff search`` starts a knob (default: ``scale`` at its range's low end, others at
    their defaults)."""
    search_caps: ClassVar[dict[str, float]] = {}
    """The largest value ``stylediff search`` gives a knob (default: uncapped)."""
    clip_style_layer: ClassVar[str | None] = None
    """The CLIP layer of the reference's style loss (``hidden3``: OpenAI CLIP's ``feats[2]``, the output of
    the third block; ``hidden2``: transformers' ``hidden_states[2]``), the default ``--layers`` when the
    guidance network is a CLIP encoder; None: the network's own default style layer."""

    needs_objective: ClassVar[bool] = True
    """Whether the rule reads the objective (``ctx.loss``); a rule on the UNet's own features does not."""
    needs_references: ClassVar[tuple[str, ...]] = ()
    """The reference images the rule reads through ``ctx.reference`` and cannot run without."""

    scale: float = knob(0.0, "the method's strength; 0 = the unguided diffusers sample")
    window: tuple[float, float] = knob(
        (0.0, 1.0), "guided part of the trajectory, START,END fractions from noise (0) to image (1)"
    )
    recurrence: int = knob(
        1, "passes per guided step with re-noising between them (self-recurrence, time travel, N_recur)"
    )

    def __post_init__(self):
        """Check the shared knobs (see the class's Raises)."""
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ConfigError(f"guidance scale must be finite and >= 0, got {self.scale}")
        if self.window is not None:  # None: the method's window for the kind of model (``resolved``)
            window = tuple(float(w) for w in self.window)
            if len(window) != 2 or not (0.0 <= window[0] <= window[1] <= 1.0):
                raise ConfigError(f"guidance window must be two fractions 0 <= start <= end <= 1, got {self.window}")
            self.window = window
        if int(self.recurrence) != self.recurrence or self.recurrence < 1:
            raise ConfigError(f"recurrence must be an integer >= 1, got {self.recurrence}")
        self.recurrence = int(self.recurrence)

    # -- description ------------------------------------------------------------------------
    @classmethod
    def knob_help(cls, name: str) -> dict[str, Any]:
        """The metadata (``help``, ``choices``) of knob ``name``, from the nearest class that declares it.

        Args:
            name: a knob.

        Returns:
            Its metadata.

        Raises:
            TypeError: no class declares it with :func:`knob`.
        """
        for klass in cls.__mro__:
            found = getattr(klass, "__dataclass_fields__", {}).get(name)
            if found is not None and found.metadata:
                return dict(found.metadata)
        raise TypeError(f"{cls.__name__}.{name} has no help: declare it with knob(default, help)")

    @classmethod
    def knobs(cls) -> dict[str, Any]:
        """Every knob but ``scale`` with its default."""
        out = {}
        for f in fields(cls):
            if f.name != "scale":
                out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
        return out

    def resolved(self, latent: bool, cfg: bool) -> GuidanceMethod:
        """A copy with every knob left to the model (``auto``, a None window) set for this kind of model.

        Set to the reference's choice. The sampler calls it once, before sampling, so ``settings()``
        records the rule that ran.

        Args:
            latent: the model samples a VAE's latents.
            cfg: classifier-free guidance runs.

        Returns:
            The resolved copy.
        """
        return replace(self)

    def settings(self) -> dict[str, Any]:
        """Every knob with its value (tuples as lists): what a sidecar records."""
        return {key: (list(v) if isinstance(v, tuple) else v) for key, v in asdict(self).items()}

    def pass_evaluations(self) -> Evaluations:
        """Evaluations of one guided pass (one of ``repeats``)."""
        raise NotImplementedError

    def evaluations(self, index: int, steps: int) -> Evaluations:
        """Evaluations of step ``index`` of ``steps`` (an unguided step: one UNet forward).

        Args:
            index: the step's index in the schedule.
            steps: the schedule's steps.

        Returns:
            The step's evaluations, its repeats included.
        """
        if not self.active(index, steps):
            return UNGUIDED_STEP
        return self.pass_evaluations() * self.repeats(index, steps)

    # -- the step ---------------------------------------------------------------------------
    @staticmethod
    def in_window(window: tuple[float, float], index: int, steps: int) -> bool:
        """Whether step ``index`` of ``steps`` is inside ``window``: start ≤ (index + ½)/steps ≤ end.

        Args:
            window: ``(start, end)`` fractions from noise (0) to image (1).
            index: the step's index in the schedule.
            steps: the schedule's steps.

        Returns:
            True inside.
        """
        position = (index + 0.5) / steps
        return window[0] <= position <= window[1]

    def active(self, index: int, steps: int) -> bool:
        """Whether step ``index`` of ``steps`` is guided (scale > 0, inside the window).

        Args:
            index: the step's index in the schedule.
            steps: the schedule's steps.

        Returns:
            True when guided.
        """
        window = (0.0, 1.0) if self.window is None else self.window  # unresolved: the pixel default
        return self.scale > 0 and self.in_window(window, index, steps)

    def repeats(self, index: int, steps: int) -> int:
        """Guided passes of step ``index`` (default: ``recurrence`` at every guided step).

        Args:
            index: the step's index in the schedule.
            steps: the schedule's steps.

        Returns:
            The number of passes.
        """
        return self.recurrence

    def begin(self) -> None:
        """Reset what a method keeps across the steps of one sampling call."""

    def step(self, ctx: StepContext) -> torch.Tensor:
        """One denoising step x_t -> x_{t−1}: the scheduler's step outside the window, else ``repeats`` guided passes.

        Args:
            ctx: the step.

        Returns:
            x_{t−1}.
        """
        if not self.active(ctx.index, ctx.steps):
            with torch.no_grad():
                return ctx.scheduler_step(ctx.unet(ctx.x), ctx.x).prev_sample
        prev = self.guided_pass(ctx, ctx.x)
        for _ in range(1, self.repeats(ctx.index, ctx.steps)):
            # time travel: back to x_t by the forward process, with the recurrence's own noise
            x = ctx.schedule.renoise(prev, ctx.t, ctx.index, ctx.noise(tuple(prev.shape[1:]), "recurrence"))
            prev = self.guided_pass(ctx, x)
        return prev

    def guided_pass(self, ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
        """One guided pass from ``x``: a method's rule.

        Args:
            ctx: the step.
            x: x_t (the step's, or re-noised by recurrence).

        Returns:
            x_{t−1}.
        """
        raise NotImplementedError
