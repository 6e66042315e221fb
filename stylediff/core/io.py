"""Atomic file output: every file is written to a temporary sibling and renamed into place.

A job killed at any moment leaves either the previous file or the complete new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError


def ensure_parent(path: str | os.PathLike) -> Path:
    """Create the parent folder of ``path``.

    Args:
        path: the file about to be written.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: the folder cannot be created or is not writable.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable: choose another --out")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the file to write.

    Yields:
        The temporary file to write to (in ``path``'s folder, so the rename is atomic).

    Raises:
        OutputError: the destination folder cannot be created or written.

    Example:
        ```python
        with atomic_path("results/x.png") as tmp:
            image.save(tmp, format="PNG")
        ```
    """
    path = ensure_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically.

    Args:
        path: the file to write.
        text: its whole content.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Args:
        path: the file to write.
        obj: JSON-serialisable data; non-finite floats become null (standard JSON has no NaN).
    """
    write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file.

    Args:
        path: the file.

    Returns:
        The parsed data.
    """
    with open(path) as fh:
        return json.load(fh)


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON stays standard."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
