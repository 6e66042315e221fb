"""What the verbs share: the one-line argument parser, argument types, the common argument groups,
device resolution and the sidecar's ``config`` (the arguments that rerun a command)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import ConfigError
from ..networks.vgg19_layers import POOLINGS, STYLE_LAYERS_GATYS, WEIGHT_SOURCES


def registry(kind: str):
    """The registry of ``kind`` (``loss``, ``network``, ``method``), imported when first asked for (the losses'
    and methods' modules import torch; ``stylediff --help`` must not)."""
    if kind == "loss":
        from ..nst.losses import STYLE_LOSSES

        return STYLE_LOSSES
    if kind == "network":
        from ..networks import NETWORKS

        return NETWORKS
    from ..diffusion.methods import METHODS

    return METHODS


class RegisteredNames(Sequence):
    """The names registered as ``kind``, read from the registry when argparse first looks (``%(choices)s`` in a
    help, the choices check), so building the parser imports nothing and a new registration shows with no
    edit here."""

    def __init__(self, kind: str):
        self.kind = kind

    def __getitem__(self, index):
        return list(registry(self.kind))[index]

    def __len__(self) -> int:
        return len(registry(self.kind))

    def __contains__(self, name) -> bool:
        return name in registry(self.kind)


def registered(kind: str):
    """An argument type: a name of the registry of ``kind`` (:func:`registry`), checked when parsing (the
    registry's one-line message lists the valid names); imports it only then."""

    def check(name: str) -> str:
        from ..core.errors import StylediffError

        try:
            registry(kind).lookup(name)
        except StylediffError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return name

    check.__name__ = kind
    return check


def add_registered(parser, flag: str, kind: str, help: str, **kwargs) -> None:
    """``flag`` taking a name of the registry of ``kind``: checked (one line listing the valid names), its
    choices and help (``%(choices)s``) read from the registry."""
    parser.add_argument(
        flag, type=registered(kind), choices=RegisteredNames(kind), metavar=kind.upper(), help=help, **kwargs
    )


class OneLineParser(argparse.ArgumentParser):
    """Argument errors are one line (what is wrong, where to look), not a usage dump.

    :meth:`defer` adds arguments only when this parser is used (parsing, help): ``stylediff sample``'s
    knob groups come from the guidance methods' classes, which import torch, and ``stylediff --help``
    must not."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--mode x0` was taken as `--model x0`: prefixes are no flags
        super().__init__(*args, **kwargs)
        self._deferred: list = []

    def defer(self, build) -> None:
        """Call ``build(self)`` before this parser first parses or formats its help."""
        self._deferred.append(build)

    def _build(self) -> None:
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._build()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._build()
        return super().format_help()

    def format_usage(self) -> str:
        self._build()
        return super().format_usage()

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    return tuple(positive_int(part) for part in text.split(",") if part.strip())


def scales(text: str) -> str | tuple[int, ...]:
    """``--scales``: ``auto``, ``none`` (one scale) or comma-separated sizes."""
    if text.strip() in ("auto", "none"):
        return "auto" if text.strip() == "auto" else ()
    return int_list(text)


def seed_list(text: str) -> list[int]:
    seeds = [nonnegative_int(part) for part in text.split(",") if part.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated seeds such as 0,1,2, got {text!r}")
    return seeds


def float_list(text: str) -> list[float]:
    return [nonnegative_float(part) for part in text.split(",") if part.strip()]


def window(text: str) -> tuple[float, float]:
    parts = [part for part in text.split(",") if part.strip()]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected START,END fractions such as 0.0,1.0, got {text!r}")
    start, end = (finite_float(part) for part in parts)
    if not 0.0 <= start <= end <= 1.0:
        raise argparse.ArgumentTypeError(f"need 0 <= START <= END <= 1, got {text!r}")
    return start, end


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output PNG; the JSON sidecar is written beside it")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (CPU runs are bit-reproducible)")
    add_network(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_network(parser: argparse.ArgumentParser, device: str = "auto") -> None:
    parser.add_argument("--device", default=device, help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--weights", choices=WEIGHT_SOURCES, default="caffe", help="VGG-19 weight source (when --network is not given)"
    )
    parser.add_argument("--pooling", choices=POOLINGS, default=POOLINGS[0], help="VGG-19 pooling")
    add_registered(
        parser,
        "--network",
        "network",
        "feature network of the losses: %(choices)s (default: VGG-19 of --weights); "
        "CLIP-Gram is --network clip-vit-b16",
        default=None,
    )
    parser.add_argument(
        "--network-path",
        default=None,
        help="local weights (file, folder or hub id) of --network, instead of its default place",
    )


def add_style(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layers",
        default=None,
        help="comma-separated style layers (default: the network's style layers, for VGG-19 "
        f"{','.join(STYLE_LAYERS_GATYS)}; stylediff layers lists them)",
    )
    parser.add_argument(
        "--layer-weights",
        type=float_list,
        default=None,
        help="comma-separated weight per style layer (default: equal, summing to 1)",
    )
    add_registered(parser, "--loss", "loss", "style loss: %(choices)s (default: %(default)s)", default="gram")


def feature_network(args: argparse.Namespace, device):
    """The network ``--network`` names (the VGG-19 of ``--weights`` when it is not given), with ``--pooling``
    where the network takes that option."""
    from ..networks import NETWORKS, load_network
    from ..networks.vgg19 import SOURCES

    name = getattr(args, "network", None) or {source: n for n, source in SOURCES.items()}[args.weights]
    options = {"pooling": args.pooling} if "pooling" in NETWORKS.lookup(name).options else {}
    if not options and args.pooling != POOLINGS[0]:
        takes = ", ".join(n for n, spec in NETWORKS.items() if "pooling" in spec.options)
        raise ConfigError(f"--pooling {args.pooling} applies to {takes} only, not to --network {name}")
    return load_network(name, device, path=getattr(args, "network_path", None), **options)


def style_layers(args: argparse.Namespace, network, method=None) -> list[str]:
    """``--layers`` checked against the network, or else the guidance method's reference CLIP layer on a
    CLIP network (``clip_style_layer``: FreeDoM/MPGD ``hidden3``, TFG ``hidden2``), or else the network's
    style layers; recorded back in ``args``."""
    reference = getattr(method, "clip_style_layer", None) if network.name.startswith("clip-") else None
    if args.layers:
        layers = network.check_layers(args.layers)
    else:
        layers = network.check_layers([reference]) if reference else list(network.style_layers)
    args.layers = ",".join(layers)
    return layers


def network_weights(network) -> dict:
    """The sidecar's ``weights`` entry of the feature network (``vgg19`` for VGG-19, as the tables read it)."""
    return {"vgg19" if network.name.startswith("vgg19") else "network": network.provenance()}


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} requested but no CUDA device is available; use --device cpu")
    return torch.device(name)


def sidecar_path(out: str | os.PathLike) -> Path:
    """``OUT.png`` -> ``OUT.json``: the sidecar lives beside its image."""
    return Path(out).with_suffix(".json")


def wrote(*paths: str | os.PathLike) -> str:
    """What a verb prints when it succeeds: ``wrote A, B and C``."""
    names = [str(path) for path in paths]
    return "wrote " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def rerun_config(args: argparse.Namespace) -> dict:
    """The parsed arguments as the sidecar's ``config`` (lists for tuples; no callables)."""
    return {
        key: (list(value) if isinstance(value, tuple) else value)
        for key, value in vars(args).items()
        if key not in ("func", "debug") and not callable(value)
    }
