"""Which extra of ``pip install stylediff[EXTRA]`` installs an optional dependency.

Read from the installed package's own metadata (pyproject.toml's ``[project.optional-dependencies]``,
so the extras are named in one place). The CLI turns a ModuleNotFoundError of such a package into one
line naming the extra. Imports nothing heavy.
"""

from __future__ import annotations

import importlib.metadata
import re

DISTRIBUTION_OF = {"PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml"}
"""Import names that differ from their distribution's name (the rest are the same)."""

_REQUIREMENT = re.compile(r"""\s*([A-Za-z0-9._-]+)[^;]*;.*\bextra\s*==\s*["']([^"']+)["']""")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name.

    Args:
        name: a distribution name as written (``Scikit_Image``).

    Returns:
        The name lower-cased with each run of ``-``, ``_`` and ``.`` as one ``-`` (``scikit-image``).
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_for(module: str) -> str | None:
    """The first extra that lists the distribution providing top-level ``module``.

    Args:
        module: an import name; only its top-level package counts (``pandas`` of ``pandas.io``).

    Returns:
        The extra's name, or None when it is a core dependency, not a dependency at all, or stylediff's
        metadata is not installed.
    """
    top = module.split(".")[0]
    wanted = canonical(DISTRIBUTION_OF.get(top, top))
    try:
        requirements = importlib.metadata.requires("stylediff") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match and canonical(match[1]) == wanted:
            return match[2]
    return None


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """The one line the CLI prints for a missing optional dependency.

    Args:
        exc: the error of the failed import.

    Returns:
        ``needs pandas (not installed): pip install 'stylediff[workflow]'``, or None when the missing
        module is not one of an extra's packages.
    """
    extra = extra_for(exc.name or "")
    if extra is None:
        return None
    return f"needs {exc.name.split('.')[0]} (not installed): pip install 'stylediff[{extra}]'"
