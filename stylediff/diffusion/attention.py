"""The UNet's self-attention inside an objective: a processor that records and can edit each layer's attention.

It records each layer's queries, keys, values and attention output, and can substitute what the layer
attends with.

Attention-based guidance rules (Attention Distillation; StyleID's and StyleAligned's K/V injection)
need the UNet's attention, not only its output. The model adapter (:mod:`.adapters`) owns this hook,
so such a rule is one more method file: it asks the adapter for the records of an x at a t
(``adapter.attention``), or edits the denoising call's attention (``adapter.attention_hook``).

:class:`CaptureProcessor` is diffusers' ``AttnProcessor2_0.__call__`` (diffusers 0.42.1,
``models/attention_processor.py:2705-2787``) line for line, with two additions: an optional ``edit`` of
(q, k, v) just before the attention and a record of (q, k, v, out) just after it, where
xugao97/AttentionDistillation's ``register_attn_control`` (``utils.py:13-103``) records them (its
``DataCache.add`` after SDPA, before ``to_out``). Installed and not editing, the UNet's output is
bit-identical to the stock processor's (tested on both demo models and the tiny SD UNet).

Layers are numbered in the UNet's forward order, the reference's ``Controller(self_layers=…)``
numbering (``utils.py:78,100-101``): the down blocks, the mid block, then the up blocks. ``named_modules``
lists ``up_blocks`` before ``mid_block`` (registration order) in ``UNet2DModel`` and
``UNet2DConditionModel``, so the order is sorted by section, not taken from the listing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError

Edit = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""(layer, q, k, v) -> the (q, k, v) the layer attends with; each (B, heads, tokens, head_dim)."""


@dataclass
class AttentionRecord:
    """One self-attention layer of one UNet call, each ``(B, heads, tokens, head_dim)``.

    Args:
        q: the queries, after ``norm_q``, as the attention used them.
        k: the keys.
        v: the values.
        out: SDPA(q, k, v) before the output projection ``to_out``.
    """

    q: torch.Tensor  # after norm_q, as the attention used it
    k: torch.Tensor
    v: torch.Tensor
    out: torch.Tensor  # SDPA(q, k, v) before the output projection ``to_out``


SECTIONS = ("down_blocks", "mid_block", "up_blocks")


def _section(name: str) -> int:
    first = name.split(".")[0]
    return SECTIONS.index(first) if first in SECTIONS else len(SECTIONS)


def self_attention_modules(unet) -> list[tuple[str, torch.nn.Module]]:
    """``(name, Attention module)`` of every self-attention layer of ``unet`` in forward order.

    Down blocks, mid block, up blocks, and ``named_modules`` order within each (a stable sort keeps it).

    Args:
        unet: a diffusers UNet.

    Returns:
        The layers; cross-attention left out.
    """
    from diffusers.models.attention_processor import Attention

    found = [
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, Attention) and not module.is_cross_attention
    ]
    return sorted(found, key=lambda item: _section(item[0]))


def decoder_layers(unet, count: int) -> list[int]:
    """The last ``min(count, n)`` self-attention layers in forward order, n = those in the up blocks.

    The reference's choice generalised (``Controller(self_layers=(10, 16))`` on SD 1.5 = ``up_blocks.2``
    and ``.3``; ``(64, 70)`` on SDXL = ``up_blocks.1``: the last 6 either way).

    Args:
        unet: a diffusers UNet.
        count: how many layers.

    Returns:
        Their forward-order numbers.

    Raises:
        ConfigError: ``count`` < 1, or no self-attention in the UNet's decoder.
    """
    if count < 1:
        raise ConfigError(f"the number of attention layers must be >= 1, got {count}")
    names = [name for name, _ in self_attention_modules(unet)]
    decoder = [i for i, name in enumerate(names) if _section(name) == SECTIONS.index("up_blocks")]
    if not decoder:
        listed = ", ".join(names) or "none"
        raise ConfigError(f"this UNet has no self-attention layer in its up blocks (its self-attention: {listed})")
    return decoder[-count:]


class CaptureProcessor:
    """``AttnProcessor2_0`` that hands (q, k, v) to ``hook.edit`` before the attention and records them after.

    The record is an :class:`AttentionRecord` in ``hook.records[layer]``.

    Args:
        hook: the hook that installed it.
        layer: its layer's forward-order number.
    """

    def __init__(self, hook: AttentionHook, layer: int):
        self.hook = hook
        self.layer = layer

    def __call__(  # noqa: C901 - diffusers' AttnProcessor2_0.__call__ line for line, so the copy can be checked
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        """The processor of diffusers' ``AttnProcessor2_0.__call__``, with the edit and the record."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if self.hook.edit is not None:
            query, key, value = self.hook.edit(self.layer, query, key, value)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        if self.hook.record:
            self.hook.records[self.layer] = AttentionRecord(query, key, value, hidden_states)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


class AttentionHook:
    """:class:`CaptureProcessor` on the self-attention ``layers`` of ``unet`` while the hook is entered.

    A ``with`` block; the original processors come back on exit. ``records`` holds the last UNet call's
    :class:`AttentionRecord` per layer. Only layers running diffusers' ``AttnProcessor2_0`` are taken,
    since the copy reproduces that one.

    Args:
        unet: a diffusers UNet.
        layers: forward-order numbers of self-attention layers.
        record: keep each call's records.
        edit: changes what a layer attends with (None: nothing).

    Raises:
        ConfigError: a layer out of range, or (on entering) one running another processor (xformers,
            LoRA, IP-Adapter).

    Example:
        ```python
        with AttentionHook(unet, decoder_layers(unet, 2)) as hook:
            unet(x, t)
        record = hook.ordered()[0]  # record.q, .k, .v: (B, heads, tokens, head_dim); .out: SDPA's output
        ```
    """

    def __init__(self, unet, layers: list[int], record: bool = True, edit: Edit | None = None):
        modules = self_attention_modules(unet)
        wrong = [layer for layer in layers if not 0 <= layer < len(modules)]
        if wrong:
            raise ConfigError(
                f"attention layers {wrong} out of range: this UNet has {len(modules)} self-attention layers"
            )
        self.modules = {layer: modules[layer] for layer in layers}
        self.record = record
        self.edit = edit
        self.records: dict[int, AttentionRecord] = {}
        self._saved: dict[int, object] = {}

    def __enter__(self) -> AttentionHook:
        """Install the capturing processors."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        for layer, (name, module) in self.modules.items():
            if type(module.processor) is not AttnProcessor2_0:
                self.__exit__(None, None, None)
                raise ConfigError(
                    f"attention layer {name} runs {type(module.processor).__name__}; the attention hook "
                    "reproduces diffusers' AttnProcessor2_0 only (unset custom attention processors)"
                )
            self._saved[layer] = module.processor
            module.set_processor(CaptureProcessor(self, layer))
        return self

    def __exit__(self, *exc) -> None:
        """Put the original processors back."""
        for layer, processor in self._saved.items():
            self.modules[layer][1].set_processor(processor)
        self._saved = {}

    def ordered(self) -> list[AttentionRecord]:
        """The records of the last UNet call, in the order of ``layers``."""
        return [self.records[layer] for layer in self.modules]
