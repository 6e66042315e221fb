"""What an experiment spec is: :class:`Experiment` and the pieces of a run's command line.

:class:`Experiment` holds its axes, batched axis, command line, references and figures; the pieces of a
run's command line that come from the config section are :class:`Setting` and the methods'
:class:`Knobs`. The experiments themselves are :mod:`stylediff.workflow.experiments`. Torch-free.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError
from .runids import AXIS_RULE, Axis

REQUIRED: Any = object()
"""A :class:`Setting` without a default: the config section must hold its key."""


def quoted(path: Any) -> str:
    """``path`` as one shell word.

    Args:
        path: anything with a ``str``.

    Returns:
        ``shlex.quote(str(path))``.
    """
    return shlex.quote(str(path))


@dataclass(frozen=True)
class Setting:
    """One flag of every run's command line, read from the experiment's config section: ``--key value``.

    The flag is left out when the value is None or in ``omit``, and when the run's ``when`` axis is empty
    (the negative prompt of a run without a prompt).

    Args:
        key: the config key.
        default: the value when the key is absent (:data:`REQUIRED`: none).
        flag: the flag, when not ``--key`` with ``_`` as ``-``.
        render: writes the value.
        top: read from the config's top level, not the experiment's section.
        omit: values for which the flag is left out.
        when: an axis whose empty value leaves the flag out.
        switch: a bare flag, given when the value is true.
    """

    key: str
    default: Any = REQUIRED
    flag: str = ""
    render: Callable[[Any], str] = str
    top: bool = False
    omit: tuple = ()
    when: str | None = None
    switch: bool = False

    def args(self, plan: Any, spec: Experiment, values: dict) -> list[str]:
        """The flag and its value for one run.

        Args:
            plan: the plan (its ``config``).
            spec: the experiment.
            values: the run's axis values.

        Returns:
            ``[flag, value]``, ``[flag]`` for a switch, or ``[]``.
        """
        source = plan.config if self.top else plan.config[spec.name]
        value = source[self.key] if self.default is REQUIRED else source.get(self.key, self.default)
        if value is None or value in self.omit or (self.when is not None and not values.get(self.when)):
            return []
        flag = self.flag or "--" + self.key.replace("_", "-")
        if self.switch:
            return [flag] if value else []
        return [flag, quoted(self.render(value))]


@dataclass(frozen=True)
class Knobs:
    """``--<knob> value`` for each entry of the run's method's ``knobs:``, a list comma-joined.

    The config's ``methods: [{name, scales, knobs}]``.
    """

    def args(self, plan: Any, spec: Experiment, values: dict) -> list[str]:
        """The knob flags of the run's method.

        Args:
            plan: the plan (its ``config``).
            spec: the experiment.
            values: the run's axis values (its ``method``).

        Returns:
            ``["--knob", "value", …]``.
        """
        entry = method_entries(plan.config[spec.name]).get(values["method"]) or {}
        args = []
        for knob, value in (entry.get("knobs") or {}).items():
            text = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
            args += ["--" + knob.replace("_", "-"), quoted(text)]
        return args


def method_entries(section: dict) -> dict[str, dict]:
    """``methods: [{name, scales, knobs}, …]`` as ``{name: entry}``.

    A list in the config, so that a config file given on the command line replaces the preset's methods
    instead of merging with them.

    Args:
        section: an experiment's config section.

    Returns:
        ``{name: entry}``.
    """
    return {entry["name"]: entry for entry in section["methods"]}


@dataclass(frozen=True)
class Experiment:
    """How one experiment of the config becomes runs, jobs and commands (see the module docstring).

    Args:
        name: its config section and run-id prefix.
        title: its heading in the report.
        verb: the ``stylediff`` verb its runs call.
        axes: its axes, in run-id order.
        batched: the axis, or consecutive axes, one job runs in one process.
        command: the order of a run's flags (axis names, :class:`Setting` and :class:`Knobs` items).
        reference: the axis whose value is the image its outputs are graded against.
        figures: the figure files of a config's experiment.
        baseline: the baseline image of a run (its content image or unguided sample), or None.
        grouped: the last axis, whose values one command line covers.
        canonical: a combination's values as the one run they stand for (scale 0: the unguided sample).
        gpu_always: its run jobs declare ``gpu=1`` even with ``device: cpu``.
        metrics_kind: what ``stylediff metrics --kind`` scores its outputs as (default: its name).
        combinations: the axes' combinations, when they are not the product of the axes' lists.
        category: the Snakemake report's category of its figures (default: its title).
        sized_layers: the layer sets its section's ``size`` must suit.

    Raises:
        ConfigError: the axes break the axis rule (:mod:`stylediff.workflow.runids`).
    """

    name: str
    title: str
    verb: str
    axes: tuple[Axis, ...]
    batched: str | tuple[str, ...]
    """The axis, or consecutive axes, whose values one job runs in one process (each process pays the
    imports and the model loading once)."""
    command: tuple
    """The order of a run's flags: an axis by its name, a :class:`Setting` (or :class:`Knobs`) by itself.
    An axis it does not name comes after them, so a new axis needs only its ``Axis`` line; the order kept
    here keeps the command lines, and so Snakemake's params, of existing runs. ``--no-progress`` ends it."""
    reference: str
    figures: Callable[[dict], list[str]]
    baseline: Callable[[Any, dict], str | None] = lambda plan, values: None
    grouped: str | None = None
    """The last axis, whose values one command line covers (``--seeds 0,1``). With it, a job is every run
    that shares the axes before ``batched`` (sampling pays seconds of diffusers import and model loading
    per process, against about a second of sampling per command at the quick preset's size)."""
    canonical: Callable[[dict], dict] = lambda values: values
    gpu_always: bool = False
    """Whether its run jobs declare ``gpu=1`` even with ``device: cpu`` (sampling is the GPU workload)."""
    metrics_kind: str = ""
    """What ``stylediff metrics --kind`` scores its outputs as (default: its name)."""
    combinations: Callable[[dict, Experiment], list[dict]] | None = None
    """The axes' combinations, when they are not the product of the axes' lists (default)."""
    category: str = ""
    """The Snakemake report's category of its figures (default: its title)."""
    sized_layers: Callable[[dict], list[list[str]]] = lambda section: (
        section.get("layer_sets") or [section.get("layers", [])]
    )
    """The layer sets its section's ``size`` must suit (checked when the section has a size)."""

    def __post_init__(self):
        """Check the axis rule (:mod:`stylediff.workflow.runids`); the category defaults to the title."""
        problems = list(self._problems())
        if problems:
            raise ConfigError(f"experiment {self.name!r}: {'; '.join(problems)} (the axis rule: {AXIS_RULE})")
        object.__setattr__(self, "category", self.category or self.title)

    def _problems(self):
        """What breaks the axis rule (:mod:`stylediff.workflow.runids`) or names no axis."""
        names = [axis.name for axis in self.axes]
        batched = (self.batched,) if isinstance(self.batched, str) else tuple(self.batched)
        grouped = (self.grouped,) if self.grouped else ()
        unknown = [n for n in (*batched, *grouped, *(i for i in self.command if isinstance(i, str))) if n not in names]
        if unknown or len(set(names)) < len(names):
            yield f"{', '.join(map(repr, unknown)) or 'an axis name twice'}: not one axis each"
            return
        yield from (f"axis {axis.name!r} declares no flag" for axis in self.axes if not axis.flag)
        unmarked = [axis.name for axis in self.axes if axis.optional and axis.codec.mark is None]
        if len(unmarked) > 1:
            yield f"the optional axes {', '.join(map(repr, unmarked))} have no mark"
        yield from (
            f"the batched or grouped axis {n!r} has a default" for n in batched + grouped if self.axis(n).optional
        )
        start = names.index(batched[0])
        if names[start : start + len(batched)] != list(batched):
            yield "the batched axes are not consecutive"
        if grouped and names[-1] != self.grouped:
            yield f"the grouped axis {self.grouped!r} is not the last"

    @property
    def kind(self) -> str:
        """What ``stylediff metrics --kind`` scores its outputs as."""
        return self.metrics_kind or self.name

    def axis(self, name: str) -> Axis:
        """The axis called ``name``."""
        return next(axis for axis in self.axes if axis.name == name)

    def values(self, config: dict, axis: Axis) -> list:
        """An axis's values in a config.

        Args:
            config: the whole config.
            axis: one of the experiment's axes.

        Returns:
            The section's list (an entry's ``name`` for ``{name: …}`` entries), else the top-level
            fallback, else the axis's default.

        Raises:
            ConfigError: none of them is there.
        """
        section = config[self.name]
        if section.get(axis.key):  # an entry may be a {name: …, …} object (methods, networks)
            return [entry["name"] if isinstance(entry, dict) else entry for entry in section[axis.key]]
        if axis.fallback is not None:
            return [config[axis.fallback]]
        if axis.default is not None:
            return [axis.default]
        raise ConfigError(f"{self.name}.{axis.key} is missing")

    def command_line(self, plan: Any, values: dict) -> list[str]:
        """A run's verb arguments (without ``--out``).

        Args:
            plan: the plan (its ``config``).
            values: the run's axis values as in the config, the grouped axis' as the list of its values.

        Returns:
            The flags of ``command`` in order, then those of the axes it does not name, then
            ``--no-progress``.
        """
        named = {item for item in self.command if isinstance(item, str)}
        args = []
        for item in [*self.command, *(axis.name for axis in self.axes if axis.name not in named)]:
            args += (
                self._axis_args(self.axis(item), plan, values)
                if isinstance(item, str)
                else item.args(plan, self, values)
            )
        return args + ["--no-progress"]

    def _axis_args(self, axis: Axis, plan: Any, values: dict) -> list[str]:
        if axis.argv is not None:
            return axis.argv(plan, self, values)
        value = values[axis.name]
        texts = [axis.codec.render(v, plan) for v in (value if axis.name == self.grouped else [value])]
        return [] if None in texts else [axis.flag, quoted(",".join(texts))]
