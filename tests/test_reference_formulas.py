"""One guided step of every method against a transcription of its reference's rule, on the analytic
Gaussian model (stylediff.diffusion.analytic), to 1e-6.

Each ``reference_*`` function below is written from the reference code's equations (cited in its
docstring), not from stylediff's: the exact denoiser ε̂(x) = σ(x − √ᾱ·m)/v, x̂0 = (x − σ·ε̂)/√ᾱ, the
loss L(y) = ½‖y − c‖² per image, gradients by autograd through these formulas. Only step ``INDEX`` of
``STEPS`` is guided (the method's window), so x_t is the unguided run's and the sampler's x_{t−1} is
compared with the transcription; where the step draws noise (DDPM, DDIM η > 0) the noise term is
taken from the unguided run of the same seeds (x_{t−1} minus its transcribed mean), which the sampler
draws identically. "clip": the scheduler clips x̂0 to [-1, 1] (the references' ``clip_denoised`` /
``clip_x0``) and the data (mean 0.7, std 0.6) puts some x̂0 pixels outside it; "no clip": data whose
x̂0 stays inside. Where the project's loss reads x̂0 through its straight-through clamp, the
transcription says so (``straight_through``); that is the stated deviation of those methods.
"""

from __future__ import annotations

import pytest
import torch

from stylediff.diffusion import GuidedSampler, make_method, make_scheduler
from stylediff.diffusion.analytic import GaussianDenoiser, QuadraticLoss

STEPS, INDEX = 10, 7
WINDOW = (0.72, 0.78)  # step 7 of 10 only: (7 + ½)/10 = 0.75
TARGET = -0.3
SEEDS = [0, 1, 2]


class Setting:
    """The analytic model, a scheduler, and the schedule's numbers at the guided step."""

    def __init__(self, scheduler: str, clip: bool, eta: float):
        self.kind, self.clip, self.eta = scheduler, clip, eta
        self.mean, self.std = (0.7, 0.6) if clip else (0.0, 0.2)
        config = {
            "num_train_timesteps": 1000,
            "beta_schedule": "linear",
            "clip_sample": clip,
            "prediction_type": "epsilon",
        }
        self.config = config
        probe = make_scheduler(scheduler, config)
        probe.set_timesteps(STEPS)
        self.timesteps = [int(t) for t in probe.timesteps]
        alphas = probe.alphas_cumprod.double()
        self.alphas = alphas
        t = self.timesteps[INDEX]
        prev = self.timesteps[INDEX + 1] if INDEX + 1 < STEPS else -1
        self.a, self.ap = alphas[t], (alphas[prev] if prev >= 0 else torch.tensor(1.0, dtype=torch.float64))
        self.sigma = (1 - self.a).sqrt()
        self.variance_eta = eta**2 * (1 - self.ap) / (1 - self.a) * (1 - self.a / self.ap)

    def unet(self):
        return GaussianDenoiser(self.alphas, mean=self.mean, std=self.std, sample_size=4).double()

    # -- the model and the loss, as equations -----------------------------------------------------
    def eps(self, x):
        v = self.a * self.std**2 + 1 - self.a
        return self.sigma * (x - self.a.sqrt() * self.mean) / v

    def x0(self, x):
        return (x - self.sigma * self.eps(x)) / self.a.sqrt()

    def clip_x0(self, x0):
        return x0.clamp(-1, 1) if self.clip else x0

    @staticmethod
    def loss(y):
        return 0.5 * (y - TARGET).pow(2).flatten(1).sum(1)

    # -- the unguided updates ---------------------------------------------------------------------
    def ddim(self, x0, eps):
        """DDIM eq. 12 without its noise: √ᾱ_prev·x̂0 + √(1 − ᾱ_prev − σ_η²)·ε̂."""
        return self.ap.sqrt() * x0 + (1 - self.ap - self.variance_eta).sqrt() * eps

    def posterior_mean(self, x0, x):
        """DDPM: μ̃ = √ᾱ_prev·β_t/(1 − ᾱ_t)·x̂0 + √α_t·(1 − ᾱ_prev)/(1 − ᾱ_t)·x_t, β_t = 1 − α_t."""
        alpha = self.a / self.ap
        return self.ap.sqrt() * (1 - alpha) / (1 - self.a) * x0 + alpha.sqrt() * (1 - self.ap) / (1 - self.a) * x

    def diffusers_mean(self, x):
        """The unguided step's mean as the scheduler computes it (clipped x̂0, the model's ε̂)."""
        x0 = self.clip_x0(self.x0(x))
        return self.ddim(x0, self.eps(x)) if self.kind == "ddim" else self.posterior_mean(x0, x)


def straight_through(y):
    return y + (y.clamp(-1, 1) - y).detach()


def grad_x(setting, x, value_of_x0):
    """∇_{x_t} of value_of_x0(x̂0(x_t)) summed over the batch (through the denoiser)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(value_of_x0(setting.x0(x)).sum(), x)[0]


def grad_y(y, value):
    y = y.detach().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(value(y).sum(), y)[0]


def rms(v):
    return v.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)


def norm(v):
    return v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


# -- the references, one step each ------------------------------------------------------------------
def reference_classifier(st, x, s):
    """openai/guided-diffusion ``ddim_sample`` + ``condition_score`` (DDIM): ε̂ re-derived from the
    clipped x̂0, ε̂′ = ε̂ − √(1 − ᾱ)·cond_fn, cond_fn = −s·∇_{x_t}L; x̂0′ from ε̂′; eq. 12 from (x̂0′, ε̂′).
    ``p_sample`` + ``condition_mean`` (DDPM): μ′ = μ̃(clip(x̂0), x_t) + Σ·cond_fn, Σ the posterior
    variance (fixed_small). The classifier is L(x̂0(x_t)) read through the straight-through clamp."""
    g = grad_x(st, x, lambda y: st.loss(straight_through(y)))
    x0 = st.clip_x0(st.x0(x))
    if st.kind == "ddpm":
        beta = 1 - st.a / st.ap
        return st.posterior_mean(x0, x) - s * beta * (1 - st.ap) / (1 - st.a) * g
    eps = (x - st.a.sqrt() * x0) / st.sigma
    eps = eps + st.sigma * s * g
    x0 = (x - st.sigma * eps) / st.a.sqrt()
    return st.ddim(x0, eps)


def reference_dps(st, x, s):
    """DPS2022/diffusion-posterior-sampling ``PosteriorSampling.conditioning``: x_{t−1} = x′_{t−1} −
    ζ·∇_{x_t}‖r‖ (``grad_and_value``, unsquared), ‖r‖ = √L per image, L read through the
    straight-through clamp (the stated deviation: DPS clamps in the graph)."""
    g = grad_x(st, x, lambda y: st.loss(straight_through(y)).sqrt())
    return st.diffusers_mean(x) - s * g


def reference_freedom(st, x, s):
    """vvictoryuki/FreeDoM ``Face-GD/functions/denoising.py`` ``clip_ddim_diffusion``: x_{t−1} =
    c1·x̂0 + c2·x_t (+ c3·z) − ρ·∇_{x_t}‖r‖, ρ = rms(ε̂)·√(1 − ᾱ)/√ᾱ·c1·s / rms(∇‖r‖); its η = 1."""
    g = grad_x(st, x, lambda y: st.loss(straight_through(y)).sqrt())
    c1 = st.ap.sqrt() * (1 - st.a / st.ap) / (1 - st.a)
    c2 = (st.a / st.ap).sqrt() * (1 - st.ap) / (1 - st.a)
    rho = rms(st.eps(x)) * st.sigma / st.a.sqrt() * c1 * s / rms(g)
    return c1 * st.x0(x) + c2 * x - rho * g


def reference_ugd(st, x, s):
    """arpitbansal297/Universal-Guided-Diffusion ``ddim_sample_operation`` (forward guidance, no
    backward steps): ε̂′ = ε̂ + s·√(1 − ᾱ)·∇_{x_t}L (its ``pred_xstart.clamp`` result is discarded: no
    clamp in the graph; here the straight-through one); x̂0* = clamp(x̂0(ε̂′)); ε̂ re-derived; eq. 12."""
    g = grad_x(st, x, lambda y: st.loss(straight_through(y)))
    eps = st.eps(x) + s * st.sigma * g
    x0 = ((x - st.sigma * eps) / st.a.sqrt()).clamp(-1, 1)
    return st.ddim(x0, (x - st.a.sqrt() * x0) / st.sigma)


def reference_mpgd(st, x, s):
    """KellyYutongHe/mpgd_pytorch ``DDIMx0.p_sample_loop`` + ``WoProjSampling.conditioning``: x̂0 from
    ``p_mean_variance`` (clipped), ε̂ re-derived from it (``predict_eps_from_x_start``), x̂0 −=
    ∇_{x̂0}‖r‖·s/√ᾱ_prev, eq. 12 from the moved x̂0 and that ε̂."""
    x0 = st.clip_x0(st.x0(x))
    eps = (x - st.a.sqrt() * x0) / st.sigma
    x0 = x0 - grad_y(x0, lambda y: st.loss(y).sqrt()) * s / st.ap.sqrt()
    return st.ddim(x0, eps)


TFG = {"rho": 0.5, "mu": 0.05, "inner_steps": 2, "variance": 0.0}


def reference_tfg(st, x, s):
    """YWolfeee/Training-Free-Guidance ``methods/tfg.py`` ``TFGGuidance.guide_step`` (γ = 0: one
    zero offset), with ``base.py`` ``_predict_x0`` (clip_x0: clamp in the graph) and
    ``_predict_x_prev_from_zero``; ρ_i = ρ·α_i·n/Σα (increase), likewise μ_i; ``scale`` multiplies ρ, μ;
    Δ_t = ρ·∇_{x_t} log p, x̂0 += μ·∇ log p with the style guider's log p = −√L/100
    (``tasks/networks/style_CLIP.py`` line 59, unsquared)."""

    def log_p(y):
        return -st.loss(y).sqrt() / 100

    alphas = torch.stack(
        [
            st.alphas[t] / (st.alphas[p] if p >= 0 else torch.tensor(1.0, dtype=torch.float64))
            for t, p in zip(st.timesteps, st.timesteps[1:] + [-1])
        ]
    )
    weight = alphas[INDEX] * len(alphas) / alphas.sum()
    rho, mu = s * TFG["rho"] * weight, s * TFG["mu"] * weight
    delta_t = rho * grad_x(st, x, lambda y: log_p(y.clamp(-1, 1)))
    x0 = st.x0(x).clamp(-1, 1)
    moved = x0.clone()
    for _ in range(TFG["inner_steps"]):
        moved = moved + mu * grad_y(moved, log_p)
    eps = (x - st.a.sqrt() * x0) / st.sigma
    prev = st.ap.sqrt() * (x - st.sigma * eps) / st.a.sqrt() + (1 - st.ap - st.variance_eta).sqrt() * eps
    return prev + delta_t / (st.a / st.ap).sqrt() + st.ap.sqrt() * (moved - x0)


def _update_coefficients(st):
    """c_x0 = ∂x_{t−1}/∂x̂0 (ε̂ held) and c_ε (x̂0 held) of the DDIM / DDPM update."""
    if st.kind == "ddim":
        return st.ap.sqrt(), (1 - st.ap - st.variance_eta).sqrt()
    return st.ap.sqrt() * (1 - st.a / st.ap) / (1 - st.a), torch.tensor(0.0, dtype=torch.float64)


def reference_x0(st, x, s):
    """stylediff's own ``x0`` rule (its docstring): ĝ = ∇L(x̂0)·‖ε̂‖/‖∇L‖, x̂0′ = clip(x̂0 − s·σ·ĝ·50/n),
    x_{t−1} = step + c_x0·(x̂0′ − x̂0), x̂0 the (clipped) scheduler's."""
    x0 = st.clip_x0(st.x0(x))
    g = grad_y(x0, lambda y: st.loss(straight_through(y)))
    g = g * norm(st.eps(x)) / norm(g)
    moved = st.clip_x0(x0 - s * st.sigma * g * 50 / STEPS)
    return st.diffusers_mean(x) + _update_coefficients(st)[0] * (moved - x0)


def reference_through_unet(st, x, s):
    """stylediff's own ``through_unet`` rule (its docstring): ε̂′ = ε̂ + s·σ·ĝ, ĝ = g·‖ε̂‖/‖g‖,
    applied as x_{t−1} = step(ε̂) + k_t·s·σ·ĝ, k_t = c_ε − c_x0·σ/√ᾱ."""
    g = grad_x(st, x, lambda y: st.loss(straight_through(y)))
    g = g * norm(st.eps(x)) / norm(g)
    c_x0, c_eps = _update_coefficients(st)
    return st.diffusers_mean(x) + (c_eps - c_x0 * st.sigma / st.a.sqrt()) * s * st.sigma * g


REFERENCES = {
    "classifier": (reference_classifier, 20.0, [("ddim", 0.0), ("ddpm", 0.0)], (False, True), {}),
    "dps": (reference_dps, 0.5, [("ddpm", 0.0)], (False, True), {}),
    "freedom": (
        reference_freedom,
        0.3,
        [("ddim", 1.0), ("ddpm", 0.0)],
        (False,),
        {"recurrence": 1, "travel_window": (0.0, 0.0)},
    ),
    "ugd": (reference_ugd, 20.0, [("ddim", 0.0)], (False, True), {"recurrence": 1}),
    "mpgd": (reference_mpgd, 0.3, [("ddim", 0.0)], (False, True), {}),
    "tfg": (reference_tfg, 200.0, [("ddim", 0.0)], (False, True), TFG),
    "x0": (reference_x0, 0.05, [("ddim", 0.0), ("ddpm", 0.0)], (False, True), {}),
    "through_unet": (reference_through_unet, 0.1, [("ddim", 0.0), ("ddpm", 0.0)], (False, True), {}),
}
"""method -> (reference step, scale, (scheduler, η) pairs the reference has, clip settings it has,
knobs). DPS's repository samples DDPM; FreeDoM's rule is the DDPM posterior (DDIM η = 1) and never
clips; UGD, MPGD and TFG are DDIM rules."""

CASES = [
    (name, kind, eta, clip)
    for name, (_, _, pairs, clips, _) in REFERENCES.items()
    for kind, eta in pairs
    for clip in clips
]


def run(setting: Setting, method) -> list[torch.Tensor]:
    states = []
    sampler = GuidedSampler(
        setting.unet(),
        make_scheduler(setting.kind, setting.config),
        QuadraticLoss(target=TARGET),
        method,
        guidance_size=4,
    )
    sampler(
        SEEDS,
        num_inference_steps=STEPS,
        eta=setting.eta,
        progress=False,
        callback=lambda info: states.append(info["x"].clone()),
    )
    return states


@pytest.mark.parametrize(
    "name,kind,eta,clip", CASES, ids=[f"{n}-{k}-eta{e:g}-{'clip' if c else 'noclip'}" for n, k, e, c in CASES]
)
def test_one_step_equals_the_reference_rule(name, kind, eta, clip):
    reference, scale, _, _, knobs = REFERENCES[name]
    setting = Setting(kind, clip, eta)
    guided = run(setting, make_method(name, scale=scale, **{**knobs, "window": WINDOW}))
    unguided = run(setting, make_method(name, scale=0.0))
    x_t = guided[INDEX - 1]
    assert torch.equal(x_t, unguided[INDEX - 1])  # only step INDEX is guided
    x0 = setting.x0(x_t)
    if clip:  # the clipping is exercised: some x̂0 pixels lie outside [-1, 1]
        assert (x0.abs() > 1).float().mean() > 0.02
    else:
        assert (x0.abs() < 1).all()
    noise = unguided[INDEX] - setting.diffusers_mean(x_t)  # 0 for DDIM η = 0
    expected = reference(setting, x_t, scale) + noise
    assert (guided[INDEX] - unguided[INDEX]).abs().max() > 1e-3  # the guidance moved the step
    assert (guided[INDEX] - expected).abs().max().item() < 1e-6, name


@pytest.mark.parametrize("name", ["classifier", "mpgd"])
def test_re_deriving_eps_from_the_clipped_x0_matters(name):
    """The reference-formula test has teeth: with clipping, the same rule with the model's ε̂ beside
    the clipped x̂0 (diffusers' ``use_clipped_model_output=False``) is off by more than 1e-3."""
    reference, scale, _, _, knobs = REFERENCES[name]
    setting = Setting("ddim", True, 0.0)
    guided = run(setting, make_method(name, scale=scale, **{**knobs, "window": WINDOW}))
    x_t = guided[INDEX - 1]
    x0 = setting.clip_x0(setting.x0(x_t))
    rederived = (x_t - setting.a.sqrt() * x0) / setting.sigma
    model_eps_step = reference(setting, x_t, scale) + (1 - setting.ap).sqrt() * (setting.eps(x_t) - rederived)
    assert (guided[INDEX] - model_eps_step).abs().max().item() > 1e-3


def test_mpgd_squared_gradient_is_the_norm_step_times_two_root_l():
    """mpgd ``gradient squared`` steps by ∇L = 2√L·∇√L: on one step its change of x_{t−1} is the
    reference's (``norm``) change times 2√L per image."""
    setting = Setting("ddim", False, 0.0)
    base = run(setting, make_method("mpgd", scale=0.0))
    norm_step = run(setting, make_method("mpgd", scale=0.3, window=WINDOW))
    squared = run(setting, make_method("mpgd", scale=0.3, window=WINDOW, gradient="squared"))
    x_t = base[INDEX - 1]
    root = setting.loss(setting.x0(x_t)).sqrt().view(-1, 1, 1, 1)
    moved_norm, moved_squared = norm_step[INDEX] - base[INDEX], squared[INDEX] - base[INDEX]
    assert torch.allclose(moved_squared, 2 * root * moved_norm, atol=1e-6)
    assert (moved_squared - moved_norm).abs().max() > 1e-3
