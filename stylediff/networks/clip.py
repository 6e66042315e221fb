"""CLIP image encoders (transformers ``CLIPVisionModel``) as feature networks: ``clip-vit-b16``, ``clip-vit-b32``.

Layers ``hidden0 … hiddenL`` are transformers' ``hidden_states[k]`` (``hidden0``: the embeddings after
``pre_layrnorm``; ``hiddenk``: the output of encoder block k), returned without the CLS token as
``(N, C, T, 1)`` (T patch tokens). Only the blocks up to the deepest requested layer run.

**CLIP-Gram**, the style loss of FreeDoM, MPGD and TFG on Stable Diffusion, is the ``gram`` style loss on
``clip-vit-b16`` at one early layer, ``--network clip-vit-b16 --loss gram``; the layer differs by reference
(``stylediff sample`` takes each method's ``clip_style_layer`` when ``--layers`` is not given):

* TFG ``tasks/networks/style_CLIP.py`` ``StyleCLIP.get_gram_matrix`` (its comment "following mpgd" is off by
  one block): the image resized to the processor's 224 × 224 by ``interpolate(…, mode="bicubic")``, CLIP
  mean/std, ``hidden_states[2][:, 1:, :]`` (CLS dropped) = ``hidden2``, ``G = Fᵀ F`` (C × C, unnormalised);
  ``forward`` returns the log-probability −‖G − Gₛ‖_F/100 per image (``-(diff ** 2).sum(dim=1).sqrt() / 100``,
  unsquared).
* MPGD ``nonlinear/SD_style/ldm/models/diffusion/clip/base_clip.py`` ``get_gram_matrix_residual`` (FreeDoM
  ``SD_style`` has the same code): OpenAI CLIP ViT-B/16's ``encode_image_with_features`` appends each residual
  block's *output* (``clip/model.py`` lines 354-356), so its ``feats[2][1:, 0, :]`` are the tokens after three
  blocks, transformers' ``hidden_states[3]`` = ``hidden3``; the same bicubic resize and normalisation; guided
  by ``‖G − Gₛ‖_F`` (``torch.linalg.norm`` of the residual, unsquared).

stylediff's ``gram`` normalises G by C·T and, in a :class:`~stylediff.nst.losses.StyleTerm`, divides by the
target's magnitude, so its value is ``‖G − Gₛ‖²_F / ‖Gₛ‖²_F`` of the references' unnormalised matrices: the
square of their residual norm over ‖Gₛ‖²_F (a constant per style image). FreeDoM's and MPGD's steps are
normalised (an RMS ratio), so the constant and the square cancel; TFG's log-probability (``tfg``/``lgd``
``log_prob norm``: −√L/100) keeps the constant 1/‖Gₛ‖_F. Deviations, stated: the style image is read by
stylediff (``load_image`` at the run's style size) and goes through the same bicubic resize as the output,
where the references resize the style image with PIL's bilinear filter; TFG also feeds its decoded [-1, 1]
image straight into the mean/std normalisation and normalises its target twice.

Weights: the hub ids ``openai/clip-vit-base-patch16`` / ``-patch32`` read from the Hugging Face cache only
(never downloaded while a run loads them: ``stylediff weights fetch --networks clip-vit-b16`` pre-fills the
cache), or a local ``save_pretrained`` folder given as ``path`` / ``STYLEDIFF_NETWORK_CLIP_VIT_B16``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.errors import WeightsError
from ..core.provenance import file_sha256
from . import NETWORKS
from .base import FeatureNetwork, tokens_as_maps

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
STYLE_LAYER = "hidden2"
"""``hidden_states[2]``: TFG's style layer (FreeDoM's and MPGD's is ``hidden3``: their methods say so)."""


class CLIPVision(FeatureNetwork):
    """A CLIP ViT image encoder's hidden states as feature maps.

    Images are resized to its input size (bicubic, or shorter side + centre crop with ``crop=True``) and
    normalised by the CLIP mean/std.

    Args:
        name: the registered name (``clip-vit-b16``).
        model: a transformers ``CLIPVisionModel`` (or its ``vision_model``).
        provenance: what sidecars record of the weights.
        crop: resize the shorter side and centre-crop instead of resizing to a square.
    """

    def __init__(self, name: str, model, provenance: dict, crop: bool = False):
        super().__init__()
        vision = getattr(model, "vision_model", model)  # transformers < 5 nests the transformer one level down
        self.embeddings, self.pre_layrnorm = vision.embeddings, vision.pre_layrnorm
        self.blocks, self.post_layernorm = vision.encoder.layers, vision.post_layernorm
        self.name, self.crop, self._provenance = name, crop, provenance
        self.image_size = int(model.config.image_size)
        # transformers < 5 encoder layers also take a (here absent) causal mask positionally
        self._extra_args = (
            (None,) if "causal_attention_mask" in inspect.signature(self.blocks[0].forward).parameters else ()
        )
        self.layers = tuple(f"hidden{k}" for k in range(len(self.blocks) + 1))
        self.style_layers = (STYLE_LAYER,) if len(self.blocks) >= 2 else (self.layers[-1],)
        self.content_layer = f"hidden{len(self.blocks) // 2}"
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    def provenance(self) -> dict:
        """The hub id or folder, revision, weight file and its sha256."""
        return dict(self._provenance)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images as CLIP's input: resized (or cropped) to its size and normalised by the CLIP mean/std.

        Args:
            images: ``(N, 3, H, W)`` in ``[0, 1]``.

        Returns:
            ``(N, 3, S, S)``, S the model's image size.
        """
        size = self.image_size
        if self.crop:  # torchvision Resize(size, bicubic) + CenterCrop(size)
            h, w = images.shape[-2:]
            scale = size / min(h, w)
            shape = (max(size, round(h * scale)), max(size, round(w * scale)))
            images = F.interpolate(images, size=shape, mode="bicubic", align_corners=False)
            top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
            images = images[..., top : top + size, left : left + size]
        else:
            images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
        return (images - self.mean) / self.std

    def hidden_states(self, images: torch.Tensor, deepest: int) -> list[torch.Tensor]:
        """``[hidden_states[0], …, hidden_states[deepest]]`` as ``(N, 1 + T, C)`` tokens.

        Args:
            images: ``(N, 3, H, W)`` in ``[0, 1]``.
            deepest: the last encoder block to run.

        Returns:
            The embeddings and the output of each block up to ``deepest``, CLS token first.
        """
        h = self.pre_layrnorm(self.embeddings(self.preprocess(images)))
        states = [h]
        for block in self.blocks[:deepest]:
            h = block(h, None, *self._extra_args)
            h = h[0] if isinstance(h, tuple) else h
            states.append(h)
        return states

    def forward(self, images: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """The patch tokens (CLS dropped) of ``hidden<k>`` layers as ``(N, C, T, 1)`` (:meth:`FeatureNetwork.forward`)."""
        indices = {name: int(name[len("hidden") :]) for name in layers}
        states = self.hidden_states(images, max(indices.values()))
        return {name: tokens_as_maps(states[k][:, 1:, :]) for name, k in indices.items()}


def _location(name: str, path: str | None) -> str:
    return path or NETWORKS.lookup(name).hub_id


def _local_folder(location: str) -> Path | None:
    """The folder holding the model.

    ``location`` itself if it is a folder, else the hub cache's snapshot of that id (None when not cached).
    """
    folder = Path(location).expanduser()
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(location, "config.json")
    except Exception:  # not a valid repo id
        return None
    return Path(config).parent if isinstance(config, str) else None


def _weights_file(folder: Path) -> Path | None:
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


def available(name: str, path: str | None) -> bool:
    """Whether ``name``'s weights are present (the :class:`~stylediff.networks.NetworkSpec` interface).

    Args:
        name: the registered network.
        path: local weights, or None for the default place.

    Returns:
        True when they can be loaded without a download.
    """
    folder = _local_folder(_location(name, path))
    return folder is not None and (folder / "config.json").is_file() and _weights_file(folder) is not None


def load(name: str, path: str | None) -> CLIPVision:
    """Load a CLIP image encoder from the hub cache or a local folder (the ``NetworkSpec`` interface).

    Args:
        name: ``clip-vit-b16`` or ``clip-vit-b32``.
        path: a local ``CLIPVisionModel`` folder or hub id, or None for the network's hub id.

    Returns:
        The network, float32, frozen.

    Raises:
        WeightsError: not cached (the message says how to fetch it) or not loadable.
    """
    location = _location(name, path)
    if not available(name, path):
        env = "STYLEDIFF_NETWORK_" + name.upper().replace("-", "_")
        raise WeightsError(
            f"{name} weights ({location}) are not in the Hugging Face cache: run `stylediff weights fetch --networks "
            f"{name}` on a machine with internet (same HF_HOME), or set {env} to a local CLIPVisionModel folder"
        )
    from transformers import CLIPVisionModel
    from transformers.utils import logging as hf_logging

    folder = _local_folder(location)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # a full CLIP checkpoint's text weights are "unused": expected, not news
    hf_logging.disable_progress_bar()  # quiet runs
    try:
        model = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise WeightsError(
            f"cannot load {name} from {folder} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    weights = _weights_file(folder)
    revision = folder.name if not Path(location).expanduser().is_dir() else None
    provenance = {
        "name": name,
        "source": location,
        "revision": revision,
        "path": str(weights),
        "sha256": file_sha256(weights),
    }
    return CLIPVision(name, model.float(), provenance)


def fetch(names, cache_dir: str | os.PathLike | None = None, progress=print) -> dict[str, Path]:
    """Download the hub CLIP image encoders ``names`` into the Hugging Face cache (config and weights only).

    Args:
        names: registered CLIP network names.
        cache_dir: the cache (default: the hub cache).
        progress: called with one line per network.

    Returns:
        ``{name: snapshot folder}``.

    Raises:
        WeightsError: one line, when a download fails.
    """
    from huggingface_hub import snapshot_download

    out = {}
    for name in names:
        hub_id = NETWORKS.lookup(name).hub_id
        try:
            folder = Path(
                snapshot_download(hub_id, allow_patterns=["config.json", WEIGHT_FILES[0]], cache_dir=cache_dir)
            )
            if _weights_file(folder) is None:
                folder = Path(snapshot_download(hub_id, allow_patterns=[WEIGHT_FILES[1]], cache_dir=cache_dir))
        except Exception as exc:  # offline, HF_HUB_OFFLINE=1, connection errors
            raise WeightsError(
                f"cannot download {hub_id} ({type(exc).__name__}): run `stylediff weights fetch "
                f"--networks {name}` on a machine with internet and copy its HF_HOME/hub here"
            ) from None
        progress(f"{name}: {hub_id} in {folder}")
        out[name] = folder
    return out
