"""The :class:`Scorer`: the networks that grade outputs, loaded once, and the distances computed with them.

The networks: VGG-19, LPIPS, the held-out networks, CLIP for the text score.

Every style loss of :data:`stylediff.nst.losses.STYLE_LOSSES` is also a distance: each output is graded at
relu1_1 … relu5_1 by every loss, not only the one it was optimised with (normalised as in
:class:`~stylediff.nst.losses.StyleTerm`; a loss that draws random numbers draws them from streams of one
fixed seed restarted before each image, so the distance is deterministic). The plain Gram distance
‖G(x) − G(s)‖_F / ‖G(s)‖_F is reported too.

LPIPS (torchmetrics, through :mod:`stylediff.evaluation.lpips`, on the backbones :mod:`stylediff.weights.backbones` finds):
``lpips="auto"`` computes it when the backbone files are there (downloading them when online, with a
timeout) and otherwise skips it with one line saying so; ``"true"`` fails fast without them; never random weights. Images whose shorter side is below 64 px
are upsampled to 64 px for LPIPS.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError, WeightsError
from ..core.images import load_image, resize
from ..core.io import read_json
from ..core.seeding import ImageStreams, drawing_from
from ..networks.vgg19 import load_vgg19
from ..networks.vgg19_layers import STYLE_LAYERS_GATYS, check_layers
from ..nst.gram import gram_matrix
from ..nst.losses import STYLE_LOSSES, StyleTerm
from ..weights.backbones import backbone_path, ensure_backbone
from .heldout import HeldOut
from .lpips import LPIPS_NETS, lpips_metric
from .text_score import TextScore

METRIC_LAYERS = STYLE_LAYERS_GATYS
"""The layers every style distance is reported at (and averaged over)."""
METRIC_SEED = 0
"""Seed of the random streams (:mod:`stylediff.core.seeding`) a style loss draws from, restarted per image."""
LPIPS_MIN_SIDE = 64
LPIPS_SETTINGS = ("auto", "true", "false")


def relative_error(x: torch.Tensor, target: torch.Tensor) -> float:
    """``‖x − target‖_F / ‖target‖_F``.

    Args:
        x: any tensor.
        target: a tensor of the same shape (its norm is clamped at 1e-12).

    Returns:
        The relative error as a float.
    """
    return ((x - target).norm() / target.norm().clamp_min(1e-12)).item()


def gram_distances(
    features: dict[str, torch.Tensor], style_features: dict[str, torch.Tensor], layers=METRIC_LAYERS
) -> dict[str, float]:
    """Relative Frobenius distance of Gram matrices per layer, plus their mean.

    Args:
        features: ``{layer: (1, C, H, W)}`` of the output.
        style_features: the same layers of the style image.
        layers: the layers to compare.

    Returns:
        ``{"gram_dist_<layer>": value, …, "gram_dist_mean": mean}``.
    """
    out = {
        f"gram_dist_{name}": relative_error(gram_matrix(features[name]), gram_matrix(style_features[name]))
        for name in layers
    }
    out["gram_dist_mean"] = sum(out.values()) / len(layers)
    return out


def realism_features(vgg, images: torch.Tensor) -> torch.Tensor:
    """Realism features: per-channel mean and std of relu3_1 and relu4_1 at 64 px, concatenated.

    Args:
        vgg: a VGG-19 feature network.
        images: ``(N, 3, H, W)`` in ``[0, 1]`` (resized to 64 × 64).

    Returns:
        ``(N, 1536)``.
    """
    images = resize(images, (64, 64))
    feats = vgg(images, ["relu3_1", "relu4_1"])
    parts = []
    for name in ("relu3_1", "relu4_1"):
        flat = feats[name].flatten(2)
        parts += [flat.mean(2), flat.std(2)]
    return torch.cat(parts, dim=1)


@dataclass
class Scorer:
    """Holds the networks (VGG-19, LPIPS, the held-out ones) for a batch of metric computations.

    Load once, score many.

    Args:
        weights: VGG-19 weight source (``caffe`` or ``torchvision``).
        pooling: VGG-19 pooling.
        device: where the networks run.
        lpips: ``auto`` (when the backbone files are there, else skipped with one line), ``true`` (fail
            without them) or ``false``.
        heldout: the held-out style networks: auto (those present), true (all, or fail), false.
        text_score: the CLIP text score of prompted runs: auto (when present), true, false.

    Raises:
        ConfigError: an unknown ``lpips`` setting.
        WeightsError: ``lpips="true"`` (or ``heldout``, ``text_score``) without the weights.
    """

    weights: str = "caffe"
    pooling: str = "max"
    device: str = "cpu"
    lpips: str | bool = "auto"
    heldout: str | bool = "auto"
    """Held-out style networks (:mod:`stylediff.evaluation.heldout`): auto (those present), true (all, or fail), false."""
    text_score: str | bool = "auto"
    """The CLIP text score of prompted runs (:mod:`stylediff.evaluation.text_score`): auto (when present), true, false."""

    def __post_init__(self):
        """Load VGG-19 and decide, once, which of LPIPS, the held-out networks and the text score run."""
        self.lpips = {True: "true", False: "false"}.get(self.lpips, self.lpips)
        if self.lpips not in LPIPS_SETTINGS:
            raise ConfigError(f"lpips must be one of {', '.join(LPIPS_SETTINGS)}, got {self.lpips!r}")
        self.vgg = load_vgg19(self.weights, self.pooling, self.device)
        self._lpips: dict[str, Any] = {}
        self._style_cache: dict[tuple, Any] = {}
        """{(style key, "features" or a loss name): the style's VGG features or its StyleTerm}."""
        self.lpips_skipped: str | None = None
        if self.lpips == "false":
            self.lpips_skipped = "switched off (lpips: false)"
        else:
            try:
                for net in LPIPS_NETS:  # fail (or decide to skip) before any work
                    ensure_backbone(net)
            except WeightsError as exc:
                if self.lpips == "true":
                    raise
                self.lpips_skipped = str(exc)
                print(f"stylediff: LPIPS skipped: {exc}", file=sys.stderr)
        self._reference_features: dict[str, torch.Tensor] = {}
        self.held_out = HeldOut(self.heldout, self.device)
        self.clip_text = TextScore(self.text_score, self.device)

    @torch.no_grad()
    def reference_features(self, batch_sidecar: str) -> torch.Tensor:
        """Unit realism features of the images a batch sidecar lists (cached per sidecar).

        Args:
            batch_sidecar: the JSON sidecar of a ``stylediff sample --seeds …`` batch.

        Returns:
            ``(K, 1536)`` unit rows.

        Raises:
            ConfigError: the sidecar lists fewer than two images.
        """
        if batch_sidecar not in self._reference_features:
            paths = [entry["path"] for entry in read_json(batch_sidecar).get("images") or []]
            if len(paths) < 2:
                raise ConfigError(
                    f"{batch_sidecar} lists {len(paths)} images: a reference set needs several "
                    "(`stylediff sample --seeds …` writes one)"
                )
            images = torch.cat([load_image(path) for path in paths]).to(self.device)
            self._reference_features[batch_sidecar] = F.normalize(realism_features(self.vgg, images), dim=1)
        return self._reference_features[batch_sidecar]

    @property
    def lpips_on(self) -> bool:
        """Whether LPIPS is computed (not switched off or skipped)."""
        return self.lpips_skipped is None

    def lpips_net(self, net: str):
        """The LPIPS metric of backbone ``net`` (``alex`` or ``vgg``), loaded at first use."""
        if net not in self._lpips:
            self._lpips[net] = lpips_metric(net, self.device)
        return self._lpips[net]

    def provenance(self) -> dict[str, Any]:
        """What the metrics documents record of the grading networks (files, or why one was skipped)."""
        out: dict[str, Any] = {"vgg19": self.vgg.provenance()}
        out["lpips"] = (
            {net: str(backbone_path(net)) for net in LPIPS_NETS} if self.lpips_on else {"skipped": self.lpips_skipped}
        )
        out["heldout"] = self.held_out.provenance()
        out["clip_text_score"] = self.clip_text.provenance()
        if self._reference_features:
            out["realism_reference_sets"] = {path: len(f) for path, f in self._reference_features.items()}
        return out

    @torch.no_grad()
    def lpips_distances(self, image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        """LPIPS of ``image`` to ``reference`` with both backbones.

        Args:
            image: ``(1, 3, H, W)`` in ``[0, 1]``.
            reference: resized to the image's shape; both upsampled to a 64 px shorter side when smaller.

        Returns:
            ``{"lpips_vgg": value, "lpips_alex": value}``.
        """
        reference = resize(reference, image.shape[-2:]).clamp(0, 1)
        side = min(image.shape[-2:])
        if side < LPIPS_MIN_SIDE:
            factor = LPIPS_MIN_SIDE / side
            shape = (round(image.shape[-2] * factor), round(image.shape[-1] * factor))
            image = F.interpolate(image, size=shape, mode="bilinear", align_corners=False)
            reference = F.interpolate(reference, size=shape, mode="bilinear", align_corners=False)
        return {
            f"lpips_{net}": self.lpips_net(net)(image.clamp(0, 1), reference.clamp(0, 1)).item() for net in LPIPS_NETS
        }

    @torch.no_grad()
    def feature_error(
        self, image: torch.Tensor, reference: torch.Tensor, layer: str, pooling: str | None = None
    ) -> float:
        """``‖Φ(x) − Φ(x₀)‖ / ‖Φ(x₀)‖`` at ``layer``.

        Args:
            image: ``(1, 3, H, W)`` in ``[0, 1]``.
            reference: resized to the image's shape.
            layer: a VGG-19 layer.
            pooling: the pooling that was inverted (None: the scorer's).

        Returns:
            The relative feature error.
        """
        layer = check_layers([layer])[0]
        reference = resize(reference, image.shape[-2:])
        vgg = self.vgg if pooling in (None, self.pooling) else load_vgg19(self.weights, pooling, self.device)
        feats = vgg(torch.cat([image, reference]), [layer])[layer]
        return relative_error(feats[:1], feats[1:])

    @torch.no_grad()
    def style_distances(self, image: torch.Tensor, style: torch.Tensor, key: tuple | None = None) -> dict[str, float]:
        """Gram distance and every style loss's normalised distance at relu1_1…relu5_1, and their means.

        Args:
            image: ``(1, 3, H, W)`` in ``[0, 1]``.
            style: the style image.
            key: names the style for the cache of its features and targets (None: nothing is cached).

        Returns:
            ``gram_dist_<layer>``, ``<loss>_<layer>`` and their ``_mean`` columns.
        """
        layers = list(METRIC_LAYERS)
        features = self.vgg(image, layers)
        # the style (often at twice the output's size) goes through VGG once per job, not once per output
        out = gram_distances(features, self._cached(key, "features", lambda: self.vgg(style, layers)), layers)
        for loss in STYLE_LOSSES:
            term = self._cached(
                key, loss, lambda loss=loss: StyleTerm(self.vgg, style, layers, loss, layer_weights=[1.0] * len(layers))
            )
            with drawing_from(ImageStreams([METRIC_SEED])):  # the same random draws for every image
                per_layer = term.layer_losses(features)[:, 0]
            for name, value in zip(layers, per_layer.tolist()):
                out[f"{loss}_{name}"] = value
            out[f"{loss}_mean"] = per_layer.mean().item()
        return out

    def _cached(self, key: tuple | None, what: str, make: Callable[[], Any]) -> Any:
        if key is None:
            return make()
        if (key, what) not in self._style_cache:
            self._style_cache[(key, what)] = make()
        return self._style_cache[(key, what)]
