"""Held-out style metrics: the style distance of an output on feature networks its run did not optimise.

A run guided or optimised by VGG-19 Gram is, by construction, good at VGG-19 Gram; a reviewer asks what
another network sees. Each :class:`HeldOutMetric` writes one column:

=========================  =================  ===============================================================
column                     network            distance to the style image
=========================  =================  ===============================================================
``heldout_vgg16_gram``     ``vgg16``          ‖G(x) − G(s)‖_F / (‖G(x)‖_F + ‖G(s)‖_F), mean over relu1_2, relu2_2, relu3_3,
                                              relu4_3 (torchvision ImageNet weights, offline via
                                              ``stylediff weights fetch``)
``heldout_alexnet_gram``   ``alexnet``        the same over relu1 … relu5
``heldout_clip_b32_gram``  ``clip-vit-b32``   the same at hidden2 (CLS dropped): TFG's style score network
                                              (Gram of CLIP ViT-B/32 tokens at ``hidden_states[2]``,
                                              ``tasks/networks/style_CLIP.py``), as a relative distance
                                              instead of TFG's raw −‖G − Gₛ‖_F/100 (unsquared,
                                              ``evaluations/image.py``), so styles compare
``heldout_csd``            ``csd``            1 − cos of the CSD style embeddings (Somepalli et al. 2024)
=========================  =================  ===============================================================

Lower is closer to the style for every column; each lies in [0, 1]. An image (output or style) smaller
than a network's layers need (AlexNet relu5: 31 px) is upsampled to that size first, as LPIPS upsamples. The Gram columns are symmetric in
the two images, unlike the VGG-19 ``gram_dist`` (‖G(x) − G(s)‖/‖G(s)‖), which scores any blank image 1 and
another painting whose deep activations are stronger above it: with AlexNet at 64 px and *The Scream* as the
style, *The Starry Night* scored 1.76 and uniform noise 1.75 on that scale, 0.597 and 0.662 on this one. A column is left out for a run that optimised that very
network (``config.network`` of its sidecar; VGG-19 when absent), so every value is held out.
``setting="auto"`` computes each metric whose weights are present and skips the others, saying so in one
line for VGG-16 / AlexNet (as LPIPS does) and only in the provenance for the opt-in CLIP and CSD weights; ``"true"`` fails fast when one is absent; ``"false"`` computes none.
What each can and cannot see is measured in ``bench/heldout_calibration.py`` (docs/metrics-calibration.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from math import ceil
from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError, WeightsError
from ..networks import load_network, network_status
from ..nst.gram import gram_matrix

SETTINGS = ("auto", "true", "false")


@dataclass(frozen=True)
class HeldOutMetric:
    """One held-out style distance: its table column, network, statistic and label.

    Args:
        column: the table column it writes.
        network: the registered feature network it runs on.
        statistic: ``gram`` (bounded Gram distance over the network's style layers) or ``cosine`` (1 − cos).
        label: the tables' and figures' label.
        optional: skipped silently when absent.
    """

    column: str
    network: str
    statistic: str  # "gram" (bounded Gram distance over the network's style layers) or "cosine" (1 − cos)
    label: str
    optional: bool = False
    """Skipped silently when absent (recorded in the provenance): weights a normal install does not have."""


HELDOUT = (
    HeldOutMetric("heldout_vgg16_gram", "vgg16", "gram", "Gram distance, VGG-16 (held out)"),
    HeldOutMetric("heldout_alexnet_gram", "alexnet", "gram", "Gram distance, AlexNet (held out)"),
    HeldOutMetric(
        "heldout_clip_b32_gram",
        "clip-vit-b32",
        "gram",
        "Gram distance, CLIP ViT-B/32 hidden2 (held out)",
        optional=True,
    ),
    HeldOutMetric("heldout_csd", "csd", "cosine", "1 − CSD cosine (held out)", optional=True),
)
"""Every held-out metric, in the order of the tables' columns."""
COLUMNS = {metric.column: metric for metric in HELDOUT}


def gram_distance(features: torch.Tensor, style_features: torch.Tensor) -> torch.Tensor:
    """``‖G(x) − G(s)‖_F / (‖G(x)‖_F + ‖G(s)‖_F)`` per image, in [0, 1].

    Gram matrices normalised by C·H·W; 0 for equal statistics, 1 when either image has none.

    Args:
        features: ``(N, C, H, W)`` of the outputs.
        style_features: ``(1, C, H', W')`` of the style.

    Returns:
        ``(N,)``.
    """
    gram, target = gram_matrix(features), gram_matrix(style_features)
    total = gram.flatten(1).norm(dim=1) + target.flatten(1).norm(dim=1)
    return (gram - target).flatten(1).norm(dim=1) / total.clamp_min(1e-12)


def features_of(network, images: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """``network(images, layers)``, small images upsampled to what the layers need.

    Images whose shorter side is below the network's ``min_size`` are upsampled to it (bilinear, aspect
    kept), as LPIPS upsamples small images.

    Args:
        network: a feature network.
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        layers: the layers wanted.

    Returns:
        ``{layer: features}``.
    """
    need, side = network.min_size(layers), min(images.shape[-2:])
    if side < need:
        h, w = images.shape[-2:]
        images = F.interpolate(
            images, size=(ceil(h * need / side), ceil(w * need / side)), mode="bilinear", align_corners=False
        )
    return network(images, layers)


def distance(metric: HeldOutMetric, network, image: torch.Tensor, style_features: dict) -> torch.Tensor:
    """The metric's distance of ``image`` (N images) to the style whose features are ``style_features``.

    Args:
        metric: the held-out metric.
        network: its feature network.
        image: ``(N, 3, H, W)`` in ``[0, 1]``.
        style_features: ``{layer: features}`` of the style on the metric's layers.

    Returns:
        ``(N,)``: the mean bounded Gram distance over the layers, or 1 − cos of the embeddings.
    """
    layers = list(style_features)
    features = features_of(network, image, layers)
    if metric.statistic == "cosine":
        return 1 - (features[layers[0]].flatten(1) * style_features[layers[0]].flatten(1)).sum(1)
    return torch.stack([gram_distance(features[name], style_features[name]) for name in layers]).mean(0)


class HeldOut:
    """The held-out networks of a metrics job, loaded on first use, each style's features cached per key.

    Which are present is decided once; the skips are said in one line.

    Args:
        setting: ``auto`` (the metrics whose weights are present), ``true`` (all, or fail) or ``false``.
        device: where the networks run.
        metrics: the metrics to consider.

    Raises:
        ConfigError: an unknown setting.
        WeightsError: ``true`` with a network's weights absent.
    """

    def __init__(self, setting: str | bool = "auto", device: str = "cpu", metrics=HELDOUT):
        setting = {True: "true", False: "false"}.get(setting, setting)
        if setting not in SETTINGS:
            raise ConfigError(f"heldout must be one of {', '.join(SETTINGS)}, got {setting!r}")
        self.device, self.metrics, self.skipped = device, [], {}
        for metric in metrics if setting != "false" else ():
            reason = network_status(metric.network)
            if reason is None:
                self.metrics.append(metric)
                continue
            if setting == "true":
                raise WeightsError(f"held-out metric {metric.column} needs {reason}")
            self.skipped[metric.column] = reason
        said = {m.column: self.skipped[m.column] for m in metrics if m.column in self.skipped and not m.optional}
        if said:  # one line for all of them; optional ones (CLIP, CSD) only in the provenance
            print(
                "stylediff: held-out style metrics skipped: "
                + "; ".join(f"{column} ({reason})" for column, reason in said.items()),
                file=sys.stderr,
            )
        self._style: dict[tuple, dict] = {}

    def network(self, name: str):
        """The cached feature network ``name`` on the job's device."""
        return load_network(name, self.device)

    @torch.no_grad()
    def distances(
        self, image: torch.Tensor, style: torch.Tensor, optimised: str | None, key: tuple | None = None
    ) -> dict[str, float]:
        """``{column: distance}`` for every present metric whose network is not ``optimised``.

        Args:
            image: ``(1, 3, H, W)`` in ``[0, 1]``.
            style: the style image.
            optimised: the run's ``--network`` (None means VGG-19, which no held-out metric uses).
            key: names the style for the cache of its features (None: nothing is cached).

        Returns:
            ``{column: distance}``.
        """
        out = {}
        for metric in self.metrics:
            if metric.network == optimised:
                continue
            network = self.network(metric.network)
            cache = (key, metric.column)
            if key is None or cache not in self._style:
                layers = list(network.style_layers)
                self._style[cache] = features_of(network, style, layers)
            out[metric.column] = distance(metric, network, image, self._style[cache]).item()
        if key is None:
            self._style.clear()
        return out

    def provenance(self) -> dict[str, Any]:
        """Each present metric's network provenance, and each skipped one's reason."""
        out: dict[str, Any] = {m.column: load_network(m.network, self.device).provenance() for m in self.metrics}
        out.update({column: {"skipped": reason} for column, reason in self.skipped.items()})
        return out
