"""Style and content losses on the features of any feature network (:mod:`stylediff.networks`; VGG-19 by default).

Each style loss is a small module with one job, split in two so that the style image is
processed once: ``represent(features)`` turns a ``(N, C, H, W)`` activation into statistics and
``compare(rep, target)`` returns one distance per image, shape ``(N,)``. The same pair is the
optimisation objective, the diffusion guidance loss and a metric.

``magnitude(target)`` is the distance of an all-zero activation to the target. Dividing by it
(``normalize=True`` in :class:`StyleTerm`) makes every layer's loss scale-free, so layers with
large activations do not drown the others and one weight means the same across losses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import ConfigError, LossError
from ..core.registry import Registry
from ..core.seeding import active_streams
from ..networks.base import FeatureNetwork
from .gram import gram_matrix, self_product

Representation = Any
STYLE_LOSSES = Registry("style loss", LossError, plural="losses")
"""Every style loss by name: ``@STYLE_LOSSES.register`` on the class is all it takes to add one (the
CLI, the metrics and the report follow; ``tests/test_registries.py`` names the schema and docs lines to add)."""


class StyleLoss(nn.Module):
    """A style distance between two activations, computed through their statistics."""

    name: str = ""
    float64_parts: tuple[int, ...] = ()
    """Indices of the target's parts that stay float64 whatever dtype the term is moved to."""

    def represent(self, features: torch.Tensor) -> Representation:
        raise NotImplementedError

    def prepare_target(self, features: torch.Tensor) -> Representation:
        """Representation of the style target; losses may precompute more here than in ``represent``."""
        return self.represent(features)

    def compare(self, rep: Representation, target: Representation) -> torch.Tensor:
        raise NotImplementedError

    def magnitude(self, target: Representation) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, target: Representation) -> torch.Tensor:
        return self.compare(self.represent(features), target)


@STYLE_LOSSES.register
class GramLoss(StyleLoss):
    """Gatys et al. 2015: mean squared difference of Gram matrices."""

    name = "gram"

    def represent(self, features):
        return gram_matrix(features)

    def compare(self, rep, target):
        return (rep - target).pow(2).mean(dim=(1, 2))

    def magnitude(self, target):
        return target.pow(2).mean()


@STYLE_LOSSES.register
class MeanStdLoss(StyleLoss):
    """Per-channel mean and standard deviation (AdaIN / BN statistics; Li et al. 2017)."""

    name = "mean_std"

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def represent(self, features):
        flat = features.flatten(2)
        mean = flat.mean(dim=2)
        std = (flat.var(dim=2, unbiased=False) + self.eps).sqrt()
        return mean, std

    def compare(self, rep, target):
        return (rep[0] - target[0]).pow(2).mean(dim=1) + (rep[1] - target[1]).pow(2).mean(dim=1)

    def magnitude(self, target):
        return target[0].pow(2).mean() + target[1].pow(2).mean()


_NUMPY_SORTS = (torch.float32, torch.float64)


def _argsort_float32(values: np.ndarray) -> np.ndarray:
    """The stable ascending order of each row of a float32 array, as int64 indices.

    Each value's bits become an integer of the same order (the magnitude's bits, negated for a
    negative float, so that -0.0 ties with +0.0 as in torch.sort), shifted to the high half of an int64
    whose low half is the value's index, and numpy's SIMD sort (x86-simd-sort) sorts those: ties keep
    their index order. On the 2-core AVX2 machine,
    1 thread, this took 64 ms for 64 rows of 65,536 values where ``torch.sort`` took 325 ms and
    ``np.argsort`` 153 ms (``bench/loss_floor.py`` measures what the loss's step costs)."""
    bits = values.view(np.int32)
    sign = bits >> 31  # 0 or -1
    packed = (((bits & np.int32(0x7FFFFFFF)) ^ sign) - sign).astype(np.int64) << 32
    packed |= np.arange(values.shape[-1], dtype=np.int64)
    packed.sort(axis=-1)
    packed &= 0xFFFFFFFF
    return packed


class _SortedRows(torch.autograd.Function):
    """Rows sorted by :func:`_argsort_float32`, with torch.sort's backward (the gradient scattered back
    through the permutation)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        order = torch.from_numpy(_argsort_float32(values.detach().contiguous().numpy()))
        ctx.save_for_backward(order)
        return values.gather(-1, order)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (order,) = ctx.saved_tensors
        return torch.zeros_like(grad).scatter_(-1, order, grad)


def sorted_rows(values: torch.Tensor) -> torch.Tensor:
    """``values`` sorted along the last axis, differentiable.

    On the CPU numpy sorts: a tensor that needs no gradient (float32 or float64) by ``np.sort``
    (3 ms for 64 rows of 9,216 values where ``torch.sort`` took 44 ms), a float32 one that needs a
    gradient by :func:`_argsort_float32` (5× faster than ``torch.sort``), whose backward scatters the
    gradient through the permutation as torch.sort's does. Sorted values do not depend on the
    algorithm; the permutation does among exactly tied values (float32 projections of a few thousand
    pixels tie by chance): numpy keeps them in index order, which is ``torch.sort(stable=True)``'s
    permutation (which the other dtypes and devices use), and the CPU's default ``torch.sort`` does not. The sorted matching is not
    differentiable at a tie, and either assignment of the tied values' gradients is a gradient of it;
    trajectories that pass a tie differ in the last bits."""
    if values.device.type != "cpu" or values.dtype not in _NUMPY_SORTS:
        return values.sort(dim=-1, stable=True).values
    if not (values.requires_grad and torch.is_grad_enabled()):
        return torch.from_numpy(np.sort(values.detach().numpy(), axis=-1))
    if values.dtype == torch.float32:
        return _SortedRows.apply(values)
    return values.sort(dim=-1, stable=True).values


@STYLE_LOSSES.register
class SlicedWassersteinLoss(StyleLoss):
    """Heitz et al. CVPR 2021: project features on random unit directions, sort, compare.

    Directions are redrawn at every call, so over an optimisation the loss matches the whole feature
    distribution, not a fixed set of marginals. Inside :func:`stylediff.core.seeding.drawing_from` each
    image draws its own directions from its ``sliced_wasserstein`` stream (the sampler, the
    optimisation engine and the metrics set one up from the run's seeds), so an image's directions
    follow its seed and not the batch it is in; outside, one set per call comes from torch's global
    generator (``torch.manual_seed``), as dropout's masks do. Directions are drawn in float32 on the
    CPU, so they do not depend on the device or dtype.

    A target with more pixels than the output (the style read at twice the output's size has four
    times as many) is split into ``r = ⌊Pt/P⌋`` interleaved samples of the output's count P, sample
    ``j`` holding pixel ``⌊(k·r + j)·Pt/(r·P)⌋`` for ``k < P`` (every r-th pixel in raster order when
    Pt = r·P), and the loss is the mean distance to them. With a gradient, each call compares with one
    sample, drawn per image (its ``sliced_wasserstein_pixels`` stream) or per call: the same expected
    loss and gradient, for ``1/r`` of the target's projections and sorts (``tests/test_losses.py``
    checks the expectation; ``bench/loss_floor.py`` measures the cost).
    Without a gradient (the metrics, the engine's final score) every sample is compared. The
    reference code (``texture_optimization_slicing.py`` of tchambon/A-Sliced-Wasserstein-Loss-for-
    Neural-Texture-Synthesis) only has targets of at most the output's size; a smaller target's
    sorted projections are repeated to the output's count (nearest rank), as its ``repeat`` does for an
    output a whole multiple larger.
    """

    name = "sliced_wasserstein"

    def __init__(self, num_projections: int | None = None):
        super().__init__()
        if num_projections is not None and num_projections <= 0:
            raise LossError(f"sliced_wasserstein needs num_projections > 0, got {num_projections}")
        self.num_projections = num_projections

    def _directions(self, rows: int, channels: int, device, dtype) -> torch.Tensor:
        """Unit directions ``(D, C, K)``: D = 1 (shared by the batch) or one set per image."""
        shape = (channels, self.num_projections or channels)
        streams = active_streams()
        if streams is None:
            dirs = torch.randn((1, *shape))
        else:
            streams.check_tiles(rows)
            dirs = streams.normal(shape, self.name)
        dirs = dirs.to(device=device, dtype=dtype)
        return dirs / dirs.norm(dim=1, keepdim=True)

    def _sample(self, samples: int, sets: int) -> torch.Tensor:
        """Which of the target's ``samples`` interleaved samples each of the ``sets`` direction sets compares with."""
        streams = active_streams()
        if streams is None:
            return torch.randint(samples, (sets,))
        uniform = torch.special.ndtr(streams.normal((1,), f"{self.name}_pixels"))[:, 0]  # (N,)
        return (uniform * samples).long().clamp_max(samples - 1)

    def represent(self, features):
        return features.flatten(2)  # (N, C, HW): projections are drawn at compare time

    def compare(self, rep, target):
        dirs = self._directions(rep.shape[0], rep.shape[1], rep.device, rep.dtype).transpose(1, 2)  # (D, K, C)
        sets, pixels, target_pixels = dirs.shape[0], rep.shape[2], target.shape[2]
        # rows as (tiles, D): row j is projected on the directions of image j mod D
        proj = sorted_rows(dirs @ rep.unflatten(0, (-1, sets)))  # (T, D, K, P)
        if target_pixels > pixels:
            samples = target_pixels // pixels
            k, j = torch.arange(pixels), torch.arange(samples).unsqueeze(1)
            columns = ((k * samples + j) * target_pixels // (samples * pixels)).to(target.device)  # (r, P)
            if rep.requires_grad and torch.is_grad_enabled():  # one sample per image
                columns = columns[self._sample(samples, sets)].unsqueeze(1).expand(-1, target.shape[1], -1)
                proj_t = sorted_rows(dirs @ target.expand(sets, -1, -1).gather(2, columns)).unsqueeze(0)
            else:  # every sample: (r, D, K, P)
                proj_t = sorted_rows((dirs @ target)[..., columns]).permute(2, 0, 1, 3)
        else:
            proj_t = sorted_rows(dirs @ target)  # (D, K, Pt): the style target once per image
            if target_pixels < pixels:
                proj_t = nn.functional.interpolate(proj_t, size=pixels, mode="nearest")
            proj_t = proj_t.unsqueeze(0)
        return (proj.unsqueeze(1) - proj_t).pow(2).mean(dim=(1, 3, 4)).flatten()

    def magnitude(self, target):
        return target.pow(2).mean()  # E over unit directions of the projected second moment


@STYLE_LOSSES.register
class GaussianW2Loss(StyleLoss):
    """Wasserstein-2 distance between Gaussian fits (mean, covariance) of the two activations,
    divided by the channel count:  (‖μ−μₜ‖² + tr Σ + tr Σₜ − 2 tr (Σₜ^½ Σ Σₜ^½)^½) / C.

    With Σ = X Xᵀ/P for the centred features X (C × P pixels), Σₜ^½ Σ Σₜ^½ = Y Yᵀ with
    Y = Σₜ^½ X/√P, so the trace term is the nuclear norm of Y: the square roots of the eigenvalues
    of whichever of Y Yᵀ (C × C) and Yᵀ Y (P × P) is smaller. Deep layers at small sizes have far
    fewer pixels than channels, which makes this much cheaper than a C × C matrix square root.
    Σₜ^½ is taken once per target (:meth:`prepare_target`, one batched eigendecomposition). Where
    C ≤ P, Y Yᵀ is formed as Σₜ^½ Σ Σₜ^½ from Σ (one C × P product forward and one backward, with
    :func:`~stylediff.nst.gram.self_product`) instead of through Y (five such products with autograd's
    backward; ``bench/loss_floor.py`` measures the loss's own cost against a VGG-19 pass).
    Each square root is taken of λ + δ with the bias at zero removed (√(λ+δ) − √δ), δ following the
    target's scale, so the gradient stays finite at zero or repeated eigenvalues. The second-order
    terms are computed in float64: in float32 the distance of near-equal fits is lost to rounding.
    """

    name = "gaussian_w2"
    float64_parts = (1, 2, 3)  # trace, Σₜ^½ and δ: `.to(float32)` leaves them, the arithmetic stays float64

    def __init__(self, eps: float = 1e-4):
        super().__init__()
        self.eps = eps

    def represent(self, features):
        flat = features.flatten(2)
        mean = flat.mean(dim=2)
        scaled = (flat - mean.unsqueeze(2)).double() / math.sqrt(flat.shape[2])  # X / √P
        return mean, scaled

    def prepare_target(self, features):
        mean, scaled = self.represent(features)
        cov = scaled @ scaled.transpose(1, 2)
        evals, evecs = torch.linalg.eigh(cov)
        sqrt_cov = evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.transpose(1, 2)
        trace = torch.diagonal(cov, dim1=1, dim2=2).sum(1)
        delta = (self.eps * trace.mean() / cov.shape[1]).pow(2).clamp_min(1e-30)
        return mean, trace, sqrt_cov, delta

    def compare(self, rep, target):
        mean, scaled = rep
        mean_t, trace_t, sqrt_t, delta = target
        if scaled.shape[1] <= scaled.shape[2]:  # C ≤ P: Σₜ^½ Σ Σₜ^½, C × C
            cov = self_product(scaled)
            gram = sqrt_t @ cov @ sqrt_t
            trace = torch.diagonal(cov, dim1=1, dim2=2).sum(dim=1)
        else:  # Yᵀ Y, P × P
            y = sqrt_t @ scaled
            gram = y.transpose(1, 2) @ y
            trace = scaled.pow(2).sum(dim=(1, 2))
        evals = torch.linalg.eigvalsh(gram)
        trace_sqrt = ((evals.clamp_min(0) + delta).sqrt() - delta.sqrt()).sum(dim=1)
        trace = trace + trace_t
        w2 = (mean - mean_t).pow(2).sum(dim=1) + (trace - 2 * trace_sqrt).to(mean.dtype)
        return w2 / mean.shape[1]

    def magnitude(self, target):
        mean_t, trace_t = target[0], target[1]
        return (mean_t.pow(2).sum() + trace_t.sum().to(mean_t.dtype)) / mean_t.shape[1]


def get_style_loss(name: str, **kwargs) -> StyleLoss:
    """Instantiate a registered style loss by name; LossError lists the valid names."""
    return STYLE_LOSSES.lookup(name)(**kwargs)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature reconstruction error, mean squared over C·H·W: ``(N,)``."""
    return (features - target).pow(2).mean(dim=(1, 2, 3))


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (anisotropic TV², smooth everywhere): ``(N,)``."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))


def _parse_weights(layers: list[str], weights) -> list[float]:
    if weights is None:
        return [1.0 / len(layers)] * len(layers)
    if isinstance(weights, str):
        weights = [float(w) for w in weights.split(",") if w.strip()]
    weights = [float(w) for w in weights]
    if len(weights) != len(layers):
        raise ConfigError(f"{len(weights)} layer weights given for {len(layers)} layers ({', '.join(layers)})")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ConfigError(f"layer weights must be finite and >= 0, got {weights}")
    return weights


class FeatureTerm(nn.Module):
    """One loss term on a feature network's features; :class:`Objective` runs the network once for all its terms.

    Targets and per-layer scales are buffers, so ``term.to(device or dtype)`` moves them with the module;
    the parts a loss keeps in float64 (:attr:`StyleLoss.float64_parts`) change device only.
    """

    layers: list[str]
    _float64: frozenset[str] = frozenset()

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.layer_losses(features).sum(dim=0)

    def layer_losses(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted loss per layer, shape ``(L, N)``."""
        raise NotImplementedError

    def _set_target(
        self, layer: str, target: Representation, scale: torch.Tensor, float64_parts: tuple[int, ...] = ()
    ) -> None:
        """Keep ``target`` (a tensor or a tuple of tensors) and ``scale`` of ``layer`` as buffers."""
        parts = target if isinstance(target, tuple) else (target,)
        for i, part in enumerate(parts):
            self.register_buffer(f"target_{layer}_{i}", part.detach(), persistent=False)
        self._float64 = self._float64 | {f"target_{layer}_{i}" for i in float64_parts}
        self.register_buffer(
            f"scale_{layer}", torch.as_tensor(scale, dtype=parts[0].dtype, device=parts[0].device), persistent=False
        )
        self._target_shape[layer] = len(parts) if isinstance(target, tuple) else None

    def _apply(self, fn, *args, **kwargs):
        kept = {name: self._buffers[name] for name in self._float64}
        super()._apply(fn, *args, **kwargs)
        for name, original in kept.items():  # the device of the conversion, the dtype of the original
            self._buffers[name] = original.to(self._buffers[name].device)
        return self

    def target(self, layer: str) -> Representation:
        count = self._target_shape[layer]
        if count is None:
            return getattr(self, f"target_{layer}_0")
        return tuple(getattr(self, f"target_{layer}_{i}") for i in range(count))

    def scale(self, layer: str) -> torch.Tensor:
        return getattr(self, f"scale_{layer}")


class StyleTerm(FeatureTerm):
    """A style loss against one style image over a layer set with per-layer weights.

    The style image's representations (and normalisers) are computed once, here.
    """

    def __init__(
        self,
        network: FeatureNetwork,
        style: torch.Tensor,
        layers: list[str] | str,
        loss: str | StyleLoss = "gram",
        layer_weights: list[float] | str | None = None,
        normalize: bool = True,
    ):
        super().__init__()
        self.layers = network.check_layers(layers)
        self.weights = _parse_weights(self.layers, layer_weights)
        self.loss = get_style_loss(loss) if isinstance(loss, str) else loss
        self.normalize = normalize
        self._target_shape: dict[str, int | None] = {}
        with torch.no_grad():
            feats = network(style, self.layers)
            for name in self.layers:
                target = self.loss.prepare_target(feats[name])
                scale = 1.0 / self.loss.magnitude(target).clamp_min(1e-12) if normalize else torch.tensor(1.0)
                self._set_target(name, target, scale, self.loss.float64_parts)

    def layer_losses(self, features):
        return torch.stack(
            [
                weight * self.scale(name) * self.loss(features[name], self.target(name))
                for name, weight in zip(self.layers, self.weights)
            ]
        )


class ContentTerm(FeatureTerm):
    """Feature reconstruction of one image at one or more layers (relative MSE when normalised)."""

    def __init__(
        self,
        network: FeatureNetwork,
        content: torch.Tensor,
        layers: list[str] | str,
        layer_weights: list[float] | str | None = None,
        normalize: bool = True,
    ):
        super().__init__()
        self.layers = network.check_layers(layers)
        self.weights = _parse_weights(self.layers, layer_weights)
        self._target_shape = {}
        with torch.no_grad():
            feats = network(content, self.layers)
            for name in self.layers:
                scale = 1.0 / feats[name].pow(2).mean().clamp_min(1e-12) if normalize else torch.tensor(1.0)
                self._set_target(name, feats[name], scale)

    def layer_losses(self, features):
        return torch.stack(
            [
                weight * self.scale(name) * content_loss(features[name], self.target(name))
                for name, weight in zip(self.layers, self.weights)
            ]
        )


class Objective(nn.Module):
    """Weighted sum of feature terms plus optional total variation, from one forward pass of the network.

    ``objective(images)`` returns one loss per image, ``(N,)``, so it serves as an optimisation
    objective, as a diffusion guidance loss and as a metric. ``evaluate`` also returns each term.

    The network is not a submodule: ``objective.to(device or dtype)`` moves the terms' targets and
    then uses the network of the same weights on that device and dtype (:meth:`FeatureNetwork.variant`),
    so it never converts the process-wide cached network that other objectives share.
    """

    def __init__(self, network: FeatureNetwork, terms: dict[str, tuple[FeatureTerm, float]], tv_weight: float = 0.0):
        super().__init__()
        if not terms:
            raise ConfigError("an objective needs at least one term")
        for name, (_, weight) in terms.items():
            if not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"weight of {name} must be finite and >= 0, got {weight}")
        if not math.isfinite(tv_weight) or tv_weight < 0:
            raise ConfigError(f"tv weight must be finite and >= 0, got {tv_weight}")
        self._network = (network,)  # a tuple, so nn.Module does not adopt (and .to() does not convert) it
        self.terms = nn.ModuleDict({name: term for name, (term, _) in terms.items()})
        self.term_weights = {name: weight for name, (_, weight) in terms.items()}
        self.tv_weight = tv_weight
        self.layers = network.sort_layers([layer for term in self.terms.values() for layer in term.layers])
        self.min_size = network.min_size(self.layers)

    @property
    def network(self) -> FeatureNetwork:
        return self._network[0]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        # The per-layer scales carry the working device and dtype (gaussian_w2 keeps some targets in
        # float64 on purpose, so not every buffer does).
        scale = next(b for name, b in self.named_buffers() if name.rsplit(".", 1)[-1].startswith("scale_"))
        self._network = (self.network.variant(scale.device, scale.dtype),)
        return self

    def evaluate(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.network(images, self.layers)
        parts = {name: term(features) for name, term in self.terms.items()}
        total = sum(self.term_weights[name] * value for name, value in parts.items())
        if self.tv_weight:
            parts["tv"] = total_variation(images)
            total = total + self.tv_weight * parts["tv"]
        return total, parts

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.evaluate(images)[0]


def style_objective(
    network: FeatureNetwork,
    style: torch.Tensor,
    layers: list[str] | str,
    loss: str = "gram",
    layer_weights: list[float] | str | None = None,
) -> Objective:
    """The style loss of ``style`` over ``layers`` as a callable ``images -> (N,)``."""
    return Objective(network, {"style": (StyleTerm(network, style, layers, loss, layer_weights), 1.0)})
