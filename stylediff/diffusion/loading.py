"""A diffusion model's parts and its scheduler config from a local folder or a hub id.

Offline errors say what to run; the provenance every sidecar records is kept (id, revision, weights
sha256).

Pixel-space ``UNet2DModel`` models load in both layouts, locally and from the Hugging Face cache: the
pipeline layout (``unet/`` and ``scheduler/``, as ``DDPMPipeline.save_pretrained`` writes and
``google/ddpm-*`` repositories have) and the flat layout (``config.json``, ``scheduler_config.json``
and the weights at the root, as ``UNet2DModel.from_pretrained(id)`` caches a flat repository).
Latent models are pipeline folders whose ``model_index.json`` names a ``vae``/``vqvae``
(Stable Diffusion 1.x/2.x/XL, ``LDMPipeline``; :func:`load_latent`). Weights are never initialised
at random. What a loaded model is to the sampler is :mod:`.adapters`' business (:meth:`DiffusionModel.adapter`).
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ConfigError, WeightsError
from ..core.provenance import file_sha256
from ..weights.hub import PARTS, WEIGHT_SUFFIXES, hub_offline, latent_index
from .schedule import make_scheduler

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
LAYOUTS = ("unet", None)
"""Subfolders tried for the UNet and (``scheduler``/root) its scheduler config: pipeline layout first."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class DiffusionModel:
    """A loaded UNet with its scheduler config, the other parts of a latent pipeline and their provenance.

    Args:
        unet: a diffusers ``UNet2DModel`` or ``UNet2DConditionModel``, frozen.
        scheduler_config: the model's scheduler config.
        info: where it came from (id, source, revision, weight files and their sha256): the sidecar's.
        components: a latent pipeline's other parts (``vae``, ``text_encoder``, ``tokenizer``…; empty for
            a pixel model).
    """

    unet: Any  # diffusers.UNet2DModel or UNet2DConditionModel
    scheduler_config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_size(self) -> tuple[int, int]:
        """The side of the images it makes (latent side × the VAE's factor for latent models)."""
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        vae = self.components.get("vae")
        factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        return tuple(side * factor for side in size)

    def scheduler(self, name: str = "ddim"):
        """A fresh scheduler built from the model's scheduler config.

        Args:
            name: ``ddim`` or ``ddpm``.

        Returns:
            A diffusers ``DDIMScheduler`` or ``DDPMScheduler``.
        """
        return make_scheduler(name, self.scheduler_config)

    def adapter(self, scheduler, **options):
        """The sampler's view of this model (:func:`.adapters.make_adapter`).

        Args:
            scheduler: the scheduler it will sample with (prompts need it).
            **options: the adapter's options (prompt, negative prompt, CFG scale, decoder…).

        Returns:
            A ``PixelModel`` or ``LatentModel``.
        """
        from .adapters import make_adapter

        return make_adapter(self, scheduler, **options)


def _check_path_like(text: str) -> None:
    """A model written as a path that is no folder fails here, at once, with the nearest local model folders.

    ``models/nope`` also reads as a hub id (owner/name), and the hub would be asked for it, with retries,
    for over a minute. Path-like: it starts with ``.``, ``/`` or ``~``, ends with a separator, has more
    than two parts, or its first part is an existing folder.
    """
    parts = [part for part in re.split(r"[/\\]", text) if part]
    path = Path(text).expanduser()
    path_like = (
        text.startswith((".", "/", "~"))
        or text.endswith(("/", "\\"))
        or len(parts) > 2
        or (len(parts) > 1 and Path(parts[0]).expanduser().is_dir())
    )
    if path.exists() or not path_like:
        return
    folder = next((parent for parent in path.parents if parent.is_dir()), Path("."))
    names = sorted(
        child.name
        for child in folder.iterdir()
        if any((child / name).is_file() for name in ("model_index.json", "config.json", "unet/config.json"))
    )
    # the names like the one typed, else every model folder there (a few)
    nearest = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6) or names[:5]
    models = ", ".join((folder / name).as_posix() for name in nearest)
    hint = f"nearest local models: {models}" if nearest else f"no diffusers model folder in {folder}/"
    raise WeightsError(f"model folder {text}: no such folder ({hint})")


def _not_found(model: str, reason: str, offline: bool) -> WeightsError:
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    where = "HF_HUB_OFFLINE=1 / --offline" if offline else "it could not be downloaded"
    return WeightsError(
        f"model {model} is not in the Hugging Face cache (HF_HOME={home}) and {where}: run "
        f"`stylediff weights fetch --models {model}` (or `hf download {model}`) on a machine with internet and "
        f"the same HF_HOME, or pass a local diffusers folder ({reason})"
    )


def _quietly(load, *args, **kwargs):
    """Call a diffusers/transformers loader without the notices that are not the user's business.

    The ``low_cpu_mem_usage``/accelerate hint (we pass ``low_cpu_mem_usage=False``: these models are
    small), huggingface_hub's deprecation of an argument diffusers still passes, and transformers'
    progress bar.
    """
    try:  # transformers is optional: only text-conditioned (latent) models need it
        from transformers.utils import logging as transformers_logging
    except ImportError:
        transformers_logging = None
    bar = transformers_logging is not None and transformers_logging.is_progress_bar_enabled()
    if bar:
        transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            return load(*args, **kwargs)
    finally:
        if bar:
            transformers_logging.enable_progress_bar()


def load_model(
    model: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
) -> DiffusionModel:
    """Load a diffusion model (pixel ``UNet2DModel``, or a latent pipeline) from a local folder or a hub id.

    Args:
        model: a local diffusers folder (pipeline layout ``unet/`` + ``scheduler/``, flat, or a latent
            pipeline with ``model_index.json``) or a hub id (``google/ddpm-cifar10-32``) in the Hugging
            Face cache.
        device: where to put the parts.
        revision: a hub branch, tag or commit.
        cache_dir: the Hugging Face cache (default: ``$HF_HOME/hub``).
        local_files_only: read the cache only (default: as ``HF_HUB_OFFLINE``).

    Returns:
        The model: its UNet, scheduler config, latent parts and provenance, frozen on ``device``.

    Raises:
        WeightsError: one line: a path-like name that is no folder (with the nearest local model
            folders), a file, a folder that is no diffusers model, or a hub id that is not cached and
            cannot be downloaded (the message says what to run).

    Example:
        ```python
        model = load_model("models/ddpm-emoji-faces-32")          # a folder of this repository
        model = load_model("google/ddpm-cifar10-32", "cuda")       # a hub id, from the HF cache
        scheduler = model.scheduler("ddim")
        sampler = GuidedSampler(model.adapter(scheduler), scheduler, objective, make_method("x0"))
        ```
    """
    _check_path_like(str(model))  # before anything reaches the hub
    from diffusers import DDPMScheduler, UNet2DModel

    text = str(model)
    path = Path(text).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise WeightsError(f"model {text} is a file: pass a diffusers folder (unet/ and scheduler/) or a hub id")
        if not ((path / "unet" / "config.json").is_file() or (path / "config.json").is_file()):
            raise WeightsError(
                f"{text} is not a diffusers model folder: expected unet/config.json and "
                "scheduler/scheduler_config.json (as DDPMPipeline.save_pretrained writes)"
            )
        source: str | Path = path
    elif _HUB_ID.match(text) and not text.startswith((".", "~")):
        source = text
    else:
        raise WeightsError(
            f"model folder {text} not found: pass an existing diffusers folder or a hub id such as "
            "google/ddpm-cifar10-32"
        )
    offline = bool(local_files_only) or hub_offline()
    kwargs: dict[str, Any] = {"revision": revision, "cache_dir": cache_dir}
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only
    index = latent_index(text, path if local else None, kwargs)
    if index is not None:
        return load_latent(text, path if local else None, index, device, kwargs, offline)

    def attempt(loader, subfolders):
        """Try every layout; the first error does not stop the search.

        Offline, a missing pipeline subfolder raises the same errors as a missing model.
        """
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

    unet, unet_sub = attempt(lambda src, **kw: UNet2DModel.from_pretrained(src, low_cpu_mem_usage=False, **kw), LAYOUTS)
    config, _ = attempt(
        lambda src, **kw: DDPMScheduler.load_config(src, **kw), ("scheduler", None) if unet_sub else (None, "scheduler")
    )
    unet = unet.to(device).eval().requires_grad_(False)
    return DiffusionModel(
        unet=unet,
        scheduler_config=dict(config),
        info=_provenance(text, path, local, unet, unet_sub, config, revision, cache_dir),
    )


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


# -- latent pipelines (which parts, and their hub patterns: weights.hub) ----------------------------
def _part_class(name: str, spec) -> Any:
    library, allowed = PARTS[name]
    declared = spec[1] if isinstance(spec, (list, tuple)) and len(spec) == 2 else None
    if declared not in allowed:
        raise WeightsError(f"{name} is a {declared}; stylediff loads a {name} of class {' or '.join(allowed)}")
    try:
        module = __import__(library)
    except ImportError:
        raise WeightsError(f"the {name} of this model needs the {library} package: pip install {library}") from None
    return getattr(module, declared)


def load_latent(text: str, path: Path | None, index: dict, device, kwargs: dict, offline: bool) -> DiffusionModel:
    """The parts of a latent pipeline, each ``from_pretrained`` from its subfolder, frozen on ``device``.

    A ``vqvae`` (``LDMPipeline``) is the model's ``vae`` to the rest of stylediff.

    Args:
        text: the model as given (for messages and provenance).
        path: the local folder, or None for a hub id.
        index: its model_index.json.
        device: where to put the parts.
        kwargs: the hub arguments (revision, cache_dir, local_files_only).
        offline: whether the hub may not be asked (for the message of a missing part).

    Returns:
        The model.

    Raises:
        WeightsError: a part cannot be loaded, its package is missing, or a text encoder comes without
            a tokenizer.
    """
    from diffusers import DDPMScheduler

    subfolders = {("vae" if name == "vqvae" else name): name for name in PARTS if index.get(name, [None])[0]}
    if "text_encoder" in subfolders and "tokenizer" not in subfolders:
        raise WeightsError(f"{text} has a text encoder but no tokenizer in its model_index.json")
    source = str(path) if path is not None else text
    loaded = {
        name: _load_part(text, path, subfolder, index[subfolder], device, kwargs, offline)
        for name, subfolder in subfolders.items()
    }
    if "text_encoder" not in loaded and type(loaded["unet"]).__name__ == "UNet2DConditionModel":
        raise WeightsError(
            f"{text} has a text-conditioned UNet but no text encoder (text_encoder/ in "
            "model_index.json): copy the whole pipeline folder"
        )
    try:
        config = _quietly(DDPMScheduler.load_config, source, subfolder="scheduler", **kwargs)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot load the scheduler config of {text}: {str(exc).splitlines()[0]}") from None
    info = {
        "id": text,
        "source": "local" if path is not None else "hub",
        "path": str(path.resolve()) if path is not None else None,
        "layout": "pipeline",
        "pipeline_class": index.get("_class_name"),
        "revision": kwargs.get("revision"),
        "sample_size": loaded["unet"].config.sample_size,
        "scheduler_class": config.get("_class_name"),
        "components": {},
    }
    for name, part in loaded.items():
        folder, commit = _part_folder(text, path, subfolders[name], kwargs)
        info["revision"] = commit or info["revision"]
        info["components"][name] = {
            "class": type(part).__name__,
            "subfolder": subfolders[name],
            "parameters": sum(p.numel() for p in part.parameters()) if isinstance(part, torch.nn.Module) else None,
            "files": _weight_files(folder),
        }
    options = {"force_zeros_for_empty_prompt": index.get("force_zeros_for_empty_prompt", True)}
    return DiffusionModel(
        unet=loaded["unet"], scheduler_config=dict(config), info=info, components={**loaded, "options": options}
    )


def _load_part(text: str, path: Path | None, subfolder: str, spec: list, device, kwargs: dict, offline: bool):
    """One part of a latent pipeline from its subfolder, frozen on ``device``.

    ``spec``: its ``[library, class]`` in model_index.json.
    """
    if path is not None and not (path / subfolder).is_dir():
        raise WeightsError(
            f"{text} names a {subfolder} ({spec[1]}) in model_index.json but has no {subfolder}/ "
            "folder: copy the whole pipeline folder"
        )
    extra = {"low_cpu_mem_usage": False} if spec[0] == "diffusers" else {}
    try:
        part = _quietly(
            _part_class(subfolder, spec).from_pretrained,
            str(path) if path is not None else text,
            subfolder=subfolder,
            **extra,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if path is not None:
            raise WeightsError(f"cannot load {subfolder} of {text}: {reason}") from None
        raise _not_found(text, reason, offline) from None
    return part.to(device).eval().requires_grad_(False) if isinstance(part, torch.nn.Module) else part


def _weight_files(folder: Path | None) -> dict[str, str]:
    """``{file name: sha256}`` of the weight files in ``folder`` (none when it is not on disk)."""
    if folder is None:
        return {}
    return {
        file.name: file_sha256(file)
        for file in sorted(folder.iterdir())
        if file.is_file() and file.name.endswith(WEIGHT_SUFFIXES)
    }


def _part_folder(text: str, path: Path | None, subfolder: str, kwargs: dict) -> tuple[Path | None, str | None]:
    """Where a part's files are on disk (a local subfolder, or its hub-cache snapshot) and the commit."""
    if path is not None:
        return (path / subfolder if subfolder else path), None
    from huggingface_hub import try_to_load_from_cache

    for name in ("config.json", "tokenizer_config.json", "vocab.json"):
        found = try_to_load_from_cache(
            text,
            f"{subfolder}/{name}" if subfolder else name,
            cache_dir=kwargs.get("cache_dir"),
            revision=kwargs.get("revision"),
        )
        if isinstance(found, str):
            parts = Path(found).parts
            commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts else None
            return Path(found).parent, commit
    return None, None


TINY_DECODERS = {"sd": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl"}
"""``--decoder tiny``: TAESD, the ``AutoencoderTiny`` of the model's latent space (hub ids)."""


def load_decoder(
    spec: str,
    model: DiffusionModel,
    device: str | torch.device = "cpu",
    *,
    local_files_only: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Any, dict[str, Any]]:
    """An ``AutoencoderTiny`` for guidance, frozen on ``device``, and its provenance.

    Args:
        spec: ``tiny`` (TAESD for the model's family), or a folder or hub id.
        model: the latent model it decodes for (its latents must be the decoder's).
        device: where to put it.
        local_files_only: read the cache only.
        cache_dir: the Hugging Face cache.

    Returns:
        ``(decoder, provenance)``.

    Raises:
        ConfigError: a pixel model, or a decoder of another latent space.
        WeightsError: the decoder cannot be found or loaded.
    """
    from diffusers import AutoencoderTiny

    if "vae" not in model.components:
        raise ConfigError("--decoder needs a latent model (a VAE); this is a pixel model")
    text = TINY_DECODERS["sdxl" if "text_encoder_2" in model.components else "sd"] if spec == "tiny" else spec
    path = Path(text).expanduser()
    local = path.is_dir()
    if not local and not (_HUB_ID.match(text) and not text.startswith((".", "~"))):
        raise WeightsError(f"decoder {text} not found: pass tiny, an AutoencoderTiny folder or a hub id")
    kwargs: dict[str, Any] = {"cache_dir": cache_dir}
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only
    try:
        decoder = _quietly(
            AutoencoderTiny.from_pretrained, str(path) if local else text, low_cpu_mem_usage=False, **kwargs
        )
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local:
            raise WeightsError(f"cannot load the decoder {text}: {reason}") from None
        raise _not_found(text, reason, bool(local_files_only) or hub_offline()) from None
    if decoder.config.latent_channels != model.unet.config.in_channels:
        raise ConfigError(
            f"decoder {text} decodes {decoder.config.latent_channels}-channel latents; the model's "
            f"have {model.unet.config.in_channels}"
        )
    folder, commit = _part_folder(text, path if local else None, "", kwargs)
    info = {
        "id": text,
        "source": "local" if local else "hub",
        "revision": commit,
        "class": "AutoencoderTiny",
        "files": _weight_files(folder),
    }
    return decoder.to(device).eval().requires_grad_(False), info
