"""The noise schedule as functions of a diffusers scheduler and a step.

ᾱ_t, ᾱ_prev, the ε / x̂0 split of a model output for every prediction type, how the DDIM/DDPM update
moves with x̂0 and ε, and the forward-process re-noising that recurrence (time travel) uses.

Guidance rules are written in one notation (σ_t = √(1 − ᾱ_t)):
x̂0 = (x_t − σ_t ε̂)/√ᾱ_t, and the scheduler's update x_{t−1} = c_x0·x̂0 + c_ε·ε̂ (+ c_x·x_t) + σ z.
A method that changes x̂0 by Δx̂0 (ε̂ held) and ε̂ by Δε (x̂0 held) moves x_{t−1} by
``x0_coefficient·Δx̂0 + eps_coefficient·Δε``: the update is linear in both, so a guided step is the
scheduler's own step (its clipping, its noise draw) plus that explicit term.
"""

from __future__ import annotations

import torch

from ..core.errors import ConfigError

SCHEDULERS = ("ddim", "ddpm")


def make_scheduler(name: str, config: dict):
    """A diffusers scheduler by name from a model's scheduler config (as the pipelines convert it).

    Args:
        name: ``ddim`` or ``ddpm``.
        config: the model's scheduler config.

    Returns:
        A fresh ``DDIMScheduler`` or ``DDPMScheduler``.

    Raises:
        ConfigError: an unknown name.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    classes = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}
    if name not in classes:
        raise ConfigError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return classes[name].from_config(config)


def is_ddim(scheduler) -> bool:
    """Whether ``scheduler`` steps as DDIM (it has ``final_alpha_cumprod``).

    Args:
        scheduler: a diffusers scheduler.

    Returns:
        True for DDIM.
    """
    return hasattr(scheduler, "final_alpha_cumprod")


def check_supported(scheduler) -> None:
    """Check that guidance can run with ``scheduler``.

    Args:
        scheduler: a diffusers scheduler.

    Raises:
        ConfigError: not a DDIM or DDPM scheduler.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    if not isinstance(scheduler, (DDIMScheduler, DDPMScheduler)):
        raise ConfigError(f"guidance supports the DDIM and DDPM schedulers, not {type(scheduler).__name__}")


class Schedule:
    """ᾱ and the update's coefficients of ``scheduler`` (after ``set_timesteps``) on ``device``.

    Args:
        scheduler: a DDIM or DDPM scheduler.
        device: where the values are returned.
    """

    def __init__(self, scheduler, device: torch.device | str = "cpu"):
        self.scheduler = scheduler
        self.device = torch.device(device)

    def alpha_bar(self, t) -> torch.Tensor:
        """ᾱ_t, float32 on the device.

        Args:
            t: the timestep.

        Returns:
            A scalar tensor.
        """
        return self.scheduler.alphas_cumprod[int(t)].to(self.device, torch.float32)

    def alpha_bar_prev(self, t, index: int) -> torch.Tensor:
        """ᾱ of the step the update lands on (1, or DDIM's ``final_alpha_cumprod``, after the last).

        Args:
            t: the timestep.
            index: the step's index in the schedule.

        Returns:
            A scalar tensor.
        """
        scheduler = self.scheduler
        if is_ddim(scheduler):  # the same rule as DDIMScheduler.step
            prev = int(t) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
            final = scheduler.final_alpha_cumprod
        else:
            timesteps = scheduler.timesteps
            prev = int(timesteps[index + 1]) if index + 1 < len(timesteps) else -1
            final = torch.tensor(1.0)
        value = scheduler.alphas_cumprod[prev] if prev >= 0 else final
        return torch.as_tensor(value).to(self.device, torch.float32)

    def sigma(self, t) -> torch.Tensor:
        """σ_t = √(1 − ᾱ_t), the noise level of x_t.

        Args:
            t: the timestep.

        Returns:
            A scalar tensor.
        """
        return (1 - self.alpha_bar(t)).sqrt()

    def split(self, model_output: torch.Tensor, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ε̂, x̂0)`` from the model output, whatever the scheduler's prediction type.

        Args:
            model_output: the UNet's output (learned-variance channels are dropped).
            x: x_t.
            t: the timestep.

        Returns:
            ``(ε̂, x̂0)``.

        Raises:
            ConfigError: an unsupported prediction type.
        """
        kind = self.scheduler.config.prediction_type
        out = model_output[:, : x.shape[1]]  # learned-variance models append the variance channels
        ab = self.alpha_bar(t)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if kind == "epsilon":
            return out, (x - s * out) / a
        if kind == "sample":
            return (x - a * out) / s, out
        if kind == "v_prediction":
            return a * out + s * x, a * x - s * out
        raise ConfigError(f"unsupported prediction type {kind!r} (epsilon, sample or v_prediction)")

    def eps_change(self, delta_output: torch.Tensor, t) -> torch.Tensor:
        """Δε̂ at a fixed x_t for a change ``delta_output`` of the model output (``split`` is linear in it).

        ε-prediction Δ; v-prediction √ᾱ_t·Δ (ε = √ᾱ_t·v + √(1 − ᾱ_t)·x_t); sample prediction
        −√(ᾱ_t/(1 − ᾱ_t))·Δ (ε = (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t)). The classifier-free-guidance correction
        w·(out_c − out_u) becomes w·(ε_c − ε_u), the quantity the ε-space references measure.

        Args:
            delta_output: the change of the model output.
            t: the timestep.

        Returns:
            Δε̂.

        Raises:
            ConfigError: an unsupported prediction type.
        """
        kind = self.scheduler.config.prediction_type
        ab = self.alpha_bar(t)
        if kind == "epsilon":
            return delta_output
        if kind == "v_prediction":
            return ab.sqrt() * delta_output
        if kind == "sample":
            return -(ab / (1 - ab)).sqrt() * delta_output
        raise ConfigError(f"unsupported prediction type {kind!r} (epsilon, sample or v_prediction)")

    def posterior_coefficient(self, t, index: int) -> torch.Tensor:
        """c1 = √ᾱ_prev·(1 − ᾱ_t/ᾱ_prev)/(1 − ᾱ_t), the weight of x̂0 in the DDPM posterior mean.

        Over the step's gap, c1·x̂0 + c2·x_t (DDIM η = 1 with ε̂ re-derived from x_t and x̂0; FreeDoM's and
        MPGD's Stable Diffusion samplers step with it).

        Args:
            t: the timestep.
            index: the step's index in the schedule.

        Returns:
            A scalar tensor.
        """
        ab, ab_prev = self.alpha_bar(t), self.alpha_bar_prev(t, index)
        return ab_prev.sqrt() * (1 - ab / ab_prev) / (1 - ab)

    def x0_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """x̂0 = (x_t − σ_t ε)/√ᾱ_t.

        Args:
            x: x_t.
            eps: ε̂.
            t: the timestep.

        Returns:
            x̂0.
        """
        ab = self.alpha_bar(t)
        return (x - (1 - ab).sqrt() * eps) / ab.sqrt()

    def x0_coefficient(self, t, index: int) -> torch.Tensor:
        """c_x0 = ∂x_{t−1}/∂x̂0 with ε̂ held: DDIM √ᾱ_prev; DDPM √ᾱ_prev·β_t/(1 − ᾱ_t), β_t = 1 − ᾱ_t/ᾱ_prev.

        Args:
            t: the timestep.
            index: the step's index in the schedule.

        Returns:
            A scalar tensor.
        """
        ab_prev = self.alpha_bar_prev(t, index)
        if is_ddim(self.scheduler):
            return ab_prev.sqrt()
        ab = self.alpha_bar(t)
        return ab_prev.sqrt() * (1 - ab / ab_prev) / (1 - ab)

    def eps_coefficient(self, t, index: int, eta: float = 0.0) -> torch.Tensor:
        """c_ε = ∂x_{t−1}/∂ε̂ with x̂0 held: DDIM √(1 − ᾱ_prev − σ_η²); DDPM 0.

        DDPM's posterior mean is a function of x_t and x̂0 alone.

        Args:
            t: the timestep.
            index: the step's index in the schedule.
            eta: DDIM's η.

        Returns:
            A scalar tensor.
        """
        if not is_ddim(self.scheduler):
            return torch.zeros((), device=self.device)
        ab, ab_prev = self.alpha_bar(t), self.alpha_bar_prev(t, index)
        variance = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        return (1 - ab_prev - eta**2 * variance).clamp_min(0).sqrt()

    def shift_for_eps(self, t, index: int, eta: float = 0.0) -> torch.Tensor:
        """k_t = ∂x_{t−1}/∂ε̂ with x_t held (x̂0 follows ε̂): c_ε − c_x0·σ_t/√ᾱ_t.

        Negative: moving ε̂ along +g moves x_{t−1} along −g.

        Args:
            t: the timestep.
            index: the step's index in the schedule.
            eta: DDIM's η.

        Returns:
            A scalar tensor.
        """
        ab = self.alpha_bar(t)
        x0_per_eps = -(1 - ab).sqrt() / ab.sqrt()
        if not is_ddim(self.scheduler):
            return self.x0_coefficient(t, index) * x0_per_eps
        return self.eps_coefficient(t, index, eta) + self.x0_coefficient(t, index) * x0_per_eps

    def renoise(self, x_prev: torch.Tensor, t, index: int, noise: torch.Tensor) -> torch.Tensor:
        """x_{t−1} → x_t by the forward process over the step's gap: √(ᾱ_t/ᾱ_prev)·x_{t−1} + √(1 − ᾱ_t/ᾱ_prev)·ξ.

        Args:
            x_prev: x_{t−1}.
            t: the timestep.
            index: the step's index in the schedule.
            noise: ξ, standard normal of x's shape.

        Returns:
            x_t.
        """
        ratio = self.alpha_bar(t) / self.alpha_bar_prev(t, index)
        return ratio.sqrt() * x_prev + (1 - ratio).sqrt() * noise.to(x_prev)
