"""LPIPS through torchmetrics, on the ImageNet backbone files that :mod:`stylediff.weights.backbones` finds.

torchmetrics builds LPIPS' backbone with ``torchvision.models.vgg16/alexnet(weights=…)``, which reads
torchvision's own cache only (and downloads into it, without a timeout, when the file is missing).
:func:`lpips_metric` first finds the file itself (torchvision's cache or stylediff's own, downloaded with
a timeout when missing: :func:`stylediff.weights.backbones.ensure_backbone`) and shows torchvision that file, so
the metric never downloads anything and never runs with random weights.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from ..weights.backbones import ensure_backbone, torchvision_hub

LPIPS_NETS = ("vgg", "alex")


def lpips_metric(net: str, device: str = "cpu"):
    """The torchmetrics LPIPS metric, its backbone read from the file stylediff found.

    Args:
        net: ``alex`` or ``vgg``.
        device: where to put it.

    Returns:
        ``LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)`` in eval mode on ``device``.

    Raises:
        ConfigError: an unknown net.
        WeightsError: one line, when the backbone file is absent and cannot be downloaded.
    """
    if net not in LPIPS_NETS:
        raise ConfigError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    with torchvision_hub({net: ensure_backbone(net)}):
        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
    return metric.to(device).eval()


def lpips_to(target, net: str = "alex"):
    """A differentiable LPIPS of each image to ``target``, for objectives.

    Args:
        target: ``(1, 3, H, W)`` in ``[0, 1]``.
        net: ``alex`` or ``vgg``.

    Returns:
        ``images (N, 3, H, W) in [0, 1] -> (N,)``: the torchmetrics network itself, without the metric's
        accumulating state.

    Raises:
        ConfigError: an unknown net.
        WeightsError: the backbone file is absent.
    """
    metric = lpips_metric(net, str(target.device))

    def distance(images):
        return metric.net(images, target.to(images.dtype).expand_as(images), normalize=True).flatten()

    return distance
