"""Distances between an output image and its references, for the workflow's metrics step.

Each metric is a :class:`Metric` registered in :data:`METRICS` by name, with the kinds of output it
scores, the columns it writes, whether higher is better and its label; the tables, figures and
findings read names and labels from here. What each kind of output is compared with:

============  =====================  =================  ==============================================
kind          ``reference``          ``baseline``       metrics
============  =====================  =================  ==============================================
inversion     the inverted image     –                  feature error at the inverted layer, PSNR,
                                                        SSIM, LPIPS (to the reference)
texture       the style image        –                  style distances, layout_copy, LPIPS to the
                                                        style (a copy indicator, not a style measure)
transfer      the style image        the content image  style distances, layout_copy (of the style);
                                                        content error, LPIPS, PSNR, SSIM (to the content)
guidance      the style image        unguided sample    style distances, layout_copy; LPIPS, PSNR, SSIM
                                     (same seed)        (to the unguided sample); realism (with a
                                                        reference set of unguided samples)
============  =====================  =================  ==============================================

Every style loss of :data:`stylediff.losses.STYLE_LOSSES` is also a metric: each output is graded at
relu1_1 … relu5_1 by every loss, not only the one it was optimised with (normalised as in
:class:`~stylediff.losses.StyleTerm`; a stochastic loss is reseeded before each image, so the metric
is deterministic). The plain Gram distance ‖G(x) − G(s)‖_F / ‖G(s)‖_F is reported too. The style is
read at the size the run used (``--style-size`` or ``--size`` in the output's sidecar).

LPIPS uses torchmetrics with torchvision's ImageNet backbones (VGG16, AlexNet) found by
:mod:`stylediff.backbones` (torchvision's cache or stylediff's own, under ``$TORCH_HOME``);
``lpips="auto"`` computes it when the files are there (downloading them when online, with a timeout)
and otherwise skips it with one line saying so; ``"true"`` fails fast without them; never random weights. Images whose shorter side is below 64 px are upsampled to 64 px for LPIPS.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .backbones import backbone_path, ensure_backbone, torchvision_hub
from .errors import ConfigError, WeightsError
from .images import load_image, resize
from .io import read_json
from .layers import CONTENT_LAYER_GATYS, STYLE_LAYERS_GATYS, check_layers
from .layout_copy import layout_copy
from .losses import STYLE_LOSSES, StyleTerm, gram_matrix
from .plan import EXPERIMENTS
from .report.tables import TIMING_LABELS
from .registry import Registry
from .vgg import load_vgg19

KINDS = tuple(dict.fromkeys(spec.kind for spec in EXPERIMENTS.values()))
"""What an output can be scored as: the experiments' metrics kinds."""
METRIC_LAYERS = STYLE_LAYERS_GATYS
"""The layers every style distance is reported at (and averaged over)."""
METRIC_SEED = 0
"""Seed a stochastic style loss restarts from before each image."""
LPIPS_NETS = ("vgg", "alex")
LPIPS_MIN_SIDE = 64
LPIPS_SETTINGS = ("auto", "true", "false")
PIXEL_TARGET = {"inversion": "reference", "texture": "style", "transfer": "baseline", "guidance": "baseline"}
"""What the pixel metrics (LPIPS, PSNR, SSIM) compare an output with, per kind."""
METRICS = Registry("metric", ConfigError)


# ------------------------------------------------------------------------------------ helpers
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


def _image_features(vgg, images: torch.Tensor) -> torch.Tensor:
    """Realism features: per-channel mean and std of relu3_1 and relu4_1 at 64 px, concatenated."""
    images = resize(images, (64, 64))
    feats = vgg(images, ["relu3_1", "relu4_1"])
    parts = []
    for name in ("relu3_1", "relu4_1"):
        flat = feats[name].flatten(2)
        parts += [flat.mean(2), flat.std(2)]
    return torch.cat(parts, dim=1)


# ------------------------------------------------------------------------------------ scoring
@dataclass
class Item:
    """One output and what it is compared with (tensors on the scorer's device, (1, 3, H, W) in [0, 1])."""

    kind: str
    image: torch.Tensor
    config: dict
    reference_path: str
    baseline_path: str | None = None
    reference_size: int | None = None
    reference_set: str | None = None
    """A batch sidecar of the model's own unguided samples (``stylediff sample --seeds …``), for realism."""
    _cache: dict = field(default_factory=dict)

    def _read(self, key: str, path: str, size: int) -> torch.Tensor:
        if (key, size) not in self._cache:
            self._cache[(key, size)] = load_image(path, size).to(self.image.device)
        return self._cache[(key, size)]

    @property
    def side(self) -> int:
        return max(self.image.shape[-2:])

    def style(self) -> torch.Tensor:
        """The style image at the size the run used."""
        size = self.reference_size
        for key in ("style_size", "size"):
            size = size or (int(self.config[key]) if self.config.get(key) else None)
        return self._read("reference", self.reference_path, size or self.side)

    def reference(self) -> torch.Tensor:
        return self._read("reference", self.reference_path, self.reference_size or self.side)

    def baseline(self) -> torch.Tensor:
        return self._read("baseline", self.baseline_path, self.side)

    def pixel_target(self) -> torch.Tensor:
        return {"reference": self.reference, "style": self.style, "baseline": self.baseline}[PIXEL_TARGET[self.kind]]()


class Metric:
    """A measurement of one output; ``compute`` returns ``{column: value}``."""

    name: str = ""
    label: str = ""
    kinds: tuple[str, ...] = KINDS
    higher_is_better: bool = False

    def columns(self) -> list[str]:
        return [self.name]

    def compute(self, scorer: "Scorer", item: Item) -> dict[str, float]:
        raise NotImplementedError


@METRICS.register
class StyleDistances(Metric):
    """The Gram distance and every style loss's normalised distance at relu1_1…relu5_1, and their means."""

    name = "style"
    label = "Gram distance (mean relu1–5_1)"
    kinds = ("texture", "transfer", "guidance")

    def columns(self) -> list[str]:
        names = [f"gram_dist_{layer}" for layer in METRIC_LAYERS] + ["gram_dist_mean"]
        for loss in STYLE_LOSSES:
            names += [f"{loss}_{layer}" for layer in METRIC_LAYERS] + [f"{loss}_mean"]
        return names

    def compute(self, scorer, item):
        style = item.style()
        return scorer.style_distances(item.image, style, (item.reference_path, tuple(style.shape[-2:])))


@METRICS.register
class LayoutCopy(Metric):
    """:func:`layout_copy` of the output against the style image (1 = a copy of its layout)."""

    name = "layout_copy"
    label = "layout copy (0 texture – 1 copy)"
    kinds = ("texture", "transfer", "guidance")

    def compute(self, scorer, item):
        return {self.name: layout_copy(item.image, item.style())}


@METRICS.register
class LPIPS(Metric):
    """LPIPS (VGG16 and AlexNet backbones) to the pixel target; for textures, to the style image: a
    copy indicator (lowest for a copy), not a measure of style."""

    name = "lpips"
    label = "LPIPS"

    def columns(self) -> list[str]:
        return [f"lpips_{net}" for net in LPIPS_NETS]

    def compute(self, scorer, item):
        return scorer.lpips_distances(item.image, item.pixel_target()) if scorer.lpips_on else {}


@METRICS.register
class PSNR(Metric):
    name = "psnr"
    label = "PSNR (dB)"
    kinds = ("inversion", "transfer", "guidance")
    higher_is_better = True

    def compute(self, scorer, item):
        from torchmetrics.functional.image import peak_signal_noise_ratio

        target = resize(item.pixel_target(), item.image.shape[-2:]).clamp(0, 1)
        return {self.name: peak_signal_noise_ratio(item.image, target, data_range=1.0).item()}


@METRICS.register
class SSIM(Metric):
    name = "ssim"
    label = "SSIM"
    kinds = ("inversion", "transfer", "guidance")
    higher_is_better = True

    def compute(self, scorer, item):
        from torchmetrics.functional.image import structural_similarity_index_measure

        target = resize(item.pixel_target(), item.image.shape[-2:]).clamp(0, 1)
        return {self.name: structural_similarity_index_measure(item.image, target, data_range=1.0).item()}


@METRICS.register
class FeatureError(Metric):
    """‖Φ(x) − Φ(x₀)‖ / ‖Φ(x₀)‖ at the inverted layer, with the pooling the run inverted."""

    name = "feature_error"
    label = "‖Φ(x)−Φ(x₀)‖ / ‖Φ(x₀)‖"
    kinds = ("inversion",)

    def compute(self, scorer, item):
        layer = item.config.get("layer")
        if layer is None:
            raise ConfigError(f"the sidecar of the output has no config.layer: cannot tell which layer it inverts")
        return {self.name: scorer.feature_error(item.image, item.reference(), layer, item.config.get("pooling"))}


@METRICS.register
class ContentError(Metric):
    """The feature error to the content image at the run's content layer."""

    name = "content_error"
    label = "content feature error"
    kinds = ("transfer",)

    def compute(self, scorer, item):
        layer = item.config.get("content_layer") or CONTENT_LAYER_GATYS
        return {self.name: scorer.feature_error(item.image, item.baseline(), layer)}


@METRICS.register
class Realism(Metric):
    """Cosine distance, in VGG-19 relu3_1/relu4_1 mean-and-std feature space at 64 px, from a sample to
    its nearest neighbour in a reference set of the model's own unguided samples (other seeds): how far
    guidance took the sample from what the model draws. Lower is more like the model's samples."""

    name = "realism"
    label = "distance to the model's samples"
    kinds = ("guidance",)

    @torch.no_grad()
    def compute(self, scorer, item):
        if item.reference_set is None:
            return {}
        feature = F.normalize(_image_features(scorer.vgg, item.image), dim=1)
        return {self.name: (1 - feature @ scorer.reference_features(item.reference_set).T).min().item()}


def column_label(column: str) -> str:
    """The label of a metric column (``lpips_vgg`` -> ``LPIPS (vgg)``), from the metric that writes it."""
    if column == "gram_dist_mean":
        return StyleDistances.label
    for loss in STYLE_LOSSES:
        if column == f"{loss}_mean":
            return loss
    for metric in METRICS.values():
        if column == metric.name:
            return metric.label
        if column in metric().columns():
            return f"{metric.label} ({column.rsplit('_', 1)[-1]})"
    return TIMING_LABELS.get(column, column)


def higher_is_better(column: str) -> bool:
    return any(metric.higher_is_better and column in metric().columns() for metric in METRICS.values())


@dataclass
class Scorer:
    """Holds the networks (VGG-19, LPIPS) for a batch of metric computations; load once, score many."""

    weights: str = "caffe"
    pooling: str = "max"
    device: str = "cpu"
    lpips: str | bool = "auto"

    def __post_init__(self):
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

    @torch.no_grad()
    def reference_features(self, batch_sidecar: str) -> torch.Tensor:
        """Unit realism features of the images a batch sidecar lists (cached per sidecar)."""
        if batch_sidecar not in self._reference_features:
            paths = [entry["path"] for entry in read_json(batch_sidecar).get("images") or []]
            if len(paths) < 2:
                raise ConfigError(f"{batch_sidecar} lists {len(paths)} images: a reference set needs several "
                                  "(`stylediff sample --seeds …` writes one)")
            images = torch.cat([load_image(path) for path in paths]).to(self.device)
            self._reference_features[batch_sidecar] = F.normalize(_image_features(self.vgg, images), dim=1)
        return self._reference_features[batch_sidecar]

    @property
    def lpips_on(self) -> bool:
        return self.lpips_skipped is None

    def lpips_net(self, net: str):
        if net not in self._lpips:
            if net not in LPIPS_NETS:
                raise ConfigError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            with torchvision_hub({net: ensure_backbone(net)}):  # torchvision reads the file stylediff found
                metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
            metric = metric.to(self.device)
            metric.eval()
            self._lpips[net] = metric
        return self._lpips[net]

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"vgg19": self.vgg.provenance()}
        out["lpips"] = ({net: str(backbone_path(net)) for net in LPIPS_NETS} if self.lpips_on
                        else {"skipped": self.lpips_skipped})
        if self._reference_features:
            out["realism_reference_sets"] = {path: len(f) for path, f in self._reference_features.items()}
        return out

    @torch.no_grad()
    def lpips_distances(self, image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        reference = resize(reference, image.shape[-2:]).clamp(0, 1)
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
        reference = resize(reference, image.shape[-2:])
        vgg = self.vgg if pooling in (None, self.pooling) else load_vgg19(self.weights, pooling, self.device)
        feats = vgg(torch.cat([image, reference]), [layer])[layer]
        return relative_error(feats[:1], feats[1:])

    @torch.no_grad()
    def style_distances(self, image: torch.Tensor, style: torch.Tensor, key: tuple | None = None) -> dict[str, float]:
        """Gram distance and every style loss's normalised distance at relu1_1…relu5_1, and their means;
        ``key`` names the style for the cache of its features and targets (None: nothing is cached)."""
        layers = list(METRIC_LAYERS)
        features = self.vgg(image, layers)
        # the style (often at twice the output's size) goes through VGG once per job, not once per output
        out = gram_distances(features, self._cached(key, "features", lambda: self.vgg(style, layers)), layers)
        for loss in STYLE_LOSSES:
            term = self._cached(key, loss, lambda: StyleTerm(self.vgg, style, layers, loss,
                                                             layer_weights=[1.0] * len(layers)))
            term.loss.reseed(METRIC_SEED)  # a stochastic loss: the same draws for every image
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


def _timing(sidecar: dict) -> dict[str, float]:
    timing = {k: v for k, v in (sidecar.get("timing") or {}).items() if isinstance(v, (int, float))}
    seconds = [v for k, v in timing.items() if k.endswith("_seconds")]
    if seconds:
        timing["wall_seconds"] = float(sum(seconds))
    evaluations = ((sidecar.get("guidance") or {}).get("evaluations") or {})
    if evaluations:
        timing["unet_evaluations"] = evaluations.get("unet_forward", 0) + evaluations.get("unet_backward", 0)
        timing["objective_evaluations"] = (evaluations.get("objective_forward", 0)
                                           + evaluations.get("objective_backward", 0))
    return timing


def image_metrics(scorer: Scorer, kind: str, image_path: str | os.PathLike, reference_path: str | os.PathLike,
                  baseline_path: str | os.PathLike | None = None, reference_size: int | None = None,
                  reference_set: str | os.PathLike | None = None) -> dict[str, Any]:
    """Every registered metric of ``kind`` for one output; returns the document ``stylediff metrics`` writes."""
    if kind not in KINDS:
        raise ConfigError(f"unknown metrics kind {kind!r}; choose one of {', '.join(KINDS)}")
    if PIXEL_TARGET[kind] == "baseline" and baseline_path is None:
        raise ConfigError(f"--kind {kind} needs --baseline (the "
                          f"{'content image' if kind == 'transfer' else 'unguided sample'})")
    start = time.perf_counter()
    image_path = Path(image_path)
    sidecar_file = image_path.with_suffix(".json")
    sidecar = read_json(sidecar_file) if sidecar_file.is_file() else {}
    config = sidecar.get("config") or {}
    device = next(scorer.vgg.parameters()).device
    item = Item(kind=kind, image=load_image(image_path).to(device), config=config,
                reference_path=str(reference_path), baseline_path=None if baseline_path is None else str(baseline_path),
                reference_size=reference_size, reference_set=None if reference_set is None else str(reference_set))
    metrics: dict[str, float] = {}
    for metric in METRICS.values():
        if kind in metric.kinds:
            metrics.update(metric().compute(scorer, item))
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
        "pixel_reference": str(baseline_path if PIXEL_TARGET[kind] == "baseline" else reference_path),
        "shape": list(item.image.shape[-2:]),
        "metrics": metrics,
        "timing": _timing(sidecar),
        "final_loss": final_loss,
        "run": {"command": sidecar.get("command"), "config": config, "device": sidecar.get("device"),
                "weights": sidecar.get("weights")},
        "metric_seconds": time.perf_counter() - start,
    }
