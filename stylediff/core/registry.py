"""Registries: each style loss, guidance method and metric is named once, on its class, and found here.

A :class:`Registry` maps a name to the class that carries it. Everything that lists names (the CLI's
choices, ``stylediff methods``, the schema test, the report's metric columns) reads the registry, so
adding a loss or a method is one class plus its ``@REGISTRY.register`` line. This module imports
nothing heavy.
"""

from __future__ import annotations

from typing import TypeVar

from .errors import StylediffError

T = TypeVar("T")


class Registry(dict):
    """``{name: class}`` for one kind of thing.

    ``lookup(name)`` fails in one line naming the valid names (``get`` keeps the meaning of
    :meth:`dict.get`).

    Args:
        kind: what is registered, for messages (``style loss``).
        error: the error class ``lookup`` raises for an unknown name.
        plural: the plural of ``kind`` (default ``kind + "s"``).
    """

    def __init__(self, kind: str, error: type[StylediffError], plural: str | None = None):
        super().__init__()
        self.kind, self.error, self.plural = kind, error, plural or f"{kind}s"

    def register(self, cls: T) -> T:
        """Class decorator: register ``cls`` under ``cls.name`` (each name once).

        Args:
            cls: a class with a non-empty ``name`` attribute.

        Returns:
            ``cls`` unchanged.

        Raises:
            TypeError: ``cls`` has no name, or the name is registered already.
        """
        name = getattr(cls, "name", None)
        if not name:
            raise TypeError(f"{cls.__name__} has no name to register as a {self.kind}")
        if name in self:
            raise TypeError(f"{self.kind} {name!r} is registered twice ({self[name].__name__}, {cls.__name__})")
        self[name] = cls
        return cls

    def lookup(self, name: str):
        """The class registered as ``name``.

        Args:
            name: a registered name.

        Returns:
            The class.

        Raises:
            StylediffError: ``self.error``, in one line naming the valid names, for an unknown name.
        """
        try:
            return self[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(self)}") from None
