"""What every feature network is to the losses and metrics: :class:`FeatureNetwork`.

A feature network is frozen (eval mode, no parameter gradients), takes RGB images in ``[0, 1]`` of any
size (it applies its own preprocessing) and returns the activations of named layers, shallow to deep.
Convolutional features are ``(N, C, H, W)``; the patch tokens of a vision transformer are returned as
``(N, C, T, 1)``, so every style statistic of :data:`stylediff.nst.losses.STYLE_LOSSES` (Gram, mean/std,
sliced Wasserstein, Gaussian W2) applies to them unchanged.

The networks :func:`stylediff.networks.load_network` returns are cached per process and shared
(``shared = True``): converting one would change every objective that uses it, so ``.to()`` on it
raises and :meth:`FeatureNetwork.variant` hands out the cached copy on another device or dtype.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..core.errors import ConfigError, LayerError


class FeatureNetwork(nn.Module):
    """Base class of the feature networks.

    Subclasses set ``name``, ``layers``, ``style_layers``, ``content_layer`` and implement :meth:`forward`,
    :meth:`provenance` and (when not every layer is reachable from a 1-px input) :meth:`min_size`.
    """

    name: str = ""
    layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    content_layer: str = ""
    shared = False
    """True for the process-wide cached networks of :func:`~stylediff.networks.load_network`."""

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def _apply(self, fn, *args, **kwargs):
        if self.shared:
            raise ConfigError(
                f"this {self.name} is the process-wide cached network that every objective shares; "
                "use load_network(name, device, dtype) or network.variant(device, dtype)"
            )
        return super()._apply(fn, *args, **kwargs)

    # --------------------------------------------------------------------------------- layers
    def check_layers(self, layers: str | list[str] | tuple[str, ...]) -> list[str]:
        """Parse a comma-separated string or list of layer names.

        Args:
            layers: ``"relu1_1,relu2_1"`` or a sequence of names.

        Returns:
            The names, in the order given.

        Raises:
            LayerError: no layer, or an unknown one (the message names the valid ones).
        """
        if isinstance(layers, str):
            layers = [name.strip() for name in layers.split(",") if name.strip()]
        layers = list(layers)
        if not layers:
            raise LayerError(f"no layer given: name at least one {self.name} layer, e.g. {self.style_layers[0]}")
        unknown = [name for name in layers if name not in self.layers]
        if unknown:
            raise LayerError(
                f"unknown {self.name} layer {', '.join(map(repr, unknown))}; valid layers: {', '.join(self.layers)}"
            )
        return layers

    def sort_layers(self, layers) -> list[str]:
        """``layers`` shallow to deep, each once.

        Args:
            layers: as for :meth:`check_layers`.

        Returns:
            The sorted names.
        """
        index = {name: i for i, name in enumerate(self.layers)}
        return sorted(set(self.check_layers(layers)), key=index.__getitem__)

    def min_size(self, layers) -> int:
        """Smallest image side for which every layer in ``layers`` still has at least one position.

        Args:
            layers: as for :meth:`check_layers`.

        Returns:
            The side in pixels (1 unless a subclass's pooling needs more).
        """
        self.check_layers(layers)
        return 1

    # ------------------------------------------------------------------------------- devices
    @property
    def _probe(self) -> torch.Tensor:
        """A parameter whose device and dtype are the network's."""
        return next(self.parameters())

    def variant(self, device: str | torch.device, dtype: torch.dtype) -> FeatureNetwork:
        """This network on ``device`` in ``dtype``.

        Args:
            device: the device wanted.
            dtype: the dtype wanted.

        Returns:
            Itself if it is already there, the cached copy of the same weights for a cached network, else
            a converted copy.
        """
        probe = self._probe
        if probe.device == torch.device(device) and probe.dtype == dtype:
            return self
        if self.shared:
            return self._cached_variant(device, dtype)
        return copy.deepcopy(self).to(device=device, dtype=dtype)

    def _cached_variant(self, device, dtype) -> FeatureNetwork:
        return self.loader(device=device, dtype=dtype)

    loader: Callable[..., FeatureNetwork] | None = None
    """How the process-wide cache loads the same weights elsewhere (set by ``load_network``)."""

    def provenance(self) -> dict:
        """What a sidecar records of the network: its name, weight files and their sha256."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """The activations of ``layers`` for ``images``.

        Args:
            images: ``(N, 3, H, W)`` RGB in ``[0, 1]``, any size (the network preprocesses them).
            layers: the layer names wanted.

        Returns:
            ``{layer: (N, C, H', W')}``; a transformer's tokens as ``(N, C, T, 1)``.
        """
        raise NotImplementedError


def tokens_as_maps(tokens: torch.Tensor) -> torch.Tensor:
    """``(N, T, C)`` transformer tokens as ``(N, C, T, 1)`` feature maps (channels first, like a conv layer).

    Args:
        tokens: ``(N, T, C)``.

    Returns:
        ``(N, C, T, 1)``, a view.
    """
    return tokens.transpose(1, 2).unsqueeze(-1)
