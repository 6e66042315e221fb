"""The Gram matrix of Gatys et al., F Fᵀ / (C·H·W), with a memory-lean backward of its own (the
statistic behind the ``gram`` loss, the Gram distances of the metrics and the held-out scores)."""

from __future__ import annotations

import torch


class _Gram(torch.autograd.Function):
    """F Fᵀ / n with a one-product backward: G is symmetric, so ∂L/∂F = (Ḡ + Ḡᵀ) F / n, one batched
    matrix product where autograd's ``flat @ flat.T`` takes two (at 256 px the five Gram matrices'
    products are ~8 % of a step; this removes a third of them).

    The division is in place: the backward's product has the size of the activation (4 MiB at
    relu1_1 for 128 px), and a second buffer of that size is a fresh allocation whose pages the
    CPU faults in at every step (6–8 ms against 1.5 ms in place, same values)."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, norm: float) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.norm = norm
        return torch.bmm(flat, flat.transpose(1, 2)).div_(norm)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (flat,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), flat).div_(ctx.norm), None


def self_product(flat: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """``flat @ flatᵀ / norm`` for ``(N, C, P)`` rows, with the one-product backward of :class:`_Gram`."""
    return _Gram.apply(flat, norm)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gatys et al.'s Gram matrix, normalised by C·H·W: ``(N, C, H, W) -> (N, C, C)``."""
    n, c, h, w = features.shape
    return self_product(features.reshape(n, c, h * w), c * h * w)
