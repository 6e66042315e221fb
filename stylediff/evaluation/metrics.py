"""The metric registry: each measurement of an output (a :class:`Metric`) named once in :data:`METRICS`.

Each metric states the kinds of output it scores, the columns it writes, whether higher is better and its
label.

The tables, figures and findings read names and labels from here; the distances themselves are
computed by :class:`stylediff.evaluation.scorer.Scorer`. What each kind of output is compared with:

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
                                                        reference set of unguided samples); CLIP text
                                                        score (to the run's prompt, when it has one)
============  =====================  =================  ==============================================

The style is read at the size the run used (``--style-size`` or ``--size`` in the output's sidecar).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError
from ..core.images import load_image, resize
from ..core.provenance import TIMING_LABELS
from ..core.registry import Registry
from ..networks.vgg19_layers import CONTENT_LAYER_GATYS
from ..nst.losses import STYLE_LOSSES
from ..workflow.experiments import METRIC_KINDS
from .heldout import COLUMNS as HELDOUT_COLUMNS
from .heldout import HELDOUT
from .layout_copy import layout_copy
from .lpips import LPIPS_NETS
from .scorer import METRIC_LAYERS, Scorer, realism_features
from .text_score import COLUMN as TEXT_COLUMN

PIXEL_TARGET = {"inversion": "reference", "texture": "style", "transfer": "baseline", "guidance": "baseline"}
"""What the pixel metrics (LPIPS, PSNR, SSIM) compare an output with, per kind."""
METRICS = Registry("metric", ConfigError)


@dataclass
class Item:
    """One output and what it is compared with (tensors on the scorer's device, (1, 3, H, W) in [0, 1]).

    Args:
        kind: the output's kind (inversion, texture, transfer, guidance).
        image: the output.
        config: its sidecar's ``config``.
        reference_path: the style image (or the inverted image, for inversion).
        baseline_path: the content image (transfer) or the unguided sample (guidance).
        reference_size: the longest side the reference is read at (default: the run's, else the output's).
        reference_set: a batch sidecar of the model's own unguided samples, for realism.
    """

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
        """The output's longest side."""
        return max(self.image.shape[-2:])

    def style(self) -> torch.Tensor:
        """The style image at the size the run used."""
        size = self.reference_size
        for key in ("style_size", "size"):
            size = size or (int(self.config[key]) if self.config.get(key) else None)
        return self._read("reference", self.reference_path, size or self.side)

    def reference(self) -> torch.Tensor:
        """The reference image at ``reference_size`` (default: the output's side)."""
        return self._read("reference", self.reference_path, self.reference_size or self.side)

    def baseline(self) -> torch.Tensor:
        """The baseline image at the output's side."""
        return self._read("baseline", self.baseline_path, self.side)

    def pixel_target(self) -> torch.Tensor:
        """What the pixel metrics compare the output with, for its kind (:data:`PIXEL_TARGET`)."""
        return {"reference": self.reference, "style": self.style, "baseline": self.baseline}[PIXEL_TARGET[self.kind]]()


class Metric:
    """A measurement of one output; ``compute`` returns ``{column: value}``."""

    name: str = ""
    label: str = ""
    kinds: tuple[str, ...] = METRIC_KINDS
    higher_is_better: bool = False

    def columns(self) -> list[str]:
        """The columns :meth:`compute` can write (default: the metric's name)."""
        return [self.name]

    def compute(self, scorer: Scorer, item: Item) -> dict[str, float]:
        """Measure one output.

        Args:
            scorer: the networks that grade.
            item: the output and what it is compared with.

        Returns:
            ``{column: value}``; empty where the metric does not apply (no weights, no reference set).
        """
        raise NotImplementedError


@METRICS.register
class StyleDistances(Metric):
    """The Gram distance and every style loss's normalised distance at relu1_1…relu5_1, and their means."""

    name = "style"
    label = "Gram distance (mean relu1–5_1)"
    kinds = ("texture", "transfer", "guidance")

    def columns(self) -> list[str]:
        """``gram_dist_<layer>`` and ``<loss>_<layer>`` at each metric layer, and their ``_mean``."""
        names = [f"gram_dist_{layer}" for layer in METRIC_LAYERS] + ["gram_dist_mean"]
        for loss in STYLE_LOSSES:
            names += [f"{loss}_{layer}" for layer in METRIC_LAYERS] + [f"{loss}_mean"]
        return names

    def compute(self, scorer, item):
        """The distances of the output to the style image at the size the run used."""
        style = item.style()
        return scorer.style_distances(item.image, style, (item.reference_path, tuple(style.shape[-2:])))


@METRICS.register
class LayoutCopy(Metric):
    """:func:`layout_copy` of the output against the style image (1 = a copy of its layout)."""

    name = "layout_copy"
    label = "layout copy (0 texture – 1 copy)"
    kinds = ("texture", "transfer", "guidance")

    def compute(self, scorer, item):
        """:func:`layout_copy` of the output against the style image."""
        return {self.name: layout_copy(item.image, item.style())}


@METRICS.register
class HeldOutStyle(Metric):
    """The style distance on feature networks the run did not optimise (:mod:`stylediff.evaluation.heldout`).

    VGG-16 and AlexNet Gram, CLIP ViT-B/32 Gram, CSD cosine, each where its weights are present.
    """

    name = "heldout"
    label = "held-out style distance"
    kinds = ("texture", "transfer", "guidance")

    def columns(self) -> list[str]:
        """One column per held-out distance."""
        return [metric.column for metric in HELDOUT]

    def compute(self, scorer, item):
        """The held-out distances whose weights are present (none on the network the run optimised)."""
        style = item.style()
        return scorer.held_out.distances(
            item.image, style, item.config.get("network"), (item.reference_path, tuple(style.shape[-2:]))
        )


@METRICS.register
class LPIPS(Metric):
    """LPIPS (VGG16 and AlexNet backbones) to the pixel target.

    For textures, to the style image: a copy indicator (lowest for a copy), not a measure of style.
    """

    name = "lpips"
    label = "LPIPS"

    def columns(self) -> list[str]:
        """``lpips_vgg`` and ``lpips_alex``."""
        return [f"lpips_{net}" for net in LPIPS_NETS]

    def compute(self, scorer, item):
        """LPIPS to the pixel target; nothing when the scorer runs without LPIPS (backbones absent)."""
        return scorer.lpips_distances(item.image, item.pixel_target()) if scorer.lpips_on else {}


class PixelMetric(Metric):
    """A torchmetrics image metric of the output and its pixel target (resized to the output's shape)."""

    kinds = ("inversion", "transfer", "guidance")
    higher_is_better = True
    function = ""
    """Its function's name in ``torchmetrics.functional.image``."""

    def compute(self, scorer, item):
        """The metric of the output and its pixel target, resized to the output's shape and clamped to [0, 1]."""
        import torchmetrics.functional.image as functional

        target = resize(item.pixel_target(), item.image.shape[-2:]).clamp(0, 1)
        return {self.name: getattr(functional, self.function)(item.image, target, data_range=1.0).item()}


@METRICS.register
class PSNR(PixelMetric):
    """Peak signal-to-noise ratio (dB) to the pixel target."""

    name = "psnr"
    label = "PSNR (dB)"
    function = "peak_signal_noise_ratio"


@METRICS.register
class SSIM(PixelMetric):
    """Structural similarity to the pixel target."""

    name = "ssim"
    label = "SSIM"
    function = "structural_similarity_index_measure"


@METRICS.register
class FeatureError(Metric):
    """‖Φ(x) − Φ(x₀)‖ / ‖Φ(x₀)‖ at the inverted layer, with the pooling the run inverted."""

    name = "feature_error"
    label = "‖Φ(x)−Φ(x₀)‖ / ‖Φ(x₀)‖"
    kinds = ("inversion",)

    def compute(self, scorer, item):
        """The relative feature error at the sidecar's ``config.layer``.

        Raises:
            ConfigError: the sidecar names no layer.
        """
        layer = item.config.get("layer")
        if layer is None:
            raise ConfigError("the sidecar of the output has no config.layer: cannot tell which layer it inverts")
        return {self.name: scorer.feature_error(item.image, item.reference(), layer, item.config.get("pooling"))}


@METRICS.register
class ContentError(Metric):
    """The feature error to the content image at the run's content layer."""

    name = "content_error"
    label = "content feature error"
    kinds = ("transfer",)

    def compute(self, scorer, item):
        """The relative feature error to the content image at ``config.content_layer`` (default relu4_2)."""
        layer = item.config.get("content_layer") or CONTENT_LAYER_GATYS
        return {self.name: scorer.feature_error(item.image, item.baseline(), layer)}


@METRICS.register
class Realism(Metric):
    """How far guidance took a sample from what the model draws (lower: more like the model's samples).

    Cosine distance, in VGG-19 relu3_1/relu4_1 mean-and-std feature space at 64 px, from a sample to its
    nearest neighbour in a reference set of the model's own unguided samples (other seeds).
    """

    name = "realism"
    label = "distance to the model's samples"
    kinds = ("guidance",)

    @torch.no_grad()
    def compute(self, scorer, item):
        """The nearest-neighbour distance; nothing without a reference set."""
        if item.reference_set is None:
            return {}
        feature = F.normalize(realism_features(scorer.vgg, item.image), dim=1)
        return {self.name: (1 - feature @ scorer.reference_features(item.reference_set).T).min().item()}


@METRICS.register
class CLIPTextScore(Metric):
    """TFG's CLIP text score (:mod:`stylediff.evaluation.text_score`).

    max(100 · cos, 0) of the CLIP ViT-B/32 embeddings of the output and of its run's prompt
    (``config.prompt``); no value for a run without one.
    """

    name = TEXT_COLUMN
    label = "CLIP text score (ViT-B/32)"
    kinds = ("guidance",)
    higher_is_better = True

    def compute(self, scorer, item):
        """The score against the sidecar's prompt (nothing without one, or without CLIP's weights)."""
        return scorer.clip_text.scores(item.image, item.config.get("prompt"))


def column_label(column: str) -> str:
    """The label of a metric column (``lpips_vgg`` -> ``LPIPS (vgg)``), from the metric that writes it.

    Args:
        column: a metric, timing or ``final_loss`` column.

    Returns:
        Its label; the column itself when no metric writes it.
    """
    if column == "gram_dist_mean":
        return StyleDistances.label
    if column == "final_loss":  # written by the verb, not by a metric: the loss the run optimised
        return "guidance loss (as the run recorded it)"
    if column in HELDOUT_COLUMNS:
        return HELDOUT_COLUMNS[column].label
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
    """Whether a larger value of ``column`` is better (PSNR, SSIM, the CLIP text score).

    Every other metric column is a distance. ``stylediff metrics`` lists these columns in each document for
    the torch-free report.

    Args:
        column: a metric column.

    Returns:
        True for the columns of a metric with ``higher_is_better``.
    """
    return any(metric.higher_is_better and column in metric().columns() for metric in METRICS.values())
