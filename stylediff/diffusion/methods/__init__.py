"""The guidance methods, one file each, registered by name in :data:`METHODS`.

Adding one = one file with a :class:`~.base.GuidanceMethod` subclass plus its line below (and the schema
and docs lines that ``tests/test_registries.py`` names: ``docs/concepts.md``, "Adding things"); the CLI's
``--method`` choices and ``stylediff methods`` follow from :data:`METHODS`.
"""

from __future__ import annotations

from typing import Any

from ...core.errors import ConfigError
from ...core.registry import Registry
from .attention_distillation import AttentionDistillation
from .base import Evaluations, GuidanceMethod, StepContext
from .classifier import ClassifierGuidance
from .dps import DPSGuidance
from .freedom import FreeDoMGuidance
from .lgd import LGDGuidance
from .mpgd import MPGDGuidance
from .tfg import TFGGuidance
from .through_unet import ThroughUNetGuidance
from .ugd import UniversalGuidance
from .x0 import X0Guidance

METHODS = Registry("guidance method", ConfigError)
for _method in (
    X0Guidance,
    ThroughUNetGuidance,
    ClassifierGuidance,
    DPSGuidance,
    FreeDoMGuidance,
    UniversalGuidance,
    MPGDGuidance,
    TFGGuidance,
    LGDGuidance,
    AttentionDistillation,
):
    METHODS.register(_method)

__all__ = ["METHODS", "Evaluations", "GuidanceMethod", "StepContext", "describe", "make_method"]


def make_method(name: str, **knobs: Any) -> GuidanceMethod:
    """The method ``name`` with ``knobs`` (its dataclass fields).

    Args:
        name: a registered method (:data:`METHODS`: ``x0``, ``through_unet``, ``classifier``, ``dps``,
            ``freedom``, ``ugd``, ``mpgd``, ``tfg``, ``lgd``, ``attention_distillation``).
        **knobs: ``scale`` and the method's knobs (``stylediff methods`` lists them); None values keep the
            defaults.

    Returns:
        The method, ready for :class:`~stylediff.diffusion.sampler.GuidedSampler`.

    Raises:
        ConfigError: one line, for an unknown method or knob (naming the method's knobs).

    Example:
        ```python
        make_method("x0", scale=0.03)
        make_method("tfg", scale=500, rho=0.25, mu=2.0, variance=0.1)  # TFG's four knobs
        make_method("freedom", window=(0.3, 0.7), recurrence=3)
        ```
    """
    cls = METHODS.lookup(name)
    allowed = {"scale", *cls.knobs()}
    given = {key: value for key, value in knobs.items() if value is not None}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(
            f"method {name} has no knob {', '.join('--' + k.replace('_', '-') for k in unknown)}; "
            f"its knobs: {', '.join('--' + k.replace('_', '-') for k in sorted(allowed))}"
        )
    return cls(**given)


def describe() -> list[dict[str, Any]]:
    """What ``stylediff methods`` prints: one dict per method.

    On a model with classifier-free guidance a UNet evaluation is one call on the doubled (CFG) batch; on
    a latent model an objective evaluation is a VAE decode plus the loss (backward: through both).

    Returns:
        Per method: name, paper, reference code, whether the gradient goes through the UNet, evaluations
        of one guided pass and of a 50-step run at the defaults, passes per guided step, knobs, scale
        range, how the loss reads x̂0 here and in the reference, what it does on latent models.
    """
    rows = []
    for name, cls in METHODS.items():
        method = cls()
        total = Evaluations()
        for index in range(50):
            total = total + method.evaluations(index, 50)
        rows.append(
            {
                "name": name,
                "paper": cls.paper,
                "reference": cls.reference,
                "differentiates_unet": cls.differentiates_unet,
                "evaluations": method.pass_evaluations().to_dict(),
                "recurrence": method.recurrence,
                "evaluations_50_steps": total.to_dict(),
                "defaults": {"scale": method.scale, **cls.knobs()},
                "scale_range": list(cls.scale_range),
                "note": cls.note,
                "clamp": cls.clamp,
                "latent": cls.latent_note,
            }
        )
    return rows
