"""The engine on real VGG-19 weights at small sizes: the properties the project's claims rest on."""

import pytest
import torch

from stylediff.core.errors import ConfigError, NumericalError
from stylediff.core.images import load_image, resize
from stylediff.evaluation.layout_copy import COPY_THRESHOLD, layout_copy
from stylediff.nst.losses import STYLE_LOSSES, ContentTerm, Objective, style_objective
from stylediff.nst.optimize import (
    LAYOUT_CYCLES,
    OptimizeConfig,
    coarse_to_fine,
    invert,
    optimize_image,
    periodic_component,
    random_phase,
    synthesize_texture,
    transfer_style,
)

from .conftest import STYLES, psnr

GATYS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


@pytest.fixture(scope="module")
def inversions(vgg, astronaut_png):
    image = load_image(astronaut_png, 64)
    return image, {layer: invert(vgg, image, layer, OptimizeConfig(steps=150, progress=False)) for layer in GATYS}


def test_inversion_from_relu1_1_is_near_perfect(inversions):
    image, results = inversions
    assert psnr(results["relu1_1"].image, image) >= 25


def test_inversion_gets_worse_with_depth(inversions):
    image, results = inversions
    scores = [psnr(results[layer].image, image) for layer in GATYS]
    assert scores[0] - scores[-1] > 10
    assert all(deeper <= shallower + 0.5 for shallower, deeper in zip(scores, scores[1:])), scores


def test_inversion_lowers_the_feature_loss(inversions):
    _, results = inversions
    for result in results.values():
        assert result.final["loss"] < 0.1 * result.history[0]["loss"]


TEXTURE_LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(scope="module")
def textures(vgg):
    """At 48 px relu4_1/relu5_1 have 36/9 positions for 512 channels: their covariances are rank-deficient
    and the Gaussian-W2 fit cannot be met by any image, so the every-loss claims use relu1_1…relu3_1
    (test_gram_texture_on_all_gatys_layers covers the five-layer set)."""
    style = load_image(STYLES / "starry_night.jpg", 48)
    config = OptimizeConfig(steps=150, init="mean", progress=False)
    return style, {
        loss: synthesize_texture(vgg, style, TEXTURE_LAYERS, loss, (48, 48), config) for loss in STYLE_LOSSES
    }


@pytest.mark.parametrize("loss", sorted(STYLE_LOSSES))
def test_texture_loss_falls_twenty_fold(textures, loss):
    _, results = textures
    history = results[loss].history
    assert history[-1]["loss"] * 20 <= history[0]["loss"], (history[0]["loss"], history[-1]["loss"])


@pytest.mark.parametrize("loss", sorted(STYLE_LOSSES))
def test_texture_resembles_its_style_not_another(vgg, textures, loss):
    style, results = textures
    other = load_image(STYLES / "the_scream.jpg", 48)
    texture = results[loss].image
    assert texture.shape == (1, 3, 48, 48)
    to_style = style_objective(vgg, style, TEXTURE_LAYERS, "gram")(texture).item()
    to_other = style_objective(vgg, other, TEXTURE_LAYERS, "gram")(texture).item()
    assert to_style < 0.5 * to_other
    colour_gap = (texture.mean(dim=(2, 3)) - style.mean(dim=(2, 3))).abs().max().item()
    assert colour_gap < 0.08


def test_gram_texture_on_all_gatys_layers(vgg):
    style = load_image(STYLES / "starry_night.jpg", 48)
    result = synthesize_texture(
        vgg, style, GATYS, "gram", (48, 48), OptimizeConfig(steps=100, init="mean", progress=False)
    )
    assert result.history[-1]["loss"] * 20 <= result.history[0]["loss"]


def test_texture_size_may_differ_from_the_style(vgg):
    style = load_image(STYLES / "shipwreck.jpg", 48)
    result = synthesize_texture(
        vgg, style, ["relu1_1", "relu2_1"], "gram", (24, 40), OptimizeConfig(steps=5, init="mean", progress=False)
    )
    assert result.image.shape == (1, 3, 24, 40)


def test_same_seed_same_image_different_seed_different(vgg):
    style = load_image(STYLES / "the_scream.jpg", 32)

    def run(seed):
        return synthesize_texture(
            vgg, style, ["relu1_1", "relu2_1"], "gram", (32, 32), OptimizeConfig(steps=10, seed=seed, progress=False)
        ).image

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_adam_and_multiscale(vgg):
    style = load_image(STYLES / "starry_night.jpg", 32)
    config = OptimizeConfig(steps=30, optimizer="adam", lr=0.05, scales=(16,), init="mean", progress=False)
    result = synthesize_texture(vgg, style, ["relu1_1", "relu2_1"], "gram", (32, 32), config)
    assert result.image.shape == (1, 3, 32, 32)
    assert [entry["scale"] for entry in result.history][::31] == [16, 32]
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]


@pytest.mark.parametrize("size, scales", [(256, (64, 128)), (128, (64,)), (127, ()), (64, ()), (600, (75, 150, 300))])
def test_coarse_to_fine_halves_down_to_64_px(size, scales):
    assert coarse_to_fine(size) == scales


def test_transfer_keeps_content_and_takes_style(vgg, chelsea_png):
    content = load_image(chelsea_png, 48)
    style = load_image(STYLES / "starry_night.jpg", 48)
    result = transfer_style(
        vgg, content, style, GATYS, "gram", OptimizeConfig(steps=60, init="content", progress=False), style_weight=10.0
    )
    style_loss = style_objective(vgg, style, GATYS, "gram")
    assert style_loss(result.image).item() < 0.3 * style_loss(content).item()
    content_error = Objective(vgg, {"content": (ContentTerm(vgg, content, ["relu4_2"]), 1.0)})
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    unrelated = min(content_error(noise).item(), content_error(resize(style, content.shape[-2:])).item())
    assert content_error(result.image).item() < 0.7 * unrelated


class Quadratic:
    """‖x − 0.3‖²: an objective whose minimum is known, for testing the engine itself."""

    def evaluate(self, images):
        total = ((images - 0.3) ** 2).flatten(1).sum(1)
        return total, {"quadratic": total}


def test_output_is_the_best_iterate_not_the_last():
    # Adam with a step as large as the distance to the minimum oscillates around it, so its last
    # iterate is not its best; the engine must return the best one and report its loss.
    init = torch.full((1, 3, 4, 4), 0.9)
    config = OptimizeConfig(steps=9, optimizer="adam", lr=0.5, progress=False)
    result = optimize_image(Quadratic(), init, config)

    image = init.clone().requires_grad_(True)
    adam = torch.optim.Adam([image], lr=0.5)
    for _ in range(config.steps):
        adam.zero_grad()
        Quadratic().evaluate(image)[0].sum().backward()
        adam.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    last = Quadratic().evaluate(image.detach())[0].item()

    seen = [entry["loss"] for entry in result.history[:-1]]
    final = result.history[-1]
    assert last > 2 * min(seen)  # the last iterate really is worse than the best
    assert final["loss"] == pytest.approx(min(seen), rel=1e-6)
    assert Quadratic().evaluate(result.image)[0].item() == pytest.approx(final["loss"], rel=1e-6)
    assert seen[final["best_step"] - 1] == min(seen)


@pytest.mark.parametrize("first_step", [None, 0.01, 0.05])
def test_first_lbfgs_step_moves_the_pixels_by_first_step(first_step):
    """torch's first L-BFGS step has L1 length lr over all pixels (~1e-4 each of 48² × 3 values); with
    ``first_step`` it moves them by that much (RMS), from one evaluation, and later steps use lr again."""
    init = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    one = optimize_image(Quadratic(), init, OptimizeConfig(steps=1, first_step=first_step, progress=False))
    moved = (one.image - init).pow(2).mean().sqrt().item()
    if first_step is None:
        assert moved < 1e-3
    else:
        assert moved == pytest.approx(first_step, rel=1e-3)
    assert len(one.history) == 2  # one evaluation for the step, one for the final score
    two = optimize_image(Quadratic(), init, OptimizeConfig(steps=2, first_step=first_step, progress=False))
    torch.testing.assert_close(two.image, torch.full_like(init, 0.3), atol=1e-3, rtol=0)  # then L-BFGS's own


def test_periodic_component_wraps_around_and_keeps_the_detail():
    style = load_image(STYLES / "the_scream.jpg", 64)
    periodic = periodic_component(style)
    jump = (style[..., 0, :] - style[..., -1, :]).abs().mean() + (style[..., 0] - style[..., -1]).abs().mean()
    after = (periodic[..., 0, :] - periodic[..., -1, :]).abs().mean() + (
        periodic[..., 0] - periodic[..., -1]
    ).abs().mean()
    assert after < 0.3 * jump
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # the smooth part is smooth inside
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
    detail = torch.nn.functional.conv2d
    torch.testing.assert_close(
        detail(periodic, laplacian, groups=3)[inner], detail(style, laplacian, groups=3)[inner], atol=0.02, rtol=0
    )


def test_random_phase_has_the_spectrum_above_the_layout_and_not_the_layout():
    style = load_image(STYLES / "the_scream.jpg", 64)
    start = random_phase(style, torch.Generator().manual_seed(0))
    assert start.shape == style.shape and 0 <= start.min() and start.max() <= 1
    torch.testing.assert_close(start.mean(dim=(2, 3)), style.mean(dim=(2, 3)), atol=0.02, rtol=0)

    def band_energy(image):  # per channel, the power at LAYOUT_CYCLES to 16 cycles per image
        power = torch.fft.rfft2(image - image.mean(dim=(2, 3), keepdim=True)).abs().pow(2)
        fy = torch.fft.fftfreq(image.shape[2]).abs().unsqueeze(1) * max(image.shape[-2:])
        fx = torch.fft.rfftfreq(image.shape[3]) * max(image.shape[-2:])
        cycles = torch.maximum(fy, fx)
        return power[..., (cycles >= LAYOUT_CYCLES) & (cycles < 16)].sum(-1), power[..., cycles < LAYOUT_CYCLES].sum(-1)

    detail, layout = band_energy(start)
    style_detail, style_layout = band_energy(periodic_component(style))
    torch.testing.assert_close(detail, style_detail, rtol=0.15, atol=0)  # clipping to [0, 1] loses a little
    assert (layout < 0.05 * style_layout).all()
    assert layout_copy(start, style) < COPY_THRESHOLD


def test_nan_loss_stops_with_a_clear_error(vgg):
    class Broken(Objective):
        def evaluate(self, images):
            total, parts = super().evaluate(images)
            return total * float("nan"), parts

    style = torch.rand(1, 3, 16, 16)
    objective = style_objective(vgg, style, ["relu1_1"])
    broken = Broken(vgg, {"style": (objective.terms["style"], 1.0)})
    with pytest.raises(NumericalError, match="loss became nan at step 1"):
        optimize_image(broken, torch.rand(1, 3, 16, 16), OptimizeConfig(steps=3, progress=False))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be > 0"),
        ({"optimizer": "sgd"}, "unknown optimizer"),
        ({"init": "zeros"}, "unknown init"),
        ({"lr": float("inf")}, "lr must be"),
        ({"tv_weight": -1.0}, "tv weight"),
        ({"first_step": 0.0}, "first step must be"),
    ],
)
def test_bad_engine_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        OptimizeConfig(**kwargs)


def test_the_engine_leaves_torch_optimisers_as_it_found_them():
    """The start-up shortcut (no torch._dynamo import inside the engine) is undone when the engine returns."""
    from torch.optim import Optimizer

    from stylediff.nst.optimize import _DYNAMO_GUARDED, _without_dynamo_import

    wrapped = [getattr(vars(Optimizer)[name], "__wrapped__", None) for name in _DYNAMO_GUARDED]
    before = [hasattr(f, "__dynamo_disable") for f in wrapped if f is not None]
    with _without_dynamo_import():
        x = torch.zeros(3, requires_grad=True)
        optimizer = torch.optim.LBFGS([x], max_iter=1)
        optimizer.zero_grad()
    assert [hasattr(f, "__dynamo_disable") for f in wrapped if f is not None] == before
