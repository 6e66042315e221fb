"""Pre-fill the Hugging Face cache with diffusers models (``google/ddpm-cifar10-32``, a Stable Diffusion
pipeline's UNet, VAE, text encoders and tokenizers…) so that runs with ``HF_HUB_OFFLINE=1`` find them.

Prints one line per model (``progress``) and raises one-line :class:`~stylediff.errors.WeightsError`
messages that say what to do; huggingface_hub is imported inside the function. Command line::

    stylediff weights fetch --models google/ddpm-cifar10-32 google/ddpm-ema-church-256
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import WeightsError
from .weights import first_line

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
    """ "pipeline" (unet/ + scheduler/), "flat" (config.json + scheduler_config.json at the root) or None."""
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
    safetensors). ``cache_dir`` defaults to the hub cache (``$HF_HOME/hub``); ``revision`` to "main".
    Afterwards ``HF_HUB_OFFLINE=1`` runs find the models there. Returns ``{model_id: snapshot folder}``.
    A model that cannot be downloaded (no network, ``HF_HUB_OFFLINE=1``, unknown id) or is not a
    diffusers pixel model is a one-line :class:`WeightsError`.
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
            from .diffusion.loading import fetch_latent_parts  # a latent pipeline's VAE, text encoders...

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
