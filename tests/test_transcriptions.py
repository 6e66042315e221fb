"""One guided step of every method on a latent model against a line-by-line transcription of its
reference's update, on a tiny random Stable Diffusion pipeline with classifier-free guidance, at ε- and
v-prediction.

Only step ``INDEX`` of ``STEPS`` is guided (the method's window), so z_t is the unguided run's; the
guidance's change of z_{t−1} is ``guided[INDEX] − unguided[INDEX]`` (the sampler replays the unguided
step's noise) and each ``reference_*`` returns the change its reference makes at that z_t, written from
the reference code (file and lines in its docstring), not from stylediff's. The references are ε-only
Stable Diffusion 1.x code: at v-prediction each branch of the CFG batch is converted, ε = √ᾱ_t·v +
√(1 − ᾱ_t)·z_t, and the reference's ε formulas are applied as written. Methods without a Stable
Diffusion reference (x0, through_unet: stylediff's own rules; classifier: guided-diffusion; DPS: its
pixel code) transcribe their pixel reference or docstring rule with the decoder in the loss, and say so.

The objective is the references' Gram energy on a tiny random CLIP ViT: stylediff side ``RawGram`` =
‖G − Gₛ‖²_F of unnormalised Gram matrices (G = Fᵀ F of the patch tokens) at the method's default CLIP
layer, chosen as ``stylediff sample`` chooses it (``cli.args.style_layers``); reference side each
reference's own features: OpenAI CLIP's ``encode_image_with_features`` loop (``features.append`` of each
block's output, ``feats[2]``) for FreeDoM and MPGD, transformers' ``hidden_states[2]`` for TFG (and
LGD, DPS on TFG's harness), so a wrong default layer fails the comparison. Stated deviations the
transcriptions share with stylediff: the decoded image is clamped to [-1, 1] straight-through, CLIP
reads (x + 1)/2 normalised by its mean/std (TFG normalises the [-1, 1] image), the style image goes
through the same bicubic resize.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F

from stylediff.cli import main
from stylediff.cli.args import style_layers
from stylediff.core.seeding import ImageStreams
from stylediff.diffusion import GuidedSampler, load_model, make_method
from stylediff.networks.clip import CLIP_MEAN, CLIP_STD

from .conftest import PROMPT, build_tiny_sd, tiny_clip_network, tiny_clip_vision_model

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

STEPS, INDEX = 10, 4
WINDOW = (0.42, 0.48)  # step 4 of 10 only: (4 + ½)/10 = 0.45
SEEDS = [0, 1]
CFG = 3.0
TOLERANCE = 1e-4


def straight_through(y):
    return y + (y.clamp(-1, 1) - y).detach()


def rms(v):
    return v.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)


def norm(v):
    return v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


class RawGram:
    """stylediff's side of the objective: ‖G(x) − G(s)‖²_F per image, G = Fᵀ F of ``network``'s tokens at
    ``layer`` (unnormalised, as the references' Gram matrices); √ of it is their residual norm."""

    min_size = 1

    def __init__(self, network, style, layer):
        self.network, self.layer = network, layer
        with torch.no_grad():
            self.target = self.gram(style)

    def gram(self, images):
        tokens = self.network(images, [self.layer])[self.layer].flatten(2)  # (N, C, T)
        return tokens @ tokens.transpose(1, 2)

    def __call__(self, images):
        return (self.gram(images) - self.target).pow(2).sum(dim=(1, 2))


class Harness:
    """A tiny SD pipeline (ε or v) with CFG, its schedule at the guided step, and the references' energies."""

    def __init__(self, folder, prediction_type):
        self.prediction_type, self.folder = prediction_type, folder
        self.model = load_model(folder)
        for part in ("unet", "vae", "text_encoder"):  # float64: gradients through three networks agree to 1e-7
            self.model.components[part].double()
        self.unet, self.vae = self.model.unet, self.model.components["vae"]
        self.clip = tiny_clip_network().double()
        self.vision = tiny_clip_vision_model().double()  # the same weights, read the references' way
        self.style = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        probe = self.model.scheduler("ddim")
        probe.set_timesteps(STEPS)
        self.timesteps = [int(t) for t in probe.timesteps]
        self.alphas = probe.alphas_cumprod.double()
        self.final = probe.final_alpha_cumprod.double()
        self.t = self.timesteps[INDEX]
        self.a = self.alphas[self.t]
        self.ap = self.alphas[self.timesteps[INDEX + 1]]
        self.mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, dtype=torch.float64).view(1, 3, 1, 1)
        with torch.no_grad():
            self.target_openai = self.gram(self.openai_feats(self.style * 2 - 1))
            self.target_hidden2 = self.gram(self.hidden_states(self.style * 2 - 1, 2))

    # -- the model ----------------------------------------------------------------------------------
    def adapter(self):
        return self.model.adapter(self.model.scheduler("ddim"), prompt=PROMPT, cfg_scale=CFG)

    def cfg_eps(self, z):
        """ε_u, ε_c of the CFG batch (TFG stable_diffusion.py 80-88; FreeDoM/MPGD ddim.py 230-233); at
        v-prediction each branch converted to ε."""
        unconditional, conditional = self.adapter().conditioning
        n = z.shape[0]
        states = torch.cat(
            [
                unconditional["encoder_hidden_states"].expand(n, -1, -1),
                conditional["encoder_hidden_states"].expand(n, -1, -1),
            ]
        )
        out_u, out_c = self.unet(torch.cat([z, z]), self.t, encoder_hidden_states=states).sample.chunk(2)
        if self.prediction_type == "v_prediction":
            out_u, out_c = (self.a.sqrt() * v + (1 - self.a).sqrt() * z for v in (out_u, out_c))
        return out_u, out_c

    def x0_of(self, z, eps):
        return (z - (1 - self.a).sqrt() * eps) / self.a.sqrt()

    def decode(self, z0):
        """``decode_first_stage``: vae.decode(z / scale_factor), clamped straight-through (stated deviation)."""
        return straight_through(self.vae.decode(z0 / self.vae.config.scaling_factor).sample)

    # -- the references' CLIP-Gram energies ----------------------------------------------------------
    def pixels(self, x):
        """Decoded [-1, 1] image -> CLIP input: bicubic to the input size, Normalize(2m − 1, 2s) (FreeDoM/MPGD
        base_clip.py 34-37, 51-53)."""
        size = self.vision.config.image_size
        x = F.interpolate(x, size=(size, size), mode="bicubic")
        return (x - (2 * self.mean - 1)) / (2 * self.std)

    def openai_feats(self, x):
        """OpenAI CLIP ``encode_image_with_features`` (clip/model.py 339-356): ln_pre, then each block's
        output appended; ``feats[2][1:]`` (base_clip.py 58) — the patch tokens after three blocks."""
        vision = getattr(self.vision, "vision_model", self.vision)  # transformers < 5 nests it
        h = vision.pre_layrnorm(vision.embeddings(self.pixels(x)))
        features = []
        for block in vision.encoder.layers:
            h = block(h, None)
            h = h[0] if isinstance(h, tuple) else h
            features.append(h)
        return features[2][:, 1:, :]

    def hidden_states(self, x, k):
        """TFG style_CLIP.py 43-47: ``vision_model(img, output_hidden_states=True).hidden_states[2][:, 1:, :]``."""
        vision = getattr(self.vision, "vision_model", self.vision)
        out = vision(self.pixels(x), output_hidden_states=True, return_dict=True)
        return out.hidden_states[k][:, 1:, :]

    @staticmethod
    def gram(tokens):
        return torch.bmm(tokens.transpose(1, 2), tokens)  # style_CLIP.py 48; base_clip.py 60-61 per image

    def energy_openai(self, x):
        """FreeDoM/MPGD: ``torch.linalg.norm(gram1 − gram2)`` (ddim.py 258-260), per image."""
        return (self.gram(self.openai_feats(x)) - self.target_openai).flatten(1).norm(dim=1)

    def log_p_tfg(self, x):
        """TFG style_CLIP.py 57-59: −√Σ(G − Gₛ)²/100."""
        diff = (self.gram(self.hidden_states(x, 2)) - self.target_hidden2).reshape(x.shape[0], -1)
        return -(diff**2).sum(dim=1).sqrt() / 100

    def energy_hidden2(self, x):
        return -100 * self.log_p_tfg(x)

    # -- stylediff's objective -----------------------------------------------------------------------
    def objective(self, name):
        """``RawGram`` at the layer ``stylediff sample`` picks for ``name`` on a CLIP network (no --layers)."""
        layer = style_layers(argparse.Namespace(layers=None), self.clip, make_method(name))
        return RawGram(self.clip, self.style, layer[0])

    def run(self, method, eta, objective):
        states = []
        sampler = GuidedSampler(self.adapter(), self.model.scheduler("ddim"), objective, method)
        sampler(SEEDS, STEPS, eta=eta, progress=False, callback=lambda info: states.append(info["x"].clone()))
        return states


@pytest.fixture(scope="module", params=["epsilon", "v_prediction"])
def harness(request, tmp_path_factory):
    folder = build_tiny_sd(tmp_path_factory.mktemp(f"sd-{request.param}") / "pipe", request.param)
    return Harness(folder, request.param)


# -- the references, one step each ------------------------------------------------------------------------
def reference_freedom(h, z_t, s, eta):
    """vvictoryuki/FreeDoM ``SD_style/ldm/models/diffusion/ddim.py`` ``p_sample_ddim_conditional``: ε_u, ε_c,
    ``correction = e_t − e_t_uncond`` (230-236); pred_x0 (255); norm of the Gram residual of
    decode_first_stage(pred_x0) (258-260); ``norm_grad`` w.r.t. x through decoder and UNet (262);
    ``rho = rms(correction)·w / rms(norm_grad)·0.2`` (263, s = 0.2 there); ``x_prev −= rho·norm_grad`` (273)."""
    z = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        eps_u, eps_c = h.cfg_eps(z)
        correction = eps_c - eps_u
        eps = eps_u + CFG * correction
        norm_ = h.energy_openai(h.decode(h.x0_of(z, eps)))
        norm_grad = torch.autograd.grad(norm_.sum(), z)[0]
    rho = rms(correction.detach()) * CFG / rms(norm_grad) * s
    return -rho * norm_grad


def reference_mpgd(h, z_t, s, eta):
    """KellyYutongHe/mpgd_pytorch ``nonlinear/SD_style/ldm/models/diffusion/ddim.py``
    ``p_sample_ddim_conditional_x0``: ε_u, ε_c, ``correction`` (230-236) without a graph (@no_grad, 202);
    pred_x0 (255) detached (257); ``norm_grad`` w.r.t. pred_x0 of the Gram-residual norm of its decoding
    (260-263); ``rho = rms(correction)·w / rms(norm_grad)·rho`` (266); ``pred_x0 −= rho·norm_grad`` (269);
    x_prev = c1·pred_x0 + c2·x + c3·noise (271-275): the change of x_prev is −c1·rho·norm_grad."""
    with torch.no_grad():
        eps_u, eps_c = h.cfg_eps(z_t)
        correction = eps_c - eps_u
        eps = eps_u + CFG * correction
    pred_x0 = h.x0_of(z_t, eps).detach().requires_grad_(True)
    with torch.enable_grad():
        norm_ = h.energy_openai(h.decode(pred_x0))
        norm_grad = torch.autograd.grad(norm_.sum(), pred_x0)[0]
    rho = rms(correction) * CFG / rms(norm_grad) * s
    c1 = h.ap.sqrt() * (1 - h.a / h.ap) / (1 - h.a)
    return c1 * (-rho * norm_grad)


TFG_SD = {"rho": 0.25, "mu": 2.0, "variance": 0.1, "mc_samples": 1, "inner_steps": 4}
"""TFG's scripts/style_transfer.sh (rho, mu, sigma, eps_bsz, iter_steps)."""


def _tfg_weight(h, kind):
    """TFG methods/tfg.py get_rho / get_mu (48-66) over the sampler's grid: ``increase`` = α_t = ᾱ_t/ᾱ_prev."""
    alpha_prod_ts = h.alphas[h.timesteps]
    alpha_prod_t_prevs = torch.cat([alpha_prod_ts[1:], torch.ones(1) * h.final])
    scheduler = alpha_prod_ts / alpha_prod_t_prevs
    return scheduler[INDEX] * len(scheduler) / scheduler.sum()


def reference_tfg(h, z_t, s, eta):
    """YWolfeee/Training-Free-Guidance ``methods/tfg.py`` ``guide_step`` (76-133): std = σ·√(1 − ᾱ_t) (68-74),
    mc_eps = std·ξ (42-45; ξ the sampler's ``variance0`` stream); Δ_t = ρ·∇_{x} of
    logsumexp(log p(x0 + mc_eps)) − log K (103-111, 30-33); new_x0 += μ·∇ (118-122); x_prev +=
    Δ_t/√α_t + Δ_0·√ᾱ_prev (126-129); ``clip_x0=False`` on SD."""
    rho = s * TFG_SD["rho"] * _tfg_weight(h, "increase")
    mu = s * TFG_SD["mu"] * _tfg_weight(h, "increase")
    std = TFG_SD["variance"] * (1 - h.a).sqrt()
    mc_eps = std * ImageStreams(SEEDS).normal(tuple(z_t.shape[1:]), "variance0")[None]

    def avg_logprobs(x0):
        outs = h.log_p_tfg(h.decode((x0[None] + mc_eps).reshape(-1, *x0.shape[1:])))
        return torch.logsumexp(outs.reshape(mc_eps.shape[0], x0.shape[0]), dim=0) - math.log(mc_eps.shape[0])

    x_g = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        eps_u, eps_c = h.cfg_eps(x_g)
        x0 = h.x0_of(x_g, eps_u + CFG * (eps_c - eps_u))
        delta_t = torch.autograd.grad(avg_logprobs(x0).sum(), x_g)[0] * rho
    new_x0 = x0.detach().clone()
    for _ in range(TFG_SD["inner_steps"]):
        leaf = new_x0.detach().requires_grad_(True)
        with torch.enable_grad():
            new_x0 = new_x0 + mu * torch.autograd.grad(avg_logprobs(leaf).sum(), leaf)[0]
    delta_0 = new_x0 - x0.detach()
    alpha_t = h.a / h.ap
    return delta_t / alpha_t**0.5 + delta_0 * h.ap**0.5


LGD_N = 3


def reference_lgd(h, z_t, s, eta):
    """YWolfeee/Training-Free-Guidance ``methods/lgd.py`` ``guide_step`` (13-73): mc_eps = √(1 − ᾱ_t)·ξ_k
    (36; ξ_k the sampler's ``lgd{k}`` streams); x0 = (x − √(1 − ᾱ_t)·unet(x))/√ᾱ_t with the graph (50-51);
    log p of x0 + mc_eps (52-61); logsumexp over the samples (65); grad / n (67); x_prev += s·guidance (71)."""
    mc_eps = torch.stack(
        [(1 - h.a).sqrt() * ImageStreams(SEEDS).normal(tuple(z_t.shape[1:]), f"lgd{k}") for k in range(LGD_N)]
    )
    x_need_grad = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        eps_u, eps_c = h.cfg_eps(x_need_grad)
        x0_grad = h.x0_of(x_need_grad, eps_u + CFG * (eps_c - eps_u))
        flat_x0 = x0_grad[None] + mc_eps
        log_prob = torch.stack([h.log_p_tfg(h.decode(sample)) for sample in flat_x0])  # torch.vmap over k
        log_prob = torch.logsumexp(log_prob, dim=0)
        guidance = torch.autograd.grad(log_prob.sum(), x_need_grad)[0] / LGD_N
    return s * guidance


def reference_dps(h, z_t, s, eta):
    """DPS2022/diffusion-posterior-sampling ``condition_methods.py`` ``PosteriorSampling.conditioning`` (pixel
    only; here with the decoder in the loss): x_t −= ζ·∇_{x_t}‖r‖ (``grad_and_value``: ``torch.linalg.norm``
    of the residual, unsquared), ‖r‖ the CLIP-Gram residual norm at TFG's layer."""
    z = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        eps_u, eps_c = h.cfg_eps(z)
        norm_ = h.energy_hidden2(h.decode(h.x0_of(z, eps_u + CFG * (eps_c - eps_u))))
        norm_grad = torch.autograd.grad(norm_.sum(), z)[0]
    return -s * norm_grad


def _ddim_change(h, eta, d_x0, d_eps):
    """DDIM eq. 12, √ᾱ_prev·x̂0 + √(1 − ᾱ_prev − σ²)·ε (+ σ·noise): its change for Δx̂0, Δε."""
    sigma2 = eta**2 * (1 - h.ap) / (1 - h.a) * (1 - h.a / h.ap)
    return h.ap.sqrt() * d_x0 + (1 - h.ap - sigma2).sqrt() * d_eps


def reference_ugd(h, z_t, s, eta):
    """arpitbansal297/Universal-Guided-Diffusion ``stable-diffusion-guided/ldm/models/diffusion/
    ddim_with_grad.py`` ``DDIMSamplerWithGrad.sample`` (``guidance_3``, ``original_guidance``): e_t of the CFG
    batch (135-139); pred_x0, decode_first_stage_with_grad (144-145); selected = −criterion (160, criterion =
    the objective here, its CLIP-RN50 loss there: stated); grad·wt (165-166); e_t −= √(1 − ᾱ_t)·grad (168);
    pred_x0, dir_xt, x_prev from the new e_t (209-215)."""
    img_in = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        e_t_uncond, e_t = h.cfg_eps(img_in)
        e_t = e_t_uncond + CFG * (e_t - e_t_uncond)
        pred_x0 = h.x0_of(img_in, e_t)
        selected = -h.criterion(h.decode(pred_x0) / 2 + 0.5)
        grad = torch.autograd.grad(selected.sum(), img_in)[0] * s
    e_new = e_t.detach() - (1 - h.a).sqrt() * grad
    return _ddim_change(h, eta, h.x0_of(z_t, e_new) - pred_x0.detach(), e_new - e_t.detach())


def reference_classifier(h, z_t, s, eta):
    """openai/guided-diffusion ``gaussian_diffusion.py`` ``condition_score`` + ``ddim_sample`` (pixel only;
    here with the decoder in the "classifier" log p = −L(decode(x̂0(x_t)))): ε re-derived from x̂0 (unclipped
    latents: the model's), ε′ = ε − √(1 − ᾱ_t)·cond_fn, cond_fn = s·∇ log p; x̂0 from ε′; eq. 12."""
    z = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        eps_u, eps_c = h.cfg_eps(z)
        eps = eps_u + CFG * (eps_c - eps_u)
        log_p = -h.criterion(h.decode(h.x0_of(z, eps)) / 2 + 0.5)
        cond_fn = s * torch.autograd.grad(log_p.sum(), z)[0]
    eps = eps.detach()
    eps_new = eps - (1 - h.a).sqrt() * cond_fn
    return _ddim_change(h, eta, h.x0_of(z_t, eps_new) - h.x0_of(z_t, eps), eps_new - eps)


def reference_x0(h, z_t, s, eta):
    """stylediff's own ``x0`` rule (its docstring; no published reference): ĝ = ∇_{x̂0}L(decode(x̂0))·‖ε̂‖/‖∇‖,
    x̂0′ = x̂0 − s·σ_t·ĝ·50/n (latents are not clipped), x_{t−1} moves by √ᾱ_prev·(x̂0′ − x̂0) (DDIM, ε̂ held)."""
    with torch.no_grad():
        eps_u, eps_c = h.cfg_eps(z_t)
        eps = eps_u + CFG * (eps_c - eps_u)
    x0 = h.x0_of(z_t, eps).detach().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(h.criterion(h.decode(x0) / 2 + 0.5).sum(), x0)[0]
    g = g * norm(eps) / norm(g)
    return _ddim_change(h, eta, -s * (1 - h.a).sqrt() * g * 50 / STEPS, 0)


def reference_through_unet(h, z_t, s, eta):
    """stylediff's own ``through_unet`` rule (its docstring): ε̂′ = ε̂ + s·σ_t·ĝ, ĝ = ∇_{z_t}L·‖ε̂‖/‖∇‖, x̂0
    following ε̂ (z_t held): x_{t−1} moves by k_t·s·σ_t·ĝ, k_t = c_ε − √ᾱ_prev·σ_t/√ᾱ_t."""
    z = z_t.detach().requires_grad_(True)
    with torch.enable_grad():
        eps_u, eps_c = h.cfg_eps(z)
        eps = eps_u + CFG * (eps_c - eps_u)
        g = torch.autograd.grad(h.criterion(h.decode(h.x0_of(z, eps)) / 2 + 0.5).sum(), z)[0]
    d_eps = s * (1 - h.a).sqrt() * g * norm(eps.detach()) / norm(g)
    return _ddim_change(h, eta, h.x0_of(z_t, d_eps) - h.x0_of(z_t, 0 * d_eps), d_eps)


REFERENCES = {
    # method: (reference, scale, knobs, η values the reference runs)
    "freedom": (reference_freedom, 0.2, {"recurrence": 1, "travel_window": (0.0, 0.0)}, (1.0, 0.0)),
    "mpgd": (reference_mpgd, 15.0, {}, (1.0, 0.0)),
    "tfg": (reference_tfg, 1.0, TFG_SD, (1.0,)),
    "lgd": (reference_lgd, 1.0, {"mc_samples": LGD_N}, (1.0,)),
    "dps": (reference_dps, 1.0, {}, (0.0,)),
    "ugd": (reference_ugd, 6.0, {"recurrence": 1}, (0.0,)),
    "classifier": (reference_classifier, 1.0, {}, (0.0,)),
    "x0": (reference_x0, 0.05, {}, (0.0,)),
    "through_unet": (reference_through_unet, 0.1, {}, (0.0,)),
}
"""Scales: the references' Stable Diffusion values where they have one (FreeDoM s 0.2, MPGD ρ 15, TFG ρ 0.25
μ 2 σ 0.1 at scale 1, UGD weight 6), else any that moves the step."""

CASES = [(name, eta) for name, (_, _, _, etas) in REFERENCES.items() for eta in etas]


@pytest.mark.parametrize("name,eta", CASES, ids=[f"{n}-eta{e:g}" for n, e in CASES])
def test_one_latent_step_equals_the_reference_update(harness, name, eta):
    reference, scale, knobs, _ = REFERENCES[name]
    objective = harness.objective(name)
    harness.criterion = objective  # the references that take the objective as their loss
    guided = harness.run(make_method(name, scale=scale, **{**knobs, "window": WINDOW}), eta, objective)
    unguided = harness.run(make_method(name, scale=0.0), eta, objective)
    z_t = guided[INDEX - 1]
    assert torch.equal(z_t, unguided[INDEX - 1])  # only step INDEX is guided
    expected = reference(harness, z_t, scale, eta)
    moved = guided[INDEX] - unguided[INDEX]
    assert expected.abs().max() > 1e-6  # the reference's guidance moves the step
    error = (moved - expected).abs().max() / expected.abs().max()
    assert error <= TOLERANCE, (name, harness.prediction_type, eta, error.item())


def test_the_methods_clip_layers_are_their_references(harness):
    """FreeDoM's and MPGD's ``feats[2]`` (the output of block 3) is ``hidden3``; TFG's ``hidden_states[2]`` is
    ``hidden2``: the layer ``stylediff sample`` picks for each method without --layers gives their features."""
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    for name, reference in (
        ("freedom", harness.openai_feats),
        ("mpgd", harness.openai_feats),
        ("tfg", lambda x: harness.hidden_states(x, 2)),
        ("lgd", lambda x: harness.hidden_states(x, 2)),
    ):
        (layer,) = style_layers(argparse.Namespace(layers=None), harness.clip, make_method(name))
        ours = harness.clip(images / 2 + 0.5, [layer])[layer].flatten(2).transpose(1, 2)
        assert torch.allclose(ours, reference(images), atol=1e-5), (name, layer)
    assert style_layers(argparse.Namespace(layers="hidden1"), harness.clip, make_method("mpgd")) == ["hidden1"]


def test_the_relative_gram_loss_is_the_raw_one_over_the_targets_norm(harness):
    """The declared factor of tfg/lgd's log p with stylediff's ``gram`` loss: L = ‖G − Gₛ‖²/‖Gₛ‖² of the raw
    matrices, so −√L/100 is TFG's −‖G − Gₛ‖_F/100 divided by ‖Gₛ‖_F."""
    from stylediff.nst.losses import style_objective

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    raw = harness.objective("tfg")
    relative = style_objective(harness.clip, harness.style, ["hidden2"], "gram")
    with torch.no_grad():
        assert torch.allclose(relative(images), raw(images) / raw.target.pow(2).sum(), rtol=1e-4)


def test_mpgd_and_freedom_resolve_the_reference_rules_per_model():
    """``auto`` knobs resolve once, before sampling, to each reference's rule for the kind of model."""
    from stylediff.core.errors import ConfigError

    mpgd = make_method("mpgd")
    latent, pixel = mpgd.resolved(latent=True, cfg=True), mpgd.resolved(latent=False, cfg=False)
    assert (latent.window, latent.step_schedule, latent.step_size) == ((0.3, 0.7), "posterior", "cfg")
    assert (pixel.window, pixel.step_schedule, pixel.step_size) == ((0.0, 1.0), "inv_sqrt_alpha_prev", "pixel")
    assert make_method("mpgd", window=(0.0, 1.0)).resolved(latent=True, cfg=False).window == (0.0, 1.0)
    unconditional = mpgd.resolved(latent=True, cfg=False)  # an LDM: no CFG correction, the unconditional reference
    assert (unconditional.window, unconditional.step_schedule, unconditional.step_size) == (
        (0.0, 1.0),
        "inv_sqrt_alpha_prev",
        "pixel",
    )
    assert make_method("freedom").resolved(latent=True, cfg=True).step_size == "cfg"
    assert make_method("freedom").resolved(latent=True, cfg=False).step_size == "pixel"
    with pytest.raises(ConfigError, match="needs classifier-free guidance"):
        make_method("freedom", step_size="cfg").resolved(latent=False, cfg=False)


def test_stylediff_sample_mpgd_moves_z_by_the_references_amount(harness, tmp_path):
    """``stylediff sample --method mpgd`` on a tiny SD folder, one guided step: the change of z_{t−1}
    (``step_rms`` in the sidecar's history) is the reference's c1·ρ·rms(w·(ε_c − ε_u)) at the same ρ
    (the gradient's own size cancels in MPGD's SD rule, ddim.py 266-275); the sidecar records the rule
    that ran and the reference's CLIP layer."""
    if harness.prediction_type != "epsilon":
        pytest.skip("one prediction type is enough for the command line")
    clip_folder = tmp_path / "clip"
    tiny_clip_vision_model().save_pretrained(clip_folder)  # float32, as a user's
    style = tmp_path / "style.png"
    from stylediff.core.images import save_image

    save_image(harness.style.float(), style)
    out = tmp_path / "mpgd.png"
    args = [
        "sample",
        "--model",
        str(harness.folder),
        "--prompt",
        PROMPT,
        "--cfg-scale",
        str(CFG),
        "--style",
        str(style),
    ]
    args += ["--network", "clip-vit-b16", "--network-path", str(clip_folder), "--method", "mpgd", "--scale", "15"]
    args += ["--window", ",".join(map(str, WINDOW)), "--steps", str(STEPS), "--eta", "1", "--seed", "0"]
    assert main([*args, "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert (meta["guidance"]["step_schedule"], meta["guidance"]["step_size"]) == ("posterior", "cfg")
    assert meta["config"]["layers"] == "hidden3"
    measured = meta["history"][INDEX]["step_rms"][0]
    model = load_model(harness.folder)  # float32 as the command's (its noise draws differ from float64's)
    adapter = model.adapter(model.scheduler("ddim"), prompt=PROMPT, cfg_scale=CFG)
    states = []
    GuidedSampler(adapter, model.scheduler("ddim"))(
        [0], STEPS, eta=1.0, progress=False, callback=lambda info: states.append(info["x"])
    )
    z = states[INDEX - 1]
    unconditional, conditional = adapter.conditioning
    embeddings = torch.cat([unconditional["encoder_hidden_states"], conditional["encoder_hidden_states"]])
    with torch.no_grad():  # MPGD ddim.py 231-235: correction = e_t − e_t_uncond of the CFG batch
        e_t_uncond, e_t = model.unet(torch.cat([z, z]), harness.t, encoder_hidden_states=embeddings).sample.chunk(2)
    c1 = harness.ap.sqrt() * (1 - harness.a / harness.ap) / (1 - harness.a)
    expected = (c1 * 15 * rms(CFG * (e_t - e_t_uncond))).item()
    assert measured == pytest.approx(expected, rel=1e-4)
