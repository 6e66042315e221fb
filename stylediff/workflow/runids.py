"""The run-id grammar: how one combination of an experiment's axes is written as a run id and read back.

**Run ids** are readable slugs of a run's axes joined by ``__``
(``starry_night__relu1_1-relu2_1__gram__s0``), written and read here only (:func:`run_id`,
:func:`parse_run_id`, :func:`split_run`; round-trip tested, also on every committed table). Each function
takes an experiment spec (:class:`stylediff.workflow.experiments.Experiment`: its ``name``, ``axes``,
``batched`` axes and ``canonical`` form).

**Kinds.** How a value is written, read back and given to a verb is its axis' kind: a :class:`Codec`
registered in :data:`CODECS` (name, ``encode``, ``decode``, ``mark``, ``render``). A kind with a
``mark`` writes every value so that the mark (a regular expression) matches it: ``s3`` (seed), ``g0p1``
(scale), ``w0-1`` (window), ``p-a_cat-3f2a1c`` (prompt), ``n-clip-vit-b16`` (network).

**The axis rule** (:data:`AXIS_RULE`; ``Experiment`` checks it when a spec is made). A run id has one part
per axis, in the spec's order, except that an *optional* axis (one with a ``default``) is left out at its
default, so ids written before the axis existed stay valid. An id reads back one way because

1. an optional axis is of a marked kind, and is present exactly when the part at its place carries its
   mark; an experiment may have at most one unmarked optional axis, whose presence the number of parts
   tells;
2. the batched axes (consecutive) and the grouped axis (the last) are required: a job's name is the run
   id around them.

Nothing else constrains the order: an optional axis may sit before or after the batched ones.
(A value that happens to look like the mark of an absent axis before it, say a style image named
``n-x``, would read wrongly; :func:`stylediff.workflow.plan.build` reads every id back and names such a
value.)

Snakemake's ``Paramspace`` was considered and not used: its patterns have one wildcard per column for
every row (``style~a/loss~b/...``), while a job here is a run id with the batched part left out
(``{head}__{tail}``), which Paramspace cannot express; its values are ``str()`` of the column (a layer
set or a window needs a slug anyway); and keeping the grammar keeps every committed table and figure
name valid. Torch-free.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..core.errors import ConfigError
from ..core.registry import Registry
from .image_specs import image_slug

SEPARATOR = "__"
IMAGE = "image"
"""The axis kind of an image spec (a file or ``skimage:NAME``)."""
AXIS_RULE = (
    "an optional axis (with a default) has a marked kind, but for at most one per experiment; "
    "the batched axes (consecutive) and the grouped axis (last) have no default"
)
"""The axis rule of the module docstring, in the one line of the error that names it."""


def model_slug(model: str) -> str:
    """The run-id slug of a model: ``google/ddpm-cifar10-32`` and ``models/ddpm-cifar10-32`` both -> ``ddpm-cifar10-32``.

    Args:
        model: a hub id or a folder.

    Returns:
        Its last path part, letters, digits, ``_`` and ``-`` only (``model`` when nothing is left).
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(model).rstrip("/").split("/")[-1]).strip("_") or "model"


def _slug(text: Any) -> str:
    return re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)))


def _number(value: float) -> str:
    return f"{float(value):g}".replace("e+", "e").replace("e-", "em").replace(".", "p")


class Codec:
    """One kind of axis value: how it is written in a run id, read back and given to a verb.

    How it is written in a run id (``encode``), what a table shows of it (``decode``), the ``mark`` every
    written value matches (None: any slug) and the text a verb's flag takes (``render``; None leaves the
    flag out).
    """

    name: ClassVar[str]
    mark: ClassVar[str | None] = None
    _pattern: ClassVar[re.Pattern | None] = None

    def __init_subclass__(cls, **kwargs):
        """Compile the subclass's ``mark``."""
        super().__init_subclass__(**kwargs)
        cls._pattern = re.compile(cls.mark) if cls.mark else None

    def encode(self, value: Any) -> str:
        """A value as its run-id part.

        Args:
            value: the value as in the config.

        Returns:
            The part (default: a slug of its text).
        """
        return _slug(value)

    def decode(self, text: str) -> Any:
        """A run-id part as a table shows it.

        Args:
            text: the part.

        Returns:
            The value (default: the text).
        """
        return text

    def recognises(self, text: str) -> bool:
        """Whether ``text`` carries the kind's mark (any text when it has none).

        Args:
            text: a run-id part.

        Returns:
            True when it can be a value of this kind.
        """
        return self._pattern is None or self._pattern.fullmatch(text) is not None

    def render(self, value: Any, plan: Any) -> str | None:
        """The text a verb's flag takes.

        Args:
            value: the value as in the config.
            plan: the plan (an image kind reads its files from it).

        Returns:
            The text, or None to leave the flag out.
        """
        return str(value)


CODECS: Registry = Registry("axis kind", ConfigError)
"""Every run-id kind by name (``Axis(kind=...)``)."""


@CODECS.register
class Name(Codec):
    """A name, as is (a loss, a method, a layer)."""

    name = "name"


@CODECS.register
class Seed(Codec):
    """A seed: ``s0`` in an id, the integer in a table."""

    name, mark = "seed", r"s\d+"

    def encode(self, value: Any) -> str:
        """``s<seed>``."""
        return f"s{int(value)}"

    def decode(self, text: str) -> int:
        """The seed."""
        return int(text[1:])


@CODECS.register
class Scale(Codec):
    """A guidance scale: ``g0p03`` (``p`` for the point, ``em`` for a negative exponent) in an id."""

    name, mark = "scale", r"g-?(\d[\dp]*(em?\d+)?|inf)"

    def encode(self, value: Any) -> str:
        """``g`` and the number, ``.`` as ``p``."""
        return f"g{_number(value)}"

    def decode(self, text: str) -> float:
        """The number."""
        return float(text[1:].replace("p", ".").replace("em", "e-"))


@CODECS.register
class Window(Codec):
    """Two fractions of the trajectory (or the ``0-1`` a table shows); ``--window 0.0,1.0``."""

    name, mark = "window", r"w[\dp]+-[\dp]+"

    def encode(self, value: Any) -> str:
        """``w0p3-0p7``."""
        text = value if isinstance(value, str) else "-".join(f"{float(v):g}" for v in value)
        return "w" + text.replace(".", "p")

    def decode(self, text: str) -> str:
        """``0.3-0.7``."""
        return text[1:].replace("p", ".")

    def render(self, value: Any, plan: Any) -> str:
        """``0.3,0.7``."""
        return ",".join(str(float(v)) for v in value)


@CODECS.register
class Layers(Codec):
    """A layer set: ``relu1_1-relu2_1`` in an id, ``relu1_1,relu2_1`` on a command line."""

    name = "layers"

    def encode(self, value: Any) -> str:
        """The layers joined by ``-``."""
        return "-".join(value) if isinstance(value, (list, tuple)) else str(value)

    def render(self, value: Any, plan: Any) -> str:
        """The layers joined by ``,``."""
        return ",".join(value) if isinstance(value, (list, tuple)) else str(value)


@CODECS.register
class Image(Codec):
    """An image spec: its slug in an id, its file (the plan's, for ``skimage:NAME``) on a command line."""

    name = IMAGE

    def encode(self, value: Any) -> str:
        """The image's slug (:func:`~stylediff.workflow.image_specs.image_slug`)."""
        return _slug(image_slug(str(value)))

    def render(self, value: Any, plan: Any) -> str:
        """The image's file (the plan's, for ``skimage:NAME``)."""
        return plan.image(str(value))


@CODECS.register
class Model(Codec):
    """A diffusion model: its slug in an id (:func:`model_slug`), the hub id or folder on a command line."""

    name = "model"

    def encode(self, value: Any) -> str:
        """:func:`model_slug`."""
        return _slug(model_slug(value))


@CODECS.register
class Network(Codec):
    """A feature network's registry name after ``n-`` (``n-clip-vit-b16``)."""

    name, mark = "network", r"n-[A-Za-z0-9_-]+"

    def encode(self, value: Any) -> str:
        """``n-<name>``."""
        return "n-" + _slug(value)

    def decode(self, text: str) -> str:
        """The registry name."""
        return text[2:]


@CODECS.register
class Prompt(Codec):
    """A prompt: its first words and a short hash of the whole text (``p-a_cat_on_a-3f2a1c``).

    The empty prompt gives no ``--prompt``.
    """

    name, mark = "prompt", r"p-\w*-[0-9a-f]{6}"

    def encode(self, value: Any) -> str:
        """``p-<first words>-<6 hex digits of its sha256>`` (a slug already in that form stays)."""
        if self.recognises(str(value)):  # the slug a table shows
            return str(value)
        words = re.sub(r"[^A-Za-z0-9]+", "_", str(value)).strip("_")[:24].strip("_")
        return f"p-{words}-{hashlib.sha256(str(value).encode()).hexdigest()[:6]}"

    def render(self, value: Any, plan: Any) -> str | None:
        """The prompt, or None (no ``--prompt``) for the empty one."""
        return str(value) or None


@dataclass(frozen=True)
class Axis:
    """One axis of an experiment: a plan column, a config key, its run-id kind and its verb flag.

    Args:
        name: the plan column.
        key: the config key that lists its values.
        kind: a :data:`CODECS` name (``name``, ``seed``, ``scale``, ``window``, ``layers``, ``image``,
            ``model``, ``network``, ``prompt``).
        default: a value left out of run ids (ids written before the axis existed stay valid; see the
            axis rule).
        fallback: config key whose value is the axis' only value when its own key is absent.
        flag: the verb's option that takes the value (``--style``), rendered by the kind (an image as its
            file, a layer set comma-joined, the grouped axis' values comma-joined).
        argv: ``(plan, spec, values) -> [args]`` where a value is not simply ``flag value`` (the guidance
            network: VGG-19 takes its weights flags, another network is named).

    Raises:
        ConfigError: an unknown kind.
    """

    name: str
    key: str
    kind: str = "name"
    default: Any = None
    fallback: str | None = None
    flag: str | None = None
    argv: Callable[[Any, Any, dict], list[str]] | None = None
    codec: Codec = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        """Look up the kind's codec."""
        object.__setattr__(self, "codec", CODECS.lookup(self.kind)())

    @property
    def optional(self) -> bool:
        """Whether the axis has a default (left out of run ids at that value)."""
        return self.default is not None

    def encode(self, value: Any) -> str:
        """The value's run-id part (:meth:`Codec.encode`)."""
        return self.codec.encode(value)

    def decode(self, text: str) -> Any:
        """The value a table shows: numbers for seeds and scales, slugs for the rest."""
        return self.codec.decode(text)

    def recognises(self, text: str) -> bool:
        """Whether ``text`` can be this axis' part of a run id (carries the kind's mark, if it has one)."""
        return self.codec.recognises(text)


class Spec(Protocol):
    """What the grammar reads of an experiment spec (:class:`stylediff.workflow.experiments.Experiment`)."""

    name: str
    axes: tuple[Axis, ...]
    batched: str | tuple[str, ...]
    canonical: Callable[[dict], dict]


def defaults(spec: Spec) -> dict[str, Any]:
    """The values an id leaves out: each optional axis at its default.

    Args:
        spec: an experiment spec.

    Returns:
        ``{axis: default}``.
    """
    return {axis.name: axis.default for axis in spec.axes if axis.optional}


def run_id(spec: Spec, values: dict[str, Any]) -> str:
    """The run id of one combination of ``spec``'s axes.

    Args:
        spec: an experiment spec.
        values: ``{axis: value}`` (default-valued axes may be missing).

    Returns:
        The parts of the present axes joined by ``__``.
    """
    values = spec.canonical({**defaults(spec), **values})
    return SEPARATOR.join(
        axis.encode(values[axis.name])
        for axis in spec.axes
        if not (axis.optional and values[axis.name] == axis.default)
    )


def _layouts(axes: tuple[Axis, ...], parts: list[str]) -> list[list[Axis]]:
    """Every way to read ``parts`` as the present axes, by the axis rule.

    Every part carries its kind's mark; a marked optional axis is present exactly when its part carries
    the mark; an unmarked one is tried both ways.
    """
    found, todo = [], [(0, 0, ())]
    while todo:
        i, j, taken = todo.pop()
        while i < len(axes):
            axis = axes[i]
            fits = j < len(parts) and axis.recognises(parts[j])
            if axis.optional and not (fits and axis.codec.mark is not None):
                if fits:  # unmarked: present is the other reading
                    todo.append((i + 1, j + 1, (*taken, i)))
                i += 1
            elif fits:
                i, j, taken = i + 1, j + 1, (*taken, i)
            else:
                break
        else:
            if j == len(parts):
                found.append([axes[k] for k in taken])
    return found


def present_axes(spec: Spec, run: str) -> list[Axis]:
    """The axes that have a part in ``run`` (the others are optional and at their defaults).

    Args:
        spec: an experiment spec.
        run: a run id.

    Returns:
        The axes, in order.

    Raises:
        ConfigError: the id reads two ways, or as no combination of the axes.
    """
    return _layout(spec, run)[1]


def _layout(spec: Spec, run: str) -> tuple[list[str], list[Axis]]:
    parts = run.split(SEPARATOR)
    layouts = _layouts(tuple(spec.axes), parts)
    if len(layouts) == 1:
        return parts, layouts[0]
    optional = ", ".join(axis.name for axis in spec.axes if axis.optional) or "none"
    reason = "reads two ways" if layouts else f"does not read as the axes of a {spec.name} run"
    raise ConfigError(
        f"run id {run!r} {reason} ({SEPARATOR.join(axis.name for axis in spec.axes)}; optional: {optional})"
    )


def parse_run_id(spec: Spec, run: str) -> dict[str, Any]:
    """Axis values of a run id, as :meth:`Axis.decode` shows them.

    Optional axes left out of the id take their defaults (see the axis rule).

    Args:
        spec: an experiment spec.
        run: a run id.

    Returns:
        ``{axis: value}`` for every axis.

    Raises:
        ConfigError: the id does not read as the spec's axes, or a part is not of its axis's kind.
    """
    parts, present = _layout(spec, run)
    values = defaults(spec)
    for axis, part in zip(present, parts):
        try:
            values[axis.name] = axis.decode(part)
        except ValueError:
            raise ConfigError(f"run id {run!r}: {part!r} is not a {axis.kind} ({spec.name} axis {axis.name})") from None
    return {axis.name: values[axis.name] for axis in spec.axes}


def split_run(spec: Spec, run: str) -> tuple[str, str, str]:
    """A run id cut around its batched axes.

    Args:
        spec: an experiment spec.
        run: a run id.

    Returns:
        ``(head, batched part, tail)``: the parts before the batched axes, theirs, and the rest.
    """
    parts, present = _layout(spec, run)
    batched = (spec.batched,) if isinstance(spec.batched, str) else spec.batched
    names = [axis.name for axis in present]
    start, end = names.index(batched[0]), names.index(batched[-1]) + 1
    return (SEPARATOR.join(parts[:start]), SEPARATOR.join(parts[start:end]), SEPARATOR.join(parts[end:]))
