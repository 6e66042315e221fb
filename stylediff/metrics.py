"""Distances between an output image and its reference, for the workflow's metrics step.

Every style loss in :data:`stylediff.losses.STYLE_LOSSES` is also a metric: each output is graded
at ``relu1_1 … relu5_1`` by every loss, not only the one it was optimised with (the same
``represent``/``compare`` pair, normalised by the target's magnitude as in
:class:`~stylediff.losses.StyleTerm`; ``sliced_wasserstein`` with a fixed seed, so the metric is
deterministic). The plain Gram distance ``‖G(x) − G(s)‖_F / ‖G(s)‖_F`` is reported too.

What each kind of output is compared with:

============  =====================  =================  =========================================
kind          ``reference``          ``baseline``       metrics
============  =====================  =================  =========================================
inversion     the inverted image     –                  feature error at the inverted layer,
                                                        PSNR, SSIM, LPIPS (to the reference)
texture       the style image        –                  style distances, LPIPS (to the style)
transfer      the style image        the content image  style distances; content feature error
                                                        at the content layer, LPIPS, PSNR, SSIM
                                                        (to the content)
guidance      the style image        unguided sample    style distances; LPIPS, PSNR, SSIM
                                     (scale 0)          (to the unguided sample)
============  =====================  =================  =========================================

LPIPS uses torchmetrics with the torchvision ImageNet backbones (VGG16 and AlexNet) from
``$TORCH_HOME/hub/checkpoints``; a missing file is a :class:`WeightsError` (LPIPS is never computed
with random weights). Images whose shorter side is below 64 px are upsampled bilinearly to 64 px
before LPIPS (AlexNet's strides need it). The reference is resized to the output's shape for the
pixel metrics; for the style distances it is read at the size the run used (``--style-size`` or
``--size`` in the output's sidecar, else the output's longest side).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import ConfigError, WeightsError
from .images import load_image
from .io import read_json
from .losses import STYLE_LOSSES, StyleTerm, get_style_loss, gram_matrix
from .vgg import CONTENT_LAYER_GATYS, STYLE_LAYERS_GATYS, check_layers, load_vgg19

KINDS = ("inversion", "texture", "transfer", "guidance")
METRIC_LAYERS = STYLE_LAYERS_GATYS
"""The layers every style distance is reported at (and averaged over)."""
SLICED_WASSERSTEIN_SEED = 0
LPIPS_NETS = ("vgg", "alex")
LPIPS_MIN_SIDE = 64
LPIPS_BACKBONES = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}
"""torchvision's IMAGENET1K_V1 files, which torchmetrics' LPIPS loads through ``torchvision.models``."""


def lpips_backbone_path(net: str) -> Path:
    """Where torchvision looks for (and would download) the LPIPS backbone ``net``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(LPIPS_BACKBONES[net])


def check_lpips_backbone(net: str) -> Path:
    """The backbone file's path, downloaded into ``$TORCH_HOME`` if it is missing and the network allows;
    WeightsError (one line, where to put it) otherwise. Never random weights."""
    if net not in LPIPS_BACKBONES:
        raise ConfigError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")
    path = lpips_backbone_path(net)
    if not path.is_file():
        try:
            torch.hub.load_state_dict_from_url(LPIPS_BACKBONES[net], progress=False)
        except Exception as exc:  # offline: URLError, timeouts, proxies
            raise WeightsError(
                f"LPIPS-{net} backbone not found at {path} and not downloadable ({type(exc).__name__}): "
                f"download {LPIPS_BACKBONES[net]} into {path.parent} "
                f"(or set TORCH_HOME to a folder whose hub/checkpoints has it)"
            ) from None
    return path


def resize_to(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return F.interpolate(image, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True)


def relative_error(x: torch.Tensor, target: torch.Tensor) -> float:
    """``‖x − target‖_F / ‖target‖_F``."""
    return ((x - target).norm() / target.norm().clamp_min(1e-12)).item()


def gram_distances(features: dict[str, torch.Tensor], style_features: dict[str, torch.Tensor],
                   layers=METRIC_LAYERS) -> dict[str, float]:
    """Relative Frobenius distance of Gram matrices per layer, plus their mean."""
    out = {f"gram_dist_{name}": relative_error(gram_matrix(features[name]), gram_matrix(style_features[name]))
           for name in layers}
    out["gram_dist_mean"] = sum(out.values()) / len(layers)
    return out


@dataclass
class Scorer:
    """Holds the networks (VGG-19, LPIPS) for a batch of metric computations; load once, score many."""

    weights: str = "caffe"
    pooling: str = "max"
    device: str = "cpu"
    lpips: bool = True

    def __post_init__(self):
        self.vgg = load_vgg19(self.weights, self.pooling, self.device)
        self._lpips: dict[str, Any] = {}
        self._style_terms: dict[tuple, StyleTerm] = {}
        if self.lpips:
            for net in LPIPS_NETS:  # fail before any work if a backbone is missing
                check_lpips_backbone(net)

    # ----------------------------------------------------------------- networks
    def lpips_net(self, net: str):
        if net not in self._lpips:
            check_lpips_backbone(net)
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True).to(self.device)
            metric.eval()
            self._lpips[net] = metric
        return self._lpips[net]

    def provenance(self) -> dict[str, Any]:
        info = self.vgg.info
        out = {"vgg19": {"source": info.source, "pooling": self.vgg.pooling, "path": info.path,
                         "sha256": info.sha256}}
        if self.lpips:
            out["lpips"] = {net: str(lpips_backbone_path(net)) for net in LPIPS_NETS}
        return out

    # ------------------------------------------------------------------ metrics
    @torch.no_grad()
    def pixel_metrics(self, image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        """PSNR, SSIM and LPIPS (vgg, alex) of ``image`` against ``reference`` resized to its shape."""
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        reference = resize_to(reference, image.shape[-2:]).clamp(0, 1)
        out = {
            "psnr": peak_signal_noise_ratio(image, reference, data_range=1.0).item(),
            "ssim": structural_similarity_index_measure(image, reference, data_range=1.0).item(),
        }
        if self.lpips:
            out.update(self.lpips_distances(image, reference))
        return out

    @torch.no_grad()
    def lpips_distances(self, image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        reference = resize_to(reference, image.shape[-2:]).clamp(0, 1)
        side = min(image.shape[-2:])
        if side < LPIPS_MIN_SIDE:
            factor = LPIPS_MIN_SIDE / side
            shape = (round(image.shape[-2] * factor), round(image.shape[-1] * factor))
            image = F.interpolate(image, size=shape, mode="bilinear", align_corners=False)
            reference = F.interpolate(reference, size=shape, mode="bilinear", align_corners=False)
        return {f"lpips_{net}": self.lpips_net(net)(image.clamp(0, 1), reference.clamp(0, 1)).item()
                for net in LPIPS_NETS}

    @torch.no_grad()
    def feature_error(self, image: torch.Tensor, reference: torch.Tensor, layer: str,
                      pooling: str | None = None) -> float:
        """``‖Φ(x) − Φ(x₀)‖ / ‖Φ(x₀)‖`` at ``layer`` (reference resized to the image's shape), with
        the scorer's network or the same weights with another ``pooling`` (the one that was inverted)."""
        layer = check_layers([layer])[0]
        reference = resize_to(reference, image.shape[-2:])
        vgg = self.vgg if pooling in (None, self.pooling) else load_vgg19(self.weights, pooling, self.device)
        feats = vgg(torch.cat([image, reference]), [layer])[layer]
        return relative_error(feats[:1], feats[1:])

    def _style_term(self, key: tuple, style: torch.Tensor, loss: str) -> StyleTerm:
        if (key, loss) not in self._style_terms:
            self._style_terms[(key, loss)] = StyleTerm(self.vgg, style, list(METRIC_LAYERS), loss,
                                                       layer_weights=[1.0] * len(METRIC_LAYERS))
        term = self._style_terms[(key, loss)]
        if loss == "sliced_wasserstein":  # fresh generator: the same directions for every image
            term.loss = get_style_loss(loss, seed=SLICED_WASSERSTEIN_SEED)
        return term

    @torch.no_grad()
    def style_distances(self, image: torch.Tensor, style: torch.Tensor, style_key: tuple | None = None
                        ) -> dict[str, float]:
        """Gram distance and every style loss's normalised distance at relu1_1…relu5_1, and their means."""
        key = style_key if style_key is not None else (id(style),)
        layers = list(METRIC_LAYERS)
        features = self.vgg(image, layers)
        style_features = self.vgg(style, layers)
        out = gram_distances(features, style_features, layers)
        for loss in STYLE_LOSSES:
            per_layer = self._style_term(key, style, loss).layer_losses(features)[:, 0]
            for name, value in zip(layers, per_layer.tolist()):
                out[f"{loss}_{name}"] = value
            out[f"{loss}_mean"] = per_layer.mean().item()
        return out


def _style_size(config: dict, image: torch.Tensor) -> int:
    for key in ("style_size", "size"):
        if config.get(key):
            return int(config[key])
    return max(image.shape[-2:])


def _timing(sidecar: dict) -> dict[str, float]:
    timing = {k: v for k, v in (sidecar.get("timing") or {}).items() if isinstance(v, (int, float))}
    seconds = [v for k, v in timing.items() if k.endswith("_seconds")]
    if seconds:
        timing["wall_seconds"] = float(sum(seconds))
    return timing


def image_metrics(scorer: Scorer, kind: str, image_path: str | os.PathLike, reference_path: str | os.PathLike,
                  baseline_path: str | os.PathLike | None = None, reference_size: int | None = None
                  ) -> dict[str, Any]:
    """All metrics of one output for ``kind``; returns the document ``stylediff metrics`` writes."""
    if kind not in KINDS:
        raise ConfigError(f"unknown metrics kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind in ("transfer", "guidance") and baseline_path is None:
        raise ConfigError(f"--kind {kind} needs --baseline (the {'content image' if kind == 'transfer' else 'unguided sample'})")
    start = time.perf_counter()
    image_path = Path(image_path)
    sidecar_file = image_path.with_suffix(".json")
    sidecar = read_json(sidecar_file) if sidecar_file.is_file() else {}
    config = sidecar.get("config") or {}
    device = next(scorer.vgg.parameters()).device
    image = load_image(image_path).to(device)
    metrics: dict[str, float] = {}

    if kind == "inversion":
        reference = load_image(reference_path, reference_size or max(image.shape[-2:])).to(device)
        layer = config.get("layer")
        if layer is None:
            raise ConfigError(f"{sidecar_file} has no config.layer: cannot tell which layer {image_path} inverts")
        metrics["feature_error"] = scorer.feature_error(image, reference, layer, config.get("pooling"))
        metrics.update(scorer.pixel_metrics(image, reference))
        pixel_reference = reference_path
    else:
        size = reference_size or _style_size(config, image)
        style = load_image(reference_path, size).to(device)
        metrics.update(scorer.style_distances(image, style, (str(reference_path), size)))
        if kind == "texture":
            if scorer.lpips:
                metrics.update(scorer.lpips_distances(image, style))
            pixel_reference = reference_path
        else:
            baseline = load_image(baseline_path, max(image.shape[-2:])).to(device)
            if kind == "transfer":
                layer = config.get("content_layer") or CONTENT_LAYER_GATYS
                metrics["content_error"] = scorer.feature_error(image, baseline, layer)
            metrics.update(scorer.pixel_metrics(image, baseline))
            pixel_reference = baseline_path
    final = sidecar.get("final")
    if isinstance(final, dict):
        final_loss = final.get("loss")
    else:  # `stylediff sample`: one final style loss per image
        losses = sidecar.get("final_style_loss") or [None]
        final_loss = losses[0] if isinstance(losses, list) else losses
    return {
        "kind": kind,
        "image": str(image_path),
        "reference": str(reference_path),
        "baseline": None if baseline_path is None else str(baseline_path),
        "pixel_reference": str(pixel_reference),
        "shape": list(image.shape[-2:]),
        "metrics": metrics,
        "timing": _timing(sidecar),
        "final_loss": final_loss,
        "run": {"command": sidecar.get("command"), "config": config, "device": sidecar.get("device"),
                "weights": sidecar.get("weights")},
        "metric_seconds": time.perf_counter() - start,
    }
