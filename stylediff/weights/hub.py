"""Pre-fill the Hugging Face cache with diffusers models so that runs with ``HF_HUB_OFFLINE=1`` find them.

The models: ``google/ddpm-cifar10-32``, a Stable Diffusion pipeline's UNet, VAE, text encoders and
tokenizers…

Prints one line per model (``progress``) and raises one-line :class:`~stylediff.core.errors.WeightsError`
messages that say what to do; huggingface_hub is imported inside the function. Command line::

    stylediff weights fetch --models google/ddpm-cifar10-32 google/ddpm-ema-church-256
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.errors import WeightsError
from .lpips_backbones import first_line

Progress = Callable[[str], None]

_HUB_CONFIGS = [
    "model_index.json",
    "config.json",
    "scheduler_config.json",
    "unet/config.json",
    "scheduler/scheduler_config.json",
]
_HUB_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _hub_layout(folder: Path) -> str | None:
    """The layout of a snapshot: pipeline (unet/ + scheduler/), flat (config.json + scheduler_config.json) or None."""
    if (folder / "unet" / "config.json").is_file() and (folder / "scheduler" / "scheduler_config.json").is_file():
        return "pipeline"
    if (folder / "config.json").is_file() and (folder / "scheduler_config.json").is_file():
        return "flat"
    return None


def fetch_hub_models(
    model_ids: str | Iterable[str],
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    progress: Progress | None = print,
) -> dict[str, Path]:
    """Download diffusers pixel models (e.g. ``google/ddpm-cifar10-32``) into the Hugging Face cache.

    Only what ``stylediff`` loads is downloaded: the configs of both layouts (pipeline repos with
    ``unet/`` + ``scheduler/``, flat repos with ``config.json`` + ``scheduler_config.json`` at the root)
    and the UNet weights (``diffusion_pytorch_model.safetensors``, or ``.bin`` when the repo has no
    safetensors); a latent pipeline's parts likewise (:func:`fetch_latent_parts`). Afterwards
    ``HF_HUB_OFFLINE=1`` runs find the models there.

    Args:
        model_ids: one hub id or several.
        cache_dir: the cache to fill (default: the hub cache, ``$HF_HOME/hub``).
        revision: a branch, tag or commit (default "main").
        progress: called with one line per model; None is silent.

    Returns:
        ``{model_id: snapshot folder}``.

    Raises:
        WeightsError: one line, for a model that cannot be downloaded (no network, ``HF_HUB_OFFLINE=1``,
            unknown id) or is not a diffusers model.
    """
    from huggingface_hub import snapshot_download

    progress = progress or (lambda _msg: None)
    ids = [model_ids] if isinstance(model_ids, str) else list(model_ids)
    out: dict[str, Path] = {}
    for model_id in ids:
        start = time.monotonic()
        kwargs = {"revision": revision, "cache_dir": cache_dir}
        try:
            patterns = _HUB_CONFIGS + [_HUB_WEIGHTS[0], "unet/" + _HUB_WEIGHTS[0]]
            folder = Path(snapshot_download(model_id, allow_patterns=patterns, **kwargs))
            layout = _hub_layout(folder)
            weights_dir = folder / "unet" if layout == "pipeline" else folder
            if layout and not (weights_dir / _HUB_WEIGHTS[0]).is_file():
                rel = "unet/" if layout == "pipeline" else ""
                folder = Path(snapshot_download(model_id, allow_patterns=[rel + _HUB_WEIGHTS[1]], **kwargs))
            fetch_latent_parts(model_id, folder, kwargs)
        except Exception as exc:  # offline (LocalEntryNotFoundError), connection errors, unknown repo…
            try:
                from huggingface_hub import constants

                offline = bool(constants.HF_HUB_OFFLINE)
            except Exception:  # pragma: no cover
                offline = False
            reason = (
                "HF_HUB_OFFLINE=1 is set; " if offline else ""
            ) + f"{type(exc).__name__}: {first_line(exc) or 'no detail'}"
            raise WeightsError(
                f"cannot download {model_id} from the Hugging Face hub ({reason[:300]}): on a machine with internet "
                f"run `stylediff weights fetch --models {model_id}` (or `hf download {model_id}`) with the same "
                f"HF_HOME and copy its hub folder here"
            ) from None
        layout = _hub_layout(folder)
        weights_dir = folder / "unet" if layout == "pipeline" else folder
        if layout is None or not any((weights_dir / name).is_file() for name in _HUB_WEIGHTS):
            raise WeightsError(
                f"{model_id} is not a diffusers pixel model: expected unet/ + scheduler/ or "
                "config.json + scheduler_config.json and diffusion_pytorch_model weights"
            )
        progress(f"hub: {model_id} ({layout} layout) in {folder} ({time.monotonic() - start:.1f} s)")
        out[model_id] = folder
    return out


def hub_offline() -> bool:
    """Whether huggingface_hub is set offline (``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


# -- latent pipelines: which parts load, where they are on the hub ----------------------------------
PARTS = {
    "unet": ("diffusers", ("UNet2DConditionModel", "UNet2DModel")),
    "vae": ("diffusers", ("AutoencoderKL",)),
    "vqvae": ("diffusers", ("VQModel", "AutoencoderKL")),
    "text_encoder": ("transformers", ("CLIPTextModel",)),
    "tokenizer": ("transformers", ("CLIPTokenizer", "CLIPTokenizerFast")),
    "text_encoder_2": ("transformers", ("CLIPTextModelWithProjection",)),
    "tokenizer_2": ("transformers", ("CLIPTokenizer", "CLIPTokenizerFast")),
}
"""The parts of a latent pipeline that load, with the classes each may be. An ``LDMPipeline``'s ``vqvae``
may be an ``AutoencoderKL`` (diffusers loads one there: the pipeline only calls ``decode(z / scaling_factor)``;
models/ldm-emoji-faces-32). The safety checker, feature extractor and image encoders a
``model_index.json`` may name are never loaded."""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


def latent_index(text: str, path: Path | None, kwargs: dict) -> dict | None:
    """The ``model_index.json`` of a latent pipeline (one that names a ``vae`` or ``vqvae``), else None.

    Args:
        text: the hub id (read when ``path`` is None).
        path: the local folder, or None for a hub id.
        kwargs: the hub arguments (``revision``, ``cache_dir``, ``local_files_only``).

    Returns:
        The parsed index, or None (no index, not cached, or a pixel pipeline).
    """
    import json

    if path is not None:
        file = path / "model_index.json"
        if not file.is_file():
            return None
    else:
        from huggingface_hub import hf_hub_download

        try:
            file = Path(
                hf_hub_download(
                    text,
                    "model_index.json",
                    revision=kwargs.get("revision"),
                    cache_dir=kwargs.get("cache_dir"),
                    local_files_only=bool(kwargs.get("local_files_only")) or hub_offline(),
                )
            )
        except Exception:  # noqa: BLE001 - not cached / not a pipeline: the pixel loader says why
            return None
    index = json.loads(file.read_text())
    return index if any(index.get(name, [None])[0] for name in ("vae", "vqvae")) else None


def hub_patterns(index: dict) -> list[list[str]]:
    """What :func:`load_latent` reads of a hub repository, as ``snapshot_download`` pattern lists.

    fp16 variants, the safety checker and image encoders are left out.

    Args:
        index: the repository's model_index.json.

    Returns:
        Two lists: the configs and the safetensors weights of every loaded part first, then the
        ``.bin`` fallbacks (fetched only where a part has no safetensors).
    """
    parts = [name for name in PARTS if index.get(name, [None])[0]]
    configs = ["scheduler/*.json", *(f"{part}/{name}" for part in parts for name in ("*.json", "*.txt"))]
    return [
        configs
        + [f"{part}/{name}" for part in parts for name in ("diffusion_pytorch_model.safetensors", "model.safetensors")],
        [f"{part}/{name}" for part in parts for name in ("diffusion_pytorch_model.bin", "pytorch_model.bin")],
    ]


def fetch_latent_parts(model_id: str, folder: Path, kwargs: dict) -> None:
    """Download the rest of a latent pipeline whose configs are in ``folder`` (``stylediff weights fetch``).

    Args:
        model_id: the hub id.
        folder: its snapshot folder in the cache.
        kwargs: the hub arguments passed to ``snapshot_download``.
    """
    from huggingface_hub import snapshot_download

    index = latent_index(model_id, folder, kwargs)
    if index is not None:
        safetensors, bins = hub_patterns(index)
        snapshot_download(model_id, allow_patterns=safetensors, **kwargs)
        missing = [p for p in bins if not any((folder / p).parent.glob("*.safetensors"))]
        if missing:
            snapshot_download(model_id, allow_patterns=missing, **kwargs)
