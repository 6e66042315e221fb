"""TFG's CLIP text score: how well a guided sample still matches the prompt it was generated from.

``clip_text_score = max(100 · cos(E_I(x), E_T(prompt)), 0)`` with OpenAI CLIP ViT-B/32 (``openai/clip-vit-base-patch32``),
the CLIP score of Hessel et al. (2021) as torchmetrics' ``CLIPScore`` computes it. It is the counterpart of the
style score in TFG's style-transfer task (the held-out ``heldout_clip_b32_gram`` here): guidance trades one for
the other. Higher is closer to the prompt; a run without a prompt (pixel models, unconditional latent models)
gets no value.

Reference: TFG (Ye et al. 2024, github.com/YWolfeee/Training-Free-Guidance) ``evaluations/image.py``
``ImageEvaluator._compute_clip_score``: torchmetrics 1.4.1 ``CLIPScore(model_name_or_path="openai/clip-vit-base-patch32")``
updated with ``ToTensor()(img) * 255`` of each logged PIL sample and its text, then ``compute()`` = the batch mean
of ``100 · cos`` of the projected, L2-normalised image and text embeddings, clamped at 0. The images go through
transformers 4.36.2's ``CLIPProcessor`` (PIL: shorter side to 224, bicubic; centre crop 224; CLIP mean/std).

Deviations, stated:

* The text is the run's prompt (``config.prompt`` of the output's sidecar). TFG's ``evaluate`` passes
  ``self.args.targets`` (``--target`` split on ``+``: the style image's *path* in ``scripts/style_transfer.sh``),
  not the PartiPrompts lines its ``diffusion/stable_diffusion.py`` ``_prepare_prompts`` generated from; we read
  that as a slip and score against the prompt, which is what a CLIP text score measures.
* One value per image, clamped per image; TFG clamps the batch mean (the same unless an image scores below 0).
* Not computed through torchmetrics: its ``clip_score`` (1.9) takes ``get_image_features`` for a tensor, which
  transformers 5 returns as a model output, and loads models by hub id. The embeddings here are
  ``visual_projection(vision_model(pixels).pooler_output)`` and ``text_projection(text_model(ids).pooler_output)``,
  what ``get_image_features`` / ``get_text_features`` return on transformers 4; the image processor is CLIP's
  PIL one (``CLIPImageProcessorPil`` on transformers 5, ``CLIPImageProcessor`` on 4), fed the saved image as
  uint8, as TFG's PIL samples.
* Prompts longer than CLIP's 77 tokens are truncated by the tokenizer, which keeps the end token (as Stable
  Diffusion's pipeline conditions on them); torchmetrics cuts the token ids after padding, dropping it.

Weights: the Hugging Face cache only (never downloaded while scoring; ``stylediff weights fetch --text-score``
fills it: the full CLIPModel, tokenizer and processor files of the same hub id the ``clip-vit-b32`` network
reads), or a local folder (``CLIPModel`` + ``CLIPTokenizer`` + ``CLIPImageProcessor`` ``save_pretrained``) in
``STYLEDIFF_TEXT_SCORE_MODEL``. ``setting="auto"`` scores when the weights are present, and otherwise says so in
one line on stderr the first time an output has a prompt (runs without prompts stay quiet), recording the
reason in the provenance; ``"true"`` fails fast without them; ``"false"`` computes nothing. Never random weights.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError, WeightsError
from ..core.provenance import file_sha256
from ..networks.clip import WEIGHT_FILES, _local_folder, _weights_file

COLUMN = "clip_text_score"
HUB_ID = "openai/clip-vit-base-patch32"
ENV_VAR = "STYLEDIFF_TEXT_SCORE_MODEL"
FETCH = "stylediff weights fetch --text-score"
SETTINGS = ("auto", "true", "false")
TEXT_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def location() -> str:
    """Where the model is read from: ``$STYLEDIFF_TEXT_SCORE_MODEL`` or the hub id (in the HF cache).

    Returns:
        A folder or a hub id.
    """
    return os.environ.get(ENV_VAR) or HUB_ID


def status() -> str | None:
    """Whether a full CLIP model with its tokenizer and image processor is present (no download, no exception).

    Returns:
        None when it is, else one line saying what is missing and how to get it.
    """
    where = location()
    folder = _local_folder(where)
    if folder is None or not (folder / "config.json").is_file() or _weights_file(folder) is None:
        return f"CLIP weights ({where}) absent: run `{FETCH}` (same HF_HOME), or set {ENV_VAR}"
    tokenizer = (folder / "tokenizer.json").is_file() or all((folder / f).is_file() for f in TEXT_FILES[:2])
    if not tokenizer or not any((folder / f).is_file() for f in PROCESSOR_FILES):
        return f"CLIP tokenizer or image processor ({where}) absent: run `{FETCH}` (same HF_HOME), or set {ENV_VAR}"
    return None


class TextScorer:
    """A loaded CLIP model: ``score(image, prompt)``; text embeddings cached per prompt.

    Args:
        model: a transformers ``CLIPModel``.
        tokenizer: its tokenizer.
        processor: its image processor.
        provenance: what the metrics documents record of it.
        device: where it runs.
    """

    def __init__(self, model, tokenizer, processor, provenance: dict, device: str = "cpu"):
        self.model, self.tokenizer, self.processor = model.float().eval().to(device), tokenizer, processor
        self.device, self._provenance, self._text = device, provenance, {}
        self.model.requires_grad_(False)

    def provenance(self) -> dict:
        """The source, revision, weight file and its sha256."""
        return dict(self._provenance)

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """The unit text embedding of ``prompt`` (truncated to CLIP's context), cached.

        Args:
            prompt: the run's prompt.

        Returns:
            ``(1, D)``.
        """
        if prompt not in self._text:
            limit = self.model.config.text_config.max_position_embeddings
            ids = self.tokenizer([prompt], padding=True, truncation=True, max_length=limit, return_tensors="pt")
            text = self.model.text_model(
                input_ids=ids["input_ids"].to(self.device), attention_mask=ids["attention_mask"].to(self.device)
            )
            self._text[prompt] = F.normalize(self.model.text_projection(text.pooler_output), dim=-1)
        return self._text[prompt]

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings, the images read as uint8 (as saved) through CLIP's processor.

        Args:
            images: ``(N, 3, H, W)`` in [0, 1].

        Returns:
            ``(N, D)``.
        """
        pixels = list((images.clamp(0, 1) * 255).round().to(torch.uint8).cpu())
        values = self.processor(images=pixels, return_tensors="pt")["pixel_values"].to(self.device)
        vision = self.model.vision_model(pixel_values=values)
        return F.normalize(self.model.visual_projection(vision.pooler_output), dim=-1)

    @torch.no_grad()
    def score(self, images: torch.Tensor, prompt: str) -> torch.Tensor:
        """``max(100 · cos(E_I, E_T), 0)`` per image.

        Args:
            images: ``(N, 3, H, W)`` in [0, 1].
            prompt: the text.

        Returns:
            ``(N,)``.
        """
        cosine = (self.image_embedding(images) * self.text_embedding(prompt)).sum(-1)
        return (100 * cosine).clamp_min(0)


def load(device: str = "cpu") -> TextScorer:
    """The CLIP model, tokenizer and image processor of :func:`location`.

    Args:
        device: where the model runs.

    Returns:
        The scorer.

    Raises:
        WeightsError: one line, when absent, when the folder is not a full CLIPModel, or when any of its
            weights would be left random.
    """
    reason, where = status(), location()
    if reason is not None:
        raise WeightsError(f"the CLIP text score needs {reason}")
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    try:  # transformers 5: the PIL backend (TFG's transformers 4.36 processor); transformers 4: the same class
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover
        from transformers import CLIPImageProcessor as ImageProcessor

    folder = _local_folder(where)
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type != "clip":
        raise WeightsError(
            f"{folder} holds a {model_type!r} model, not a full CLIPModel (text + vision): run `{FETCH}`"
        )
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # quiet runs
    try:
        model, info = CLIPModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
        tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        processor = ImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise WeightsError(
            f"cannot load the CLIP text score model from {folder} ({type(exc).__name__}: {message})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if info.get("missing_keys"):
        raise WeightsError(
            f"{folder} lacks {len(info['missing_keys'])} CLIPModel weights (e.g. {sorted(info['missing_keys'])[0]}): "
            f"they would be random; run `{FETCH}`"
        )
    weights = _weights_file(folder)
    provenance = {
        "source": where,
        "revision": None if Path(where).expanduser().is_dir() else folder.name,
        "path": str(weights),
        "sha256": file_sha256(weights),
    }
    return TextScorer(model, tokenizer, processor, provenance, device)


class TextScore:
    """The CLIP text score of a metrics job.

    Whether it is computed (decided once), the model loaded on the first output with a prompt, and what was
    used or why not (for the provenance).

    Args:
        setting: ``auto`` (when present), ``true`` (fail when absent) or ``false``.
        device: where the model runs.

    Raises:
        ConfigError: an unknown setting.
        WeightsError: ``true`` with the model absent.
    """

    def __init__(self, setting: str | bool = "auto", device: str = "cpu"):
        setting = {True: "true", False: "false"}.get(setting, setting)
        if setting not in SETTINGS:
            raise ConfigError(f"text_score must be one of {', '.join(SETTINGS)}, got {setting!r}")
        self.device, self._scorer, self._said = device, None, False
        self.skipped = "switched off (text_score: false)" if setting == "false" else status()
        if setting == "true" and self.skipped is not None:
            raise WeightsError(f"the CLIP text score needs {self.skipped}")

    def scores(self, image: torch.Tensor, prompt: str | None) -> dict[str, float]:
        """The score of one output for its prompt.

        Args:
            image: ``(1, 3, H, W)`` in [0, 1].
            prompt: the run's prompt, or None.

        Returns:
            ``{COLUMN: score}``; empty without a prompt or weights (the skip is said once).
        """
        if not prompt:
            return {}
        if self.skipped is not None:
            if not self._said and not self.skipped.startswith("switched off"):
                print(f"stylediff: CLIP text score skipped: {self.skipped}", file=sys.stderr)
                self._said = True
            return {}
        if self._scorer is None:
            self._scorer = load(self.device)
        return {COLUMN: self._scorer.score(image, prompt).item()}

    def provenance(self) -> dict[str, Any]:
        """The model used, or why it was skipped or unused."""
        if self._scorer is not None:
            return self._scorer.provenance()
        return {"skipped": self.skipped} if self.skipped else {"source": location(), "unused": "no output had a prompt"}


def fetch(cache_dir: str | os.PathLike | None = None, progress=print) -> Path:
    """Download :data:`HUB_ID`'s full CLIPModel weights, tokenizer and processor files into the HF cache.

    Args:
        cache_dir: the cache (default: the hub cache).
        progress: called with one line.

    Returns:
        The snapshot folder.

    Raises:
        WeightsError: one line, when the download fails.
    """
    from huggingface_hub import snapshot_download

    patterns = ["config.json", *TEXT_FILES, *PROCESSOR_FILES]
    try:
        folder = Path(snapshot_download(HUB_ID, allow_patterns=[*patterns, WEIGHT_FILES[0]], cache_dir=cache_dir))
        if _weights_file(folder) is None:  # a repo without safetensors
            folder = Path(snapshot_download(HUB_ID, allow_patterns=[WEIGHT_FILES[1]], cache_dir=cache_dir))
    except Exception as exc:  # offline, HF_HUB_OFFLINE=1, connection errors
        raise WeightsError(
            f"cannot download {HUB_ID} ({type(exc).__name__}): run `{FETCH}` on a machine with internet and "
            "copy its HF_HOME/hub here"
        ) from None
    progress(f"clip text score: {HUB_ID} in {folder}")
    return folder
