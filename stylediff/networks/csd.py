"""CSD, Contrastive Style Descriptors (Somepalli et al. 2024), as the ``csd`` feature network.

Reference: learn2phoenix/CSD ``CSD/model.py`` ``CSD_CLIP``: an OpenAI CLIP ViT-L/14 image encoder
(``clip.load("ViT-L/14").visual`` with its ``proj`` removed) whose CLS output (``ln_post`` of token 0) is
multiplied by the trained style projection ``last_layer_style`` (1024 × 768) and L2-normalised. Two images'
style similarity is the cosine of these embeddings (``main_sim.py`` with ``--eval_embed head``); the
held-out metric reports ``1 − cos``. Preprocessing follows CSD's evaluation transform: bicubic resize of
the shorter side to 224, centre crop, CLIP mean/std.

Weights are user-supplied (CSD's ``checkpoint.pth``, from the link in the CSD README): set
``STYLEDIFF_NETWORK_CSD`` (or pass ``path``). The checkpoint's ``model_state_dict`` (``module.`` prefixes
removed, as ``CSD/utils.py`` ``convert_state_dict`` does) holds ``backbone.*`` in OpenAI CLIP's layout; it is
converted here to transformers' ``CLIPVisionModel`` (the mapping of transformers'
``convert_clip_original_pytorch_to_hf.py``; QuickGELU, as OpenAI CLIP), the architecture read from the
tensors' shapes (so a small test checkpoint works the same way).

Layers: ``hidden0 … hidden24`` (patch tokens, as for CLIP) and ``style`` (the unit embedding, ``(N, 768, 1, 1)``).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.errors import WeightsError
from ..core.provenance import file_sha256
from .base import tokens_as_maps
from .clip import CLIPVision

ENV = "STYLEDIFF_NETWORK_CSD"
STYLE_LAYER = "style"


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """CSD's ``model_state_dict`` without ``module.`` prefixes (tensors only; argparse namespaces allowed).

    Args:
        path: CSD's ``checkpoint.pth``.

    Returns:
        ``{name: tensor}``.

    Raises:
        WeightsError: the file cannot be read or is not a CSD checkpoint.
    """
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"cannot read the CSD checkpoint {path} ({type(exc).__name__}): point {ENV} at CSD's checkpoint.pth"
        ) from None
    state = checkpoint.get("model_state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(k.endswith("last_layer_style") for k in state):
        raise WeightsError(f"{path} is not a CSD checkpoint (no model_state_dict with last_layer_style)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def convert_backbone(state: dict[str, torch.Tensor]):
    """A transformers ``CLIPVisionModel`` holding the ``backbone.*`` weights of OpenAI CLIP's visual encoder.

    Args:
        state: the checkpoint's tensors (:func:`read_checkpoint`).

    Returns:
        The model, its architecture read from the tensors' shapes.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModel

    visual = {key[len("backbone.") :]: value for key, value in state.items() if key.startswith("backbone.")}
    width, _, patch, _ = visual["conv1.weight"].shape
    depth = len({key.split(".")[2] for key in visual if key.startswith("transformer.resblocks.")})
    grid = math.isqrt(visual["positional_embedding"].shape[0] - 1)
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=visual["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=depth,
        num_attention_heads=max(1, width // 64),
        patch_size=patch,
        image_size=grid * patch,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    ours = {
        "embeddings.patch_embedding.weight": visual["conv1.weight"],
        "embeddings.class_embedding": visual["class_embedding"],
        "embeddings.position_embedding.weight": visual["positional_embedding"],
    }
    for theirs, mine in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        ours[f"{mine}.weight"], ours[f"{mine}.bias"] = visual[f"{theirs}.weight"], visual[f"{theirs}.bias"]
    for i in range(depth):
        src, dst = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = visual[f"{src}attn.in_proj_{kind}"].chunk(3, dim=0)
            ours.update(
                {
                    f"{dst}self_attn.q_proj.{kind}": q,
                    f"{dst}self_attn.k_proj.{kind}": k,
                    f"{dst}self_attn.v_proj.{kind}": v,
                }
            )
            for theirs, mine in (
                ("attn.out_proj", "self_attn.out_proj"),
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
            ):
                ours[f"{dst}{mine}.{kind}"] = visual[f"{src}{theirs}.{kind}"]
    model = CLIPVisionModel(config)
    target = getattr(model, "vision_model", model)
    missing, unexpected = target.load_state_dict({k: v.float() for k, v in ours.items()}, strict=False)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing or unexpected:
        raise WeightsError(
            f"the CSD backbone does not match CLIP's layout (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


class CSD(CLIPVision):
    """CLIP ViT-L/14 hidden states plus CSD's unit style embedding (layer ``style``).

    Args:
        state: the checkpoint's tensors (:func:`read_checkpoint`).
        provenance: what sidecars record of the weights.
    """

    def __init__(self, state: dict[str, torch.Tensor], provenance: dict):
        super().__init__("csd", convert_backbone(state), provenance, crop=True)
        self.register_buffer("projection", state["last_layer_style"].float(), persistent=False)
        self.layers = self.layers + (STYLE_LAYER,)
        self.style_layers = (STYLE_LAYER,)
        self._freeze()

    def forward(self, images: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """``hidden<k>`` tokens as for CLIP, and ``style``: the unit embedding as ``(N, 768, 1, 1)``."""
        hidden = [name for name in layers if name != STYLE_LAYER]
        deepest = len(self.blocks) if STYLE_LAYER in layers else max(int(n[len("hidden") :]) for n in hidden)
        states = self.hidden_states(images, deepest)
        out = {name: tokens_as_maps(states[int(name[len("hidden") :])][:, 1:, :]) for name in hidden}
        if STYLE_LAYER in layers:
            embedding = self.post_layernorm(states[-1][:, 0, :]) @ self.projection
            out[STYLE_LAYER] = F.normalize(embedding, dim=1)[:, :, None, None]
        return out


def _path(path: str | None) -> Path | None:
    value = path or os.environ.get(ENV)
    return Path(value).expanduser() if value else None


def available(name: str, path: str | None) -> bool:
    """Whether CSD's checkpoint is there (the :class:`~stylediff.networks.NetworkSpec` interface).

    Args:
        name: ``csd``.
        path: the checkpoint, or None for ``$STYLEDIFF_NETWORK_CSD``.

    Returns:
        True when the file exists.
    """
    file = _path(path)
    return file is not None and file.is_file()


def load(name: str, path: str | None) -> CSD:
    """Load CSD from its checkpoint (the ``NetworkSpec`` interface).

    Args:
        name: ``csd``.
        path: the checkpoint, or None for ``$STYLEDIFF_NETWORK_CSD``.

    Returns:
        The network, frozen.

    Raises:
        WeightsError: no checkpoint (the message says where to get it), or not a CSD checkpoint.
    """
    file = _path(path)
    if file is None or not file.is_file():
        where = f"{file} is not a file" if file else f"{ENV} is not set"
        raise WeightsError(
            f"CSD weights are user-supplied and {where}: download CSD's checkpoint.pth "
            f"(github.com/learn2phoenix/CSD) and set {ENV} to its path"
        )
    provenance = {
        "name": "csd",
        "source": "learn2phoenix/CSD checkpoint (ViT-L/14 + style head)",
        "path": str(file),
        "sha256": file_sha256(file),
    }
    return CSD(read_checkpoint(file), provenance)
