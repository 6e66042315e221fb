"""Style-guided sampling of diffusion models, pixel-space and latent, around diffusers.

* :mod:`.loading`: :func:`load_model` (a local folder or a hub id, either layout, pixel UNets and latent
  pipelines: SD 1.x/2.x/XL, LDM; offline errors; per-component provenance);
* :mod:`.adapters`: the model adapters (:class:`PixelModel`, :class:`LatentModel`): sample shape, the
  denoiser with conditioning and classifier-free guidance inside, ``to_image(x̂0)``;
* :mod:`.schedule`: ᾱ, the ε/x̂0 split, the update's coefficients, re-noising; :func:`make_scheduler`;
* :mod:`.methods`: the guidance rules, one file each, registered in :data:`METHODS`;
* :mod:`.sampler`: :class:`GuidedSampler`, the loop (numbered steps, a callback per step);
* :mod:`.starts`: :class:`ContentStart`, a run from a content image (SDEdit as img2img, or DDIM inversion);
* :mod:`.attention`: the UNet's self-attention for attention-based rules (the adapter's hook);
* :mod:`.distillation`: Attention Distillation's optimisation engine (:func:`engine_for` picks the engine);
* :mod:`.analytic`: a Gaussian data model whose optimal denoiser is closed-form (exactness checks);

* :mod:`.knob_search`: beam search over a method's knobs.
"""

from .adapters import LatentModel, PixelModel
from .distillation import DistillationOptimizer, engine_for
from .loading import DiffusionModel, load_model
from .methods import METHODS, Evaluations, GuidanceMethod, describe, make_method
from .sampler import GuidedSampler, HistoryRecorder, SampleOutput, default_guidance_size
from .schedule import Schedule, make_scheduler
from .starts import ContentStart

__all__ = [
    "METHODS",
    "ContentStart",
    "DiffusionModel",
    "DistillationOptimizer",
    "Evaluations",
    "GuidanceMethod",
    "GuidedSampler",
    "HistoryRecorder",
    "LatentModel",
    "PixelModel",
    "SampleOutput",
    "Schedule",
    "default_guidance_size",
    "describe",
    "engine_for",
    "load_model",
    "make_method",
    "make_scheduler",
]
