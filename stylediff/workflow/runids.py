"""The run-id grammar: how one combination of an experiment's axes is written as a run id and read back.

**Run ids** are readable slugs of a run's axes joined by ``__``
(``starry_night__relu1_1-relu2_1__gram__s0``), written and read here only (:func:`run_id`,
:func:`parse_run_id`, :func:`split_run`; round-trip tested). Each function takes an experiment spec
(:class:`stylediff.workflow.experiments.Experiment`: its ``name``, ``axes``, ``batched`` axes and ``canonical``
form). Snakemake's ``Paramspace`` was considered and not used: its patterns have one wildcard per
column for every row (``style~a/loss~b/...``), while a job here is a run id with the batched part left
out (``{head}__{tail}``), which Paramspace cannot express; its values are ``str()`` of the column (a
layer set or a window needs a slug anyway); and keeping the grammar keeps every committed table and
figure name valid. Torch-free.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.errors import ConfigError
from .image_specs import image_slug

SEPARATOR = "__"
IMAGE = "image"
"""The axis kind of an image spec (a file or ``skimage:NAME``)."""


def model_slug(model: str) -> str:
    """``google/ddpm-cifar10-32`` and ``models/ddpm-cifar10-32`` both -> ``ddpm-cifar10-32``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(model).rstrip("/").split("/")[-1]).strip("_") or "model"


def _clean(text: str) -> str:
    return re.sub(r"_{2,}", "_", text)


def _number(value: float) -> str:
    return f"{float(value):g}".replace("e+", "e").replace("e-", "em").replace(".", "p")


@dataclass(frozen=True)
class Axis:
    """One axis of an experiment: a plan column, a config key and how a value is written in a run id.

    ``kind``: ``image`` (a file or ``skimage:NAME``, written as its slug), ``model``, ``layers`` (a
    list), ``window`` (two fractions), ``seed`` (``s3``), ``scale`` (``g0p1``), ``prompt`` (its first
    words and a short hash of the whole text: ``p-a_cat_on_a-3f2a1c``), ``network`` (a feature network's
    registry name after ``n-``: ``n-clip-vit-b16``) or ``name`` (as is).
    ``default``: a value left out of run ids (ids written before the axis existed stay valid).
    ``fallback``: config key whose value is the axis' only value when its own key is absent.
    """

    name: str
    key: str
    kind: str = "name"
    default: Any = None
    fallback: str | None = None

    def encode(self, value: Any) -> str:
        if self.kind == "seed":
            return f"s{int(value)}"
        if self.kind == "scale":
            return f"g{_number(value)}"
        if self.kind == "window":  # two fractions, or the "0-1" a table shows
            text = value if isinstance(value, str) else "-".join(f"{float(v):g}" for v in value)
            return "w" + text.replace(".", "p")
        if self.kind == "layers":
            return "-".join(value) if isinstance(value, (list, tuple)) else str(value)
        if self.kind == "image":
            return _clean(image_slug(str(value)))
        if self.kind == "model":
            return _clean(model_slug(value))
        if self.kind == "network":
            return "n-" + _clean(re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)))
        if self.kind == "prompt":  # a prompt, or the slug a table shows
            if re.fullmatch(r"p-\w*-[0-9a-f]{6}", str(value)):
                return str(value)
            words = re.sub(r"[^A-Za-z0-9]+", "_", str(value)).strip("_")[:24].strip("_")
            return f"p-{words}-{hashlib.sha256(str(value).encode()).hexdigest()[:6]}"
        return _clean(re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)))

    def decode(self, text: str) -> Any:
        """The value a table shows: numbers for seeds and scales, slugs for the rest."""
        if self.kind == "seed":
            return int(text[1:])
        if self.kind == "scale":
            return float(text[1:].replace("p", ".").replace("em", "e-"))
        if self.kind == "window":
            return text[1:].replace("p", ".")
        if self.kind == "network":
            return text[2:]
        return text

    def recognises(self, text: str) -> bool:
        """Whether ``text`` can be this axis' part of a run id: the marked kinds (prompt, network) only
        their own marks, so that a run id with some optional axes left out reads unambiguously."""
        marks = {"prompt": r"p-\w*-[0-9a-f]{6}", "network": r"n-[A-Za-z0-9_-]+"}
        return self.kind not in marks or re.fullmatch(marks[self.kind], text) is not None


class Spec(Protocol):
    """What the grammar reads of an experiment spec (:class:`stylediff.workflow.experiments.Experiment`)."""

    name: str
    axes: tuple[Axis, ...]
    batched: str | tuple[str, ...]
    canonical: Callable[[dict], dict]


def defaults(spec: Spec) -> dict[str, Any]:
    """The values an id leaves out: each optional axis at its default."""
    return {axis.name: axis.default for axis in spec.axes if axis.default is not None}


def run_id(spec: Spec, values: dict[str, Any]) -> str:
    """The run id of one combination of ``spec``'s axes (default-valued axes may be missing)."""
    values = spec.canonical({**defaults(spec), **values})
    return SEPARATOR.join(
        axis.encode(values[axis.name])
        for axis in spec.axes
        if not (axis.default is not None and values[axis.name] == axis.default)
    )


def parse_run_id(spec: Spec, run: str) -> dict[str, Any]:
    """Axis values of a run id, as :meth:`Axis.decode` shows them. Optional axes left out of the id take
    their defaults; which ones are left out is read from the marks of the others (:meth:`Axis.recognises`)."""
    parts = run.split(SEPARATOR)
    optional = [axis for axis in spec.axes if axis.default is not None]
    missing = len(spec.axes) - len(parts)
    for absent in itertools.combinations(optional, missing) if 0 <= missing <= len(optional) else ():
        present = [axis for axis in spec.axes if axis not in absent]
        if all(axis.recognises(part) for axis, part in zip(present, parts) if axis.default is not None):
            return {
                **{axis.name: axis.decode(part) for axis, part in zip(present, parts)},
                **{axis.name: axis.default for axis in absent},
            }
    raise ConfigError(
        f"run id {run!r} does not have the {len(spec.axes)} parts of a {spec.name} run "
        f"({SEPARATOR.join(axis.name for axis in spec.axes)}), optional: {', '.join(a.name for a in optional) or 'none'}"
    )


def split_run(spec: Spec, run: str) -> tuple[str, str, str]:
    """(head, batched part, tail) of a run id. An optional axis (left out of the id at its default) may
    come before the batched one or after it, not both: the batched part is found counting from the
    side that has none."""
    parts = run.split(SEPARATOR)
    names = [axis.name for axis in spec.axes]
    batched = (spec.batched,) if isinstance(spec.batched, str) else spec.batched
    position, end = names.index(batched[0]), names.index(batched[-1]) + 1
    if any(axis.default is not None for axis in spec.axes[:position]):
        position, end = len(parts) - (len(names) - position), len(parts) - (len(names) - end)
    return (SEPARATOR.join(parts[:position]), SEPARATOR.join(parts[position:end]), SEPARATOR.join(parts[end:]))
