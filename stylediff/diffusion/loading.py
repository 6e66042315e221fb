"""A pixel-space ``UNet2DModel`` and its scheduler config from a local folder or a hub id, with offline
errors that say what to run, and the provenance every sidecar records (id, revision, weights sha256).

Both layouts load, locally and from the Hugging Face cache: the pipeline layout (``unet/`` and
``scheduler/``, as ``DDPMPipeline.save_pretrained`` writes and ``google/ddpm-*`` repositories have)
and the flat layout (``config.json``, ``scheduler_config.json`` and the weights at the root, as
``UNet2DModel.from_pretrained(id)`` caches a flat repository). Weights are never initialised at random.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError
from ..provenance import file_sha256
from .schedule import make_scheduler

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
LAYOUTS = ("unet", None)
"""Subfolders tried for the UNet and (``scheduler``/root) its scheduler config: pipeline layout first."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class DiffusionModel:
    """A loaded UNet with its scheduler config and where they came from (for the sidecar)."""

    unet: Any  # diffusers.UNet2DModel
    scheduler_config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_size(self) -> tuple[int, int]:
        size = self.unet.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def scheduler(self, name: str = "ddim"):
        return make_scheduler(name, self.scheduler_config)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _not_found(model: str, reason: str, offline: bool) -> WeightsError:
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    where = "HF_HUB_OFFLINE=1 / --offline" if offline else "it could not be downloaded"
    return WeightsError(
        f"model {model} is not in the Hugging Face cache (HF_HOME={home}) and {where}: run "
        f"`stylediff weights fetch --models {model}` (or `hf download {model}`) on a machine with internet and "
        f"the same HF_HOME, or pass a local diffusers folder ({reason})"
    )


def _quietly(load, *args, **kwargs):
    """Call a diffusers loader without the notices that are not the user's business: the
    ``low_cpu_mem_usage``/accelerate hint (we pass ``low_cpu_mem_usage=False``: these models are small)
    and huggingface_hub's deprecation of an argument diffusers still passes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
        return load(*args, **kwargs)


def load_model(model: str | os.PathLike, device: str | torch.device = "cpu", *, revision: str | None = None,
               cache_dir: str | os.PathLike | None = None, local_files_only: bool | None = None) -> DiffusionModel:
    """Load a pixel-space ``UNet2DModel`` and its scheduler config from a local folder or a hub id."""
    from diffusers import DDPMScheduler, UNet2DModel

    text = str(model)
    path = Path(text).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise WeightsError(f"model {text} is a file: pass a diffusers folder (unet/ and scheduler/) or a hub id")
        if not ((path / "unet" / "config.json").is_file() or (path / "config.json").is_file()):
            raise WeightsError(f"{text} is not a diffusers model folder: expected unet/config.json and "
                               "scheduler/scheduler_config.json (as DDPMPipeline.save_pretrained writes)")
        source: str | Path = path
    elif _HUB_ID.match(text) and not text.startswith((".", "~")):
        source = text
    else:
        raise WeightsError(f"model folder {text} not found: pass an existing diffusers folder or a hub id such as "
                           "google/ddpm-cifar10-32")
    offline = bool(local_files_only) or _offline()
    kwargs: dict[str, Any] = {"revision": revision, "cache_dir": cache_dir}
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only

    def attempt(loader, subfolders):
        """Try every layout; the first error does not stop the search (offline, a missing pipeline
        subfolder raises the same errors as a missing model)."""
        errors = []
        for subfolder in subfolders:
            try:
                return _quietly(loader, source, subfolder=subfolder, **kwargs), subfolder
            except (OSError, ValueError) as exc:  # diffusers' "not found" errors
                errors.append(exc)
        reason = str(errors[0]).splitlines()[0] if str(errors[0]) else type(errors[0]).__name__
        if local:
            raise WeightsError(f"cannot load the diffusion model from {text}: {reason}") from None
        raise _not_found(text, reason, offline) from None

    unet, unet_sub = attempt(lambda src, **kw: UNet2DModel.from_pretrained(src, low_cpu_mem_usage=False, **kw),
                             LAYOUTS)
    config, _ = attempt(lambda src, **kw: DDPMScheduler.load_config(src, **kw),
                        ("scheduler", None) if unet_sub else (None, "scheduler"))
    unet = unet.to(device).eval().requires_grad_(False)
    return DiffusionModel(unet=unet, scheduler_config=dict(config),
                          info=_provenance(text, path, local, unet, unet_sub, config, revision, cache_dir))


def _provenance(text, path, local, unet, unet_sub, config, revision, cache_dir) -> dict[str, Any]:
    weights_file, commit = None, None
    rel = f"{unet_sub}/" if unet_sub else ""
    if local:
        folder = path / unet_sub if unet_sub else path
        weights_file = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    else:
        from huggingface_hub import try_to_load_from_cache

        for name in WEIGHT_FILES:
            found = try_to_load_from_cache(text, rel + name, cache_dir=cache_dir, revision=revision)
            if isinstance(found, str):
                weights_file = Path(found)
                parts = weights_file.parts
                if "snapshots" in parts:
                    commit = parts[parts.index("snapshots") + 1]
                break
    return {
        "id": text,
        "source": "local" if local else "hub",
        "path": str(path.resolve()) if local else None,
        "layout": "pipeline" if unet_sub else "flat",
        "revision": commit or revision,
        "weights_file": (rel + weights_file.name) if weights_file else None,
        "sha256": file_sha256(weights_file) if weights_file else None,
        "parameters": sum(p.numel() for p in unet.parameters()),
        "sample_size": unet.config.sample_size,
        "scheduler_class": config.get("_class_name"),
    }
