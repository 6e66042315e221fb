"""Attention Distillation (``attention_distillation``) and the adapter's attention hook, against a
transcription of the reference, xugao97/AttentionDistillation at 142800c389bb4dff41e7f79cb9c2e88c981bbec2:
its attention capture (``utils.py`` ``register_attn_control``, ``Controller``, ``DataCache``, ``adain``),
its losses (``losses.py`` ``ad_loss``, ``q_loss``), its sample-mode step (``pipeline_sd.py`` ``ADPipeline.AD``
and ``extract_feature``, called after ``scheduler.step`` in ``sample``'s loop) and its optimisation loop
(``ADPipeline.optimize``), with the reference's ``torch.randn_like`` draws replaced by the draws the
method takes from its streams. The reference's bf16 ``accelerate`` wrapping is left out (fp32 here)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylediff.core.errors import ConfigError
from stylediff.core.images import load_image, resize
from stylediff.core.seeding import ImageStreams, image_generators
from stylediff.diffusion import GuidedSampler, load_model, make_method
from stylediff.diffusion.attention import AttentionHook, decoder_layers, self_attention_modules
from stylediff.diffusion.distillation import DistillationOptimizer
from stylediff.diffusion.starts import ContentStart

from .conftest import tiny_sd_unet
from .test_content_start import held_out_face
from .test_latent import PROMPT, sd_dir  # noqa: F401  (the tiny Stable Diffusion folder fixture)

diffusers = pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
PIXEL, LATENT = ROOT / "models" / "ddpm-emoji-faces-32", ROOT / "models" / "ldm-emoji-faces-32"
STYLE = ROOT / "data" / "styles" / "the_scream.jpg"


# -- the reference, transcribed --------------------------------------------------------------------
class Controller:  # utils.py:146-153
    def step(self):
        self.cur_self_layer = 0

    def __init__(self, self_layers=(0, 16)):
        self.num_self_layers = -1
        self.cur_self_layer = 0
        self.self_layers = list(range(*self_layers))


class DataCache:  # utils.py:156-176
    def __init__(self):
        self.q, self.k, self.v, self.out = [], [], [], []

    def clear(self):
        self.q.clear(), self.k.clear(), self.v.clear(), self.out.clear()

    def add(self, q, k, v, out):
        self.q.append(q), self.k.append(k), self.v.append(v), self.out.append(out)

    def get(self):
        return self.q.copy(), self.k.copy(), self.v.copy(), self.out.copy()


def register_attn_control(unet, controller, cache):  # noqa: C901 - the reference transcribed as it is
    """utils.py:11-119: every module of class ``Attention`` gets this forward (diffusers' AttnProcessor2_0
    inlined), which caches q, k, v and the SDPA output of the self-attention calls numbered in
    ``controller.self_layers`` (counted in call order)."""

    def attn_forward(self):
        def forward(hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
            residual = hidden_states
            if self.spatial_norm is not None:
                hidden_states = self.spatial_norm(hidden_states, temb)
            input_ndim = hidden_states.ndim
            if input_ndim == 4:
                batch_size, channel, height, width = hidden_states.shape
                hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
            batch_size, sequence_length, _ = (
                hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
            )
            if attention_mask is not None:
                attention_mask = self.prepare_attention_mask(attention_mask, sequence_length, batch_size)
                attention_mask = attention_mask.view(batch_size, self.heads, -1, attention_mask.shape[-1])
            if self.group_norm is not None:
                hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
            q = self.to_q(hidden_states)
            is_self = encoder_hidden_states is None
            if encoder_hidden_states is None:
                encoder_hidden_states = hidden_states
            elif self.norm_cross:
                encoder_hidden_states = self.norm_encoder_hidden_states(encoder_hidden_states)
            k = self.to_k(encoder_hidden_states)
            v = self.to_v(encoder_hidden_states)
            inner_dim = k.shape[-1]
            head_dim = inner_dim // self.heads
            q = q.view(batch_size, -1, self.heads, head_dim).transpose(1, 2)
            k = k.view(batch_size, -1, self.heads, head_dim).transpose(1, 2)
            v = v.view(batch_size, -1, self.heads, head_dim).transpose(1, 2)
            hidden_states = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
            )
            if is_self and controller.cur_self_layer in controller.self_layers:
                cache.add(q, k, v, hidden_states)
            hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, self.heads * head_dim)
            hidden_states = hidden_states.to(q.dtype)
            hidden_states = self.to_out[0](hidden_states)
            hidden_states = self.to_out[1](hidden_states)
            if input_ndim == 4:
                hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
            if self.residual_connection:
                hidden_states = hidden_states + residual
            hidden_states = hidden_states / self.rescale_output_factor
            if is_self:
                controller.cur_self_layer += 1
            return hidden_states

        return forward

    for module in unet.modules():
        if module.__class__.__name__ == "Attention":
            module.forward = attn_forward(module)


def ad_loss(q_list, ks_list, vs_list, self_out_list, scale=1):  # losses.py:10-30 (without the region masks)
    loss = 0
    for q, ks, vs, self_out in zip(q_list, ks_list, vs_list, self_out_list):
        target_out = F.scaled_dot_product_attention(
            q * scale,
            torch.cat(torch.chunk(ks, ks.shape[0]), 2).repeat(q.shape[0], 1, 1, 1),
            torch.cat(torch.chunk(vs, vs.shape[0]), 2).repeat(q.shape[0], 1, 1, 1),
        )
        loss += torch.nn.L1Loss()(self_out, target_out.detach())
    return loss


def q_loss(q_list, qc_list):  # losses.py:34-38
    loss = 0
    for q, qc in zip(q_list, qc_list):
        loss += torch.nn.L1Loss()(q, qc.detach())
    return loss


def reference_adain(source, target, eps=1e-6):  # utils.py:133-143
    source_mean, source_std = torch.mean(source, dim=(2, 3), keepdim=True), torch.std(source, dim=(2, 3), keepdim=True)
    target_mean, target_std = (
        torch.mean(target, dim=(0, 2, 3), keepdim=True),
        torch.std(target, dim=(0, 2, 3), keepdim=True),
    )
    return (source - source_mean) / (source_std + eps) * target_std + target_mean


class Reference:
    """ADPipeline's feature extraction (``extract_feature``, pipeline_sd.py:675-690) with the reference's hook
    on ``unet`` (a second copy of the model: the hook replaces its attention modules' ``forward``)."""

    def __init__(self, unet, layers, embeds=None):
        self.classifier = unet
        self.controller, self.cache = Controller(self_layers=layers), DataCache()
        register_attn_control(self.classifier, self.controller, self.cache)
        self.embeds = embeds

    def extract_feature(self, scheduler, latent, t, add_noise=False, noise=None):
        self.cache.clear()
        self.controller.step()
        latent_ = scheduler.add_noise(latent, noise, t) if add_noise else latent
        args = () if self.embeds is None else (self.embeds.repeat(latent_.shape[0], 1, 1),)
        _ = self.classifier(latent_, t, *args)[0]
        return self.cache.get()

    def AD(
        self, scheduler, latents, t, lr, iters, style_latent, content_latent, weight, draws, adain=False, attn_scale=1
    ):
        """pipeline_sd.py:621-673; ``draws(purpose)`` stands for each ``torch.randn_like``."""
        t = max(t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps, torch.tensor([0]))
        if adain:
            style_latent_ = scheduler.add_noise(style_latent, draws("ad_style"), t)
            latents = reference_adain(latents, style_latent_)
        with torch.no_grad():
            qs_list, ks_list, vs_list, s_out_list = self.extract_feature(
                scheduler, style_latent, t, True, draws("ad_style")
            )
            if content_latent is not None:
                qc_list, kc_list, vc_list, c_out_list = self.extract_feature(
                    scheduler, content_latent, t, True, draws("ad_content")
                )
        latents = latents.detach()
        optimizer = torch.optim.Adam([latents.requires_grad_()], lr=lr)
        for _ in range(iters):
            content_loss = 0
            optimizer.zero_grad()
            q_list, k_list, v_list, self_out_list = self.extract_feature(scheduler, latents, t)
            style_loss = ad_loss(q_list, ks_list, vs_list, self_out_list, scale=attn_scale)
            if content_latent is not None:
                content_loss = q_loss(q_list, qc_list)
            loss = style_loss + content_loss * weight
            loss.backward()
            optimizer.step()
        return latents.detach()

    def optimize(self, scheduler, latents, steps, lr, iters, style_latent, content_latent, weight, each=None):
        """pipeline_sd.py:326-364 (``each(latents)`` after every timestep)."""
        scheduler.set_timesteps(steps)
        latents = latents.detach().float()
        optimizer = torch.optim.Adam([latents.requires_grad_()], lr=lr)
        for t in scheduler.timesteps:
            with torch.no_grad():
                qs_list, ks_list, vs_list, s_out_list = self.extract_feature(scheduler, style_latent, t)
                if content_latent is not None:
                    qc_list, kc_list, vc_list, c_out_list = self.extract_feature(scheduler, content_latent, t)
            for _ in range(iters):
                content_loss = 0
                optimizer.zero_grad()
                q_list, k_list, v_list, self_out_list = self.extract_feature(scheduler, latents, t)
                style_loss = ad_loss(q_list, ks_list, vs_list, self_out_list)
                if content_latent is not None:
                    content_loss = q_loss(q_list, qc_list)
                loss = style_loss + content_loss * weight
                loss.backward()
                optimizer.step()
            if each is not None:
                each(latents.detach().clone())
        return latents.detach()


def image2latent(model, image):
    """pipeline_sd.py:45-52 (``2x − 1`` for a pixel model)."""
    if "vae" not in model.components:
        return image * 2 - 1
    vae = model.components["vae"]
    return vae.encode(image * 2 - 1)["latent_dist"].mean * vae.config.scaling_factor


# -- the hook ----------------------------------------------------------------------------------------
def unets():
    yield "pixel demo", load_model(PIXEL).unet, {}
    yield "latent demo", load_model(LATENT).unet, {}
    yield (
        "tiny SD",
        tiny_sd_unet().eval(),
        {"encoder_hidden_states": torch.randn(2, 77, 8, generator=torch.Generator().manual_seed(1))},
    )


def test_the_hook_leaves_the_unet_bit_identical_and_records_what_the_reference_caches():
    for label, unet, kwargs in unets():
        n = len(self_attention_modules(unet))
        x = torch.randn(2, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        with torch.no_grad():
            plain = unet(x, 500, **kwargs).sample
            with AttentionHook(unet, list(range(n))) as hook:
                hooked = unet(x, 500, **kwargs).sample
            again = unet(x, 500, **kwargs).sample  # the stock processors are back
            reference = Reference(copy.deepcopy(unet), (0, n), kwargs.get("encoder_hidden_states"))
            reference.controller.step()
            reference.cache.clear()
            reference.classifier(x, 500, **kwargs)
        assert torch.equal(plain, hooked) and torch.equal(plain, again), label
        assert n == 4 and len(reference.cache.q) == n, label
        for layer, (q, k, v, out) in enumerate(zip(*reference.cache.get())):
            record = hook.records[layer]
            assert all(torch.equal(a, b) for a, b in zip((record.q, record.k, record.v, record.out), (q, k, v, out))), (
                label
            )


def test_an_edit_changes_what_the_layer_attends_with():
    unet = load_model(PIXEL).unet
    x, other = torch.randn(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        with AttentionHook(unet, [3]) as hook:
            unet(other, 700)
            k, v = hook.records[3].k, hook.records[3].v
        with AttentionHook(unet, [3], edit=lambda layer, q, k_, v_: (q, k, v)) as hook:
            edited = unet(x, 700).sample
        plain = unet(x, 700).sample
    record = hook.records[3]
    assert torch.equal(record.out, F.scaled_dot_product_attention(record.q, k, v))
    assert (edited - plain).abs().max() > 1e-3


def test_layers_are_numbered_in_forward_order_and_the_default_is_the_last_six_of_the_decoder():
    """On an SD 1.5-shaped UNet the reference's layers 10..15 (``Controller(self_layers=(10, 16))``) are the
    last six in call order: up_blocks.2 and .3 (named_modules lists up_blocks before mid_block)."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=2,
        sample_size=16,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=8,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    called = []
    modules = self_attention_modules(unet)
    hooks = [module.register_forward_pre_hook(lambda m, a, name=name: called.append(name)) for name, module in modules]
    with torch.no_grad():
        unet(torch.randn(1, 4, 16, 16), 10, encoder_hidden_states=torch.randn(1, 77, 8))
    for hook in hooks:
        hook.remove()
    assert called == [name for name, _ in modules] and len(called) == 16
    assert called[6].startswith("mid_block")
    assert decoder_layers(unet, 6) == list(range(10, 16))
    assert all(called[i].startswith(("up_blocks.2", "up_blocks.3")) for i in range(10, 16))
    assert decoder_layers(load_model(PIXEL).unet, 6) == [2, 3]
    with pytest.raises(ConfigError, match="no self-attention layer in its up blocks"):
        decoder_layers(load_model(ROOT / "models" / "ddpm-emoji-32").unet, 6)


# -- the step, against the reference -----------------------------------------------------------------
def run_method(adapter, scheduler, method, style, seeds, steps, start):
    seen = {}
    sampler = GuidedSampler(adapter, scheduler, None, method, references={"style": style})
    sampler(
        seeds, num_inference_steps=steps, progress=False, start=start, callback=lambda info: seen.update(x=info["x"])
    )
    return seen["x"]


def reference_sample(model, adapter, scheduler, reference, style, start, seeds, steps, lr, iters, adain):
    """ADPipeline.sample's loop (pipeline_sd.py:247-274), the denoising call and ``scheduler.step`` then
    ``AD`` at every step (``start_time`` 999), from the sampler's first x (noise or the content start)."""
    from diffusers.utils.torch_utils import randn_tensor

    scheduler.set_timesteps(steps)
    generators = image_generators(seeds)
    if start is None:
        x, first = randn_tensor((1, *adapter.sample_shape), generator=generators[0]) * scheduler.init_noise_sigma, 0
    else:
        x, first = start.initial(adapter, scheduler, steps, generators, None), steps - int(steps * start.strength)
    streams = ImageStreams(seeds)  # the method's draws, in its order

    def draws(purpose):
        return streams.normal(tuple(x.shape[1:]), purpose)

    with torch.no_grad():
        style_latent = image2latent(model, style)
        content_latent = None if start is None else image2latent(model, start.image)
    for t in scheduler.timesteps[first:]:
        with torch.no_grad():
            x = scheduler.step(adapter.denoise(x, t).output, t, x).prev_sample
        x = reference.AD(scheduler, x, t, lr, iters, style_latent, content_latent, 0.25, draws, adain)
    return x


def sd_null_embeds(folder):
    """The reference's ``encode_prompt("", device, 1, False)[0]`` (pipeline_sd.py:228; its ``freeze``: no grad)."""
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(folder)
    with torch.no_grad():
        return pipe.encode_prompt("", "cpu", 1, False)[0]


CASES = {
    "pixel, noise start": (PIXEL, 0.05, 2, "off", None),
    "pixel, content": (PIXEL, 0.015, 3, "off", 0.3),
    "pixel, content, adain": (PIXEL, 0.05, 1, "on", 0.3),
    "latent demo, content": (LATENT, 0.05, 2, "off", 0.3),
    "tiny SD, content, CFG": ("sd", 0.05, 2, "off", 0.3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sample_mode_steps_are_the_references_ad_steps_bit_for_bit(case, sd_dir):  # noqa: F811
    path, lr, iters, adain, strength = CASES[case]
    model = load_model(sd_dir if path == "sd" else path)
    scheduler = model.scheduler("ddim")
    options = {"prompt": PROMPT, "cfg_scale": 7.5} if path == "sd" else {}
    adapter = model.adapter(scheduler, **options)
    shape = adapter.image_shape
    style = resize(load_image(STYLE, max(shape)), shape)
    start = None if strength is None else ContentStart(resize(held_out_face(4), shape).contiguous(), strength)
    steps = 3 if start is None else 10
    method = make_method("attention_distillation", scale=lr, iterations=iters, adain=adain)
    ours = run_method(adapter, scheduler, method, style, [6], steps, start)
    # a second load, not a deepcopy: a copied tensor's memory alignment can change the kernels' last bits
    reference = Reference(
        load_model(sd_dir if path == "sd" else path).unet, (2, 4), sd_null_embeds(sd_dir) if path == "sd" else None
    )
    expected = reference_sample(
        model, adapter, model.scheduler("ddim"), reference, style, start, [6], steps, lr, iters, adain == "on"
    )
    assert torch.equal(ours, expected)


def test_images_do_not_depend_on_their_batch_and_scale_zero_is_the_plain_sample():
    """The loss is summed over images (each the reference's loss alone), so an image's gradient is its own;
    alone and in a batch it still differs by batched kernels' rounding, which Adam's per-element step turns
    into moves of up to lr where a gradient is near zero: the mean difference stays under 1 % of the method's
    own change. At scale 0 the method is the plain sample."""
    model = load_model(PIXEL)
    scheduler = model.scheduler("ddim")
    adapter = model.adapter(scheduler)
    style = load_image(STYLE, 32)
    start = ContentStart(held_out_face(6), 0.4)
    method = make_method("attention_distillation", scale=0.05)
    batch = run_method(adapter, scheduler, method, style, [2, 9], 10, start)
    alone = run_method(adapter, scheduler, method, style, [9], 10, start)
    plain = run_method(adapter, scheduler, None, style, [9], 10, start)
    assert (batch[1] - alone[0]).abs().mean() < 0.01 * (alone - plain).abs().mean()
    zero = run_method(adapter, scheduler, make_method("attention_distillation", scale=0.0), style, [9], 10, start)
    assert torch.equal(zero, plain) and (alone - plain).abs().mean() > 0.05


@pytest.mark.parametrize("path", [PIXEL, LATENT])
def test_the_optimize_engine_is_the_references_optimize_bit_for_bit(path):
    model = load_model(path)
    scheduler = model.scheduler("ddim")
    adapter = model.adapter(scheduler)
    style = resize(load_image(STYLE, 32), (32, 32))
    face = held_out_face(5).contiguous()
    method = make_method("attention_distillation", scale=0.05, iterations=1, ad_mode="optimize")
    ours = []
    engine = DistillationOptimizer(adapter, scheduler, None, method, references={"style": style})
    out = engine(
        [0],
        num_inference_steps=4,
        progress=False,
        start=ContentStart(face, 1.0),
        callback=lambda info: ours.append(info["x"]),
    )
    expected = []
    with torch.no_grad():
        style_latent, content_latent = image2latent(model, style), image2latent(model, face)
    Reference(load_model(path).unet, (2, 4)).optimize(
        model.scheduler("ddim"), content_latent.clone(), 4, 0.05, 1, style_latent, content_latent, 0.25, expected.append
    )
    assert len(ours) == len(expected) == 4
    assert all(torch.equal(a, b) for a, b in zip(ours, expected))
    assert out.start == {"start": "content", "t_start": 0, "first_t": int(scheduler.timesteps[0])}


@pytest.mark.parametrize("content", [False, True])
def test_unet_calls_are_what_the_method_declares(content):
    """Forward and backward hooks on the UNet: each guided step makes the denoising call, the style's (and
    the content's) attention call and one forward and backward per iteration, as ``evaluations`` says."""
    model = load_model(PIXEL)
    scheduler = model.scheduler("ddim")
    method = make_method("attention_distillation", scale=0.01, iterations=2)
    counts = {"forward": 0, "backward": 0}
    unet = model.unet
    hooks = [
        unet.conv_in.register_forward_hook(lambda *a: counts.__setitem__("forward", counts["forward"] + 1)),
        unet.conv_in.register_full_backward_hook(lambda *a: counts.__setitem__("backward", counts["backward"] + 1)),
    ]
    start = ContentStart(held_out_face(0), 0.5) if content else None
    per_step = []
    try:
        sampler = GuidedSampler(
            model.adapter(scheduler), scheduler, None, method, references={"style": load_image(STYLE, 32)}
        )
        sampler(
            [0, 1],
            num_inference_steps=4,
            progress=False,
            start=start,
            callback=lambda info: per_step.append(dict(counts)),
        )
    finally:
        for hook in hooks:
            hook.remove()
    first = 2 if content else 0
    previous = {"forward": 0, "backward": 0}
    for index, totals in zip(range(first, 4), per_step):
        expected = sampler.method.evaluations(index, 4)  # the method as resolved for this model, which ran
        assert (totals["forward"] - previous["forward"], totals["backward"] - previous["backward"]) == (
            expected.unet_forward,
            expected.unet_backward,
        )
        previous = totals
    assert sampler.method.evaluations(first, 4).unet_forward == (1 + 1 + content + 2)
