import pytest
import torch

from stylediff.core.errors import ConfigError, LossError
from stylediff.core.seeding import ImageStreams, drawing_from
from stylediff.nst.gram import gram_matrix
from stylediff.nst.losses import (
    STYLE_LOSSES,
    ContentTerm,
    GaussianW2Loss,
    Objective,
    SlicedWassersteinLoss,
    StyleTerm,
    content_loss,
    get_style_loss,
    sorted_rows,
    style_objective,
    total_variation,
)

LOSSES = sorted(STYLE_LOSSES)


def features(seed, shape=(1, 4, 5, 6), dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def distance(loss, x, y):
    return loss(x, loss.prepare_target(y))


@pytest.mark.parametrize("name", LOSSES)
def test_zero_against_itself_positive_against_other(name):
    loss = get_style_loss(name)
    x, y = features(0), features(1) * 2
    assert abs(distance(loss, x, x).item()) < 1e-3 * loss.magnitude(loss.prepare_target(x)).item()
    assert distance(loss, x, y).item() > 1e-3


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences(name):
    target = features(3, (1, 3, 4, 4), torch.float64) + 0.1
    x = (features(4, (1, 3, 4, 4), torch.float64) + 0.1).requires_grad_(True)

    def f(inp):
        loss = get_style_loss(name)
        with drawing_from(ImageStreams([0])):  # fresh streams: sliced_wasserstein draws the same directions
            return loss(inp, loss.prepare_target(target))

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["gram", "mean_std"])
def test_invariant_to_spatial_permutation(name):
    loss = get_style_loss(name)
    x, target = features(5, (1, 8, 6, 6)), features(6, (1, 8, 6, 6))
    perm = torch.randperm(36, generator=torch.Generator().manual_seed(0))
    shuffled = x.flatten(2)[:, :, perm].reshape(x.shape)
    rep = loss.prepare_target(target)
    torch.testing.assert_close(loss(x, rep), loss(shuffled, rep))


def test_gram_is_normalised_by_chw():
    x = torch.ones(1, 2, 3, 4)
    torch.testing.assert_close(gram_matrix(x), torch.ones(1, 2, 2) * 12 / 24)


def test_gaussian_w2_matches_the_one_dimensional_closed_form():
    a = torch.randn(1, 1, 50, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 1
    b = torch.randn(1, 1, 30, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5 - 1
    expected = (a.mean() - b.mean()) ** 2 + (a.std(unbiased=False) - b.std(unbiased=False)) ** 2
    torch.testing.assert_close(distance(GaussianW2Loss(eps=1e-8), a, b)[0], expected, rtol=1e-5, atol=1e-6)


def test_sliced_wasserstein_in_one_dimension_is_sorted_matching():
    a = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    b = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = (a.flatten().sort().values - b.flatten().sort().values).pow(2).mean()
    torch.testing.assert_close(distance(SlicedWassersteinLoss(), a, b)[0], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_sorted_rows_is_a_stable_torch_sort_with_and_without_gradient(dtype):
    values = torch.randn(2, 3, 500, generator=torch.Generator().manual_seed(0)).to(dtype)
    values[..., ::7] = 0  # exact ties, as ReLU features give
    values[..., 1::7] = -0.0  # tied with +0.0
    expected = values.sort(dim=-1, stable=True).values
    assert torch.equal(sorted_rows(values), expected)  # no gradient: numpy's sort for float32/64
    leaf = values.clone().requires_grad_(True)
    weights = torch.linspace(-1, 1, 500).to(dtype)
    (sorted_rows(leaf) * weights).sum().backward()
    reference = values.clone().requires_grad_(True)
    (reference.sort(dim=-1, stable=True).values * weights).sum().backward()
    assert torch.equal(leaf.grad, reference.grad)  # the gradient follows the stable order of ties
    unstable = values.clone().requires_grad_(True)
    (unstable.sort(dim=-1).values * weights).sum().backward()
    untied = (values.unsqueeze(-1) == values.unsqueeze(-2)).sum(-1) == 1
    assert torch.equal(leaf.grad[untied], unstable.grad[untied])  # torch.sort's, but for the ties' order
    assert torch.equal(leaf.grad[~untied].sort().values, unstable.grad[~untied].sort().values)


def test_sliced_wasserstein_redraws_directions_and_follows_the_streams_seeds():
    x, y = features(7, (1, 16, 4, 4)), features(8, (1, 16, 4, 4))
    loss = SlicedWassersteinLoss()
    target = loss.prepare_target(y)
    with drawing_from(ImageStreams([3])):
        a1, a2 = loss(x, target), loss(x, target)
    with drawing_from(ImageStreams([3])):
        b1 = SlicedWassersteinLoss()(x, target)
    with drawing_from(ImageStreams([4])):
        c1 = loss(x, target)
    assert a1.item() != a2.item()  # new projections at every call
    assert a1.item() == b1.item()  # same seed, same sequence
    assert a1.item() != c1.item()  # another seed, other projections
    torch.manual_seed(5)
    d1 = loss(x, target)
    torch.manual_seed(5)
    assert loss(x, target).item() == d1.item()  # outside any streams: torch's global generator


@pytest.mark.parametrize("gradient", [False, True])
def test_sliced_wasserstein_of_an_image_does_not_depend_on_its_batch(gradient):
    """Each image draws its own directions (and, with a gradient, its own sample of the larger target);
    rows beyond the images are Monte-Carlo tiles of them."""
    images = [features(s, (1, 16, 4, 4)).requires_grad_(gradient) for s in (10, 11, 12)]
    loss = SlicedWassersteinLoss()
    target = loss.prepare_target(features(13, (1, 16, 6, 6)))
    alone = []
    for seed, image in zip((5, 6, 7), images):
        with drawing_from(ImageStreams([seed])):
            alone.append(loss(image, target))
    with drawing_from(ImageStreams([5, 6, 7])):
        batch = loss(torch.cat(images), target)
    with drawing_from(ImageStreams([5, 6, 7])):
        tiled = loss(torch.cat(images * 2), target)
    torch.testing.assert_close(batch, torch.cat(alone))
    torch.testing.assert_close(tiled, torch.cat(alone * 2))
    assert len(set(batch.tolist())) == 3
    with drawing_from(ImageStreams([5, 6])), pytest.raises(ConfigError, match="not whole tiles of the 2 images"):
        loss(torch.cat(images), target)


def test_sliced_wasserstein_compares_different_sizes():
    loss = SlicedWassersteinLoss()
    x, y = features(9, (1, 4, 4, 4)), features(9, (1, 4, 8, 8))
    assert loss(x, loss.prepare_target(y)).shape == (1,)


def test_sliced_wasserstein_target_samples_interleave_and_the_small_target_repeats():
    """A target of r·P pixels is r samples of P: every r-th pixel. In one dimension (one direction, ±1)
    the loss is then the mean of the sorted matchings against each sample; a target smaller than the
    output has its sorted values repeated, as the reference code repeats the example's activations."""
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randn(1, 1, 8, 6, generator=torch.Generator().manual_seed(1))  # 48 = 3 x 16 pixels
    flat = y.flatten()
    expected = torch.stack([(x.flatten().sort().values - flat[j::3].sort().values).pow(2).mean() for j in range(3)])
    loss = SlicedWassersteinLoss()
    with torch.no_grad():
        torch.testing.assert_close(distance(loss, x, y)[0], expected.mean())
    leaf = x.clone().requires_grad_(True)
    draws = {round(distance(loss, leaf, y)[0].item(), 5) for _ in range(40)}  # one sample per call
    assert draws == {round(v, 5) for v in expected.tolist()}
    small = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    repeated = small.flatten().sort().values.repeat_interleave(4)
    torch.testing.assert_close(distance(loss, x, small)[0], (x.flatten().sort().values - repeated).pow(2).mean())


def test_sliced_wasserstein_one_target_sample_has_the_expectation_of_all(vgg):
    """With a gradient each call compares with one of the larger target's samples: over calls with the
    same directions (the sample is drawn from a stream of its own) the mean equals the no-gradient
    loss, which compares with every sample, within the Monte-Carlo error of the draws; on VGG-19
    features of a painting against another read at twice the size (4 samples per layer)."""
    from stylediff.core.images import load_image

    from .conftest import STYLES

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    with torch.no_grad():
        image = vgg(load_image(STYLES / "the_scream.jpg", 32), layers)
        style = vgg(load_image(STYLES / "starry_night.jpg", 64), layers)
    loss, calls = SlicedWassersteinLoss(), 50
    for layer in layers:
        target = loss.prepare_target(style[layer])
        leaf = image[layer].clone().requires_grad_(True)
        with drawing_from(ImageStreams([0])):
            every = torch.cat([loss(image[layer], target) for _ in range(calls)])
        with drawing_from(ImageStreams([0])):
            one = torch.cat([loss(leaf, target).detach() for _ in range(calls)])
        difference = one - every
        assert difference.abs().max() > 0  # the calls did compare with single samples
        assert difference.mean().abs() < 4 * difference.std() / calls**0.5, layer
        assert difference.mean().abs() < every.std() / 4, layer  # and well within one call's own spread


@pytest.mark.parametrize("name", LOSSES)
def test_losses_are_per_image(name):
    loss = get_style_loss(name)
    batch = torch.cat([features(0), features(1)])
    target = loss.prepare_target(features(0))
    values = loss(batch, target)
    assert values.shape == (2,) and values[0] < values[1]


def test_unknown_loss_lists_valid_names():
    with pytest.raises(LossError, match="valid losses: gram, mean_std"):
        get_style_loss("perceptual")


def test_content_loss_and_tv():
    x = features(0)
    assert content_loss(x, x).item() == 0 and content_loss(x, x + 1).item() == pytest.approx(1.0)
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert total_variation(flat).item() == 0
    assert total_variation(features(1, (1, 3, 8, 8))).item() > 0


def test_style_target_is_computed_once(vgg, monkeypatch):
    style = torch.rand(1, 3, 32, 32)
    objective = style_objective(vgg, style, "relu1_1,relu3_1", "gram")
    calls = []
    original = type(vgg).forward
    monkeypatch.setattr(
        type(vgg), "forward", lambda self, x, layers: calls.append(x.shape) or original(self, x, layers)
    )
    for _ in range(3):
        objective(torch.rand(2, 3, 32, 32))
    assert len(calls) == 3 and all(shape[0] == 2 for shape in calls)  # one forward per call, never the style


@pytest.mark.parametrize("name", LOSSES)
def test_style_objective_is_zero_on_the_style_and_normalised(vgg, name):
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    objective = style_objective(vgg, style, "relu1_1,relu2_1,relu3_1", name)
    assert objective(style).abs().item() < 1e-3
    black = objective(torch.zeros(1, 3, 32, 32)).item()
    assert 0.05 < black < 20  # normalised per layer: an all-dark image is of order one away


def test_transfer_objective_runs_vgg_once_for_all_terms(vgg, monkeypatch):
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    objective = Objective(
        vgg,
        {
            "content": (ContentTerm(vgg, content, ["relu4_2"]), 1.0),
            "style": (StyleTerm(vgg, style, "relu1_1,relu5_1"), 10.0),
        },
        tv_weight=0.1,
    )
    calls = []
    original = type(vgg).forward
    monkeypatch.setattr(
        type(vgg), "forward", lambda self, x, layers: calls.append(list(layers)) or original(self, x, layers)
    )
    total, parts = objective.evaluate(content)
    assert calls == [["relu1_1", "relu4_2", "relu5_1"]]
    assert set(parts) == {"content", "style", "tv"} and parts["content"].item() == 0
    torch.testing.assert_close(total, parts["content"] + 10 * parts["style"] + 0.1 * parts["tv"])


def test_bad_weights_are_refused(vgg):
    style = torch.rand(1, 3, 16, 16)
    with pytest.raises(ConfigError, match="2 layer weights given for 1 layers"):
        StyleTerm(vgg, style, "relu1_1", layer_weights=[1, 2])
    with pytest.raises(ConfigError, match="finite"):
        StyleTerm(vgg, style, "relu1_1", layer_weights=[float("nan")])
    with pytest.raises(ConfigError, match="finite"):
        Objective(vgg, {"style": (StyleTerm(vgg, style, "relu1_1"), float("inf"))})


@pytest.mark.parametrize("loss", LOSSES)
def test_objective_moves_its_targets_and_never_the_shared_network(vgg, loss):
    """Targets and scales are buffers: `.to(float64)` moves every one; the process-wide VGG-19 stays
    float32 (the objective switches to the cached float64 copy), and converting the shared network
    itself is refused."""
    from stylediff.networks.vgg19 import load_vgg19

    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    objective = style_objective(vgg, style, ["relu1_1", "relu2_1"], loss)
    term = objective.terms["style"]
    held = [term.scale(layer) for layer in term.layers]
    for layer in term.layers:
        target = term.target(layer)
        held += list(target) if isinstance(target, tuple) else [target]
    buffers = [b for _, b in objective.named_buffers()]
    assert held and all(any(part is b for b in buffers) for part in held)  # every target and scale is a buffer
    objective.to(torch.float64)
    assert all(b.dtype == torch.float64 for b in objective.buffers())
    assert load_vgg19().convs["conv1_1"].weight.dtype == torch.float32  # the shared one is untouched
    assert objective.network.convs["conv1_1"].weight.dtype == torch.float64
    with pytest.raises(ConfigError, match="process-wide cached network"):
        vgg.to(torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss", LOSSES)
def test_objective_to_a_dtype_works_for_every_loss(vgg, loss, dtype):
    """`.to(dtype)` gives the same loss in that dtype (`.to(float32)` of a float32 objective changes
    nothing), and back to float32 the very values of before: gaussian_w2's float64 parts stay float64."""
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    objective = style_objective(vgg, style, ["relu1_1", "relu2_1"], loss)

    def value(images):
        with drawing_from(ImageStreams([4, 5])):  # sliced_wasserstein: the same projections each time
            return objective(images)

    before = value(image)
    after = value(image.to(dtype)) if objective.to(dtype) is objective else None
    assert after.dtype == dtype
    if dtype == torch.float32:
        assert torch.equal(after, before)
    else:
        torch.testing.assert_close(after.float(), before, rtol=1e-4, atol=1e-6)
    objective.to(torch.float32)
    assert torch.equal(value(image), before)
    kept = [b for name, b in objective.named_buffers() if b.dtype == torch.float64]
    assert len(kept) == len(get_style_loss(loss).float64_parts) * 2  # what the loss keeps in float64, per layer


def test_gram_matrix_backward_is_the_exact_gradient():
    """The one-product backward of the Gram matrix (symmetry) against autograd's numerical check."""
    from stylediff.nst.gram import gram_matrix

    features = torch.randn(2, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (features,))
    flat = features.reshape(2, 6, 20)
    assert torch.allclose(gram_matrix(features), flat @ flat.transpose(1, 2) / 120)
