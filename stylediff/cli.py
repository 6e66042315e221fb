"""The ``stylediff`` command line: each verb parses and validates its arguments, calls one package
function, and writes its output with a JSON sidecar. User errors print one line and exit 2."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from .errors import ConfigError, StylediffError
from .images import load_image, save_image
from .io import ensure_parent, write_json
from .losses import STYLE_LOSSES
from .optimize import OPTIMIZERS, OptimizeConfig, OptimizeResult, invert, synthesize_texture, transfer_style
from .provenance import peak_rss_mb, sidecar
from .vgg import (CONTENT_LAYER_GATYS, LAYERS, POOLINGS, STYLE_LAYERS_GATYS, WEIGHT_SOURCES, check_layers,
                  load_vgg19, min_input_size)


def sidecar_path(out: str | os.PathLike) -> Path:
    """``OUT.png`` -> ``OUT.json``: the sidecar lives beside its image."""
    return Path(out).with_suffix(".json")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} requested but no CUDA device is available; use --device cpu")
    return torch.device(name)


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


def int_list(text: str) -> tuple[int, ...]:
    return tuple(positive_int(part) for part in text.split(",") if part.strip())


def float_list(text: str) -> list[float]:
    return [nonnegative_float(part) for part in text.split(",") if part.strip()]


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output PNG; the JSON sidecar is written beside it")
    parser.add_argument("--seed", type=int, default=0, help="random seed (CPU runs are bit-reproducible)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--weights", choices=WEIGHT_SOURCES, default="caffe", help="VGG-19 weight source")
    parser.add_argument("--pooling", choices=POOLINGS, default="max", help="VGG-19 pooling")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_optimisation(parser: argparse.ArgumentParser, steps: int, init: str) -> None:
    parser.add_argument("--size", type=positive_int, default=256, help="longest side in pixels")
    parser.add_argument("--steps", type=positive_int, default=steps, help="optimisation steps (per scale)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    parser.add_argument("--lr", type=finite_float, default=None, help="step size (default 1 for L-BFGS, 0.02 Adam)")
    parser.add_argument("--init", choices=("noise", "content", "mean"), default=init)
    parser.add_argument("--scales", type=int_list, default=(), help="coarser sizes run first, e.g. 64,128")
    parser.add_argument("--tv-weight", type=nonnegative_float, default=0.0, help="total-variation weight")


def add_style(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", default=",".join(STYLE_LAYERS_GATYS),
                        help="comma-separated style layers (see `stylediff layers`)")
    parser.add_argument("--layer-weights", type=float_list, default=None,
                        help="comma-separated weight per style layer (default: equal, summing to 1)")
    parser.add_argument("--loss", default="gram", help=f"style loss: {', '.join(STYLE_LOSSES)}")


def optimisation_config(args) -> OptimizeConfig:
    return OptimizeConfig(steps=args.steps, optimizer=args.optimizer, lr=args.lr, seed=args.seed, init=args.init,
                          scales=args.scales, tv_weight=args.tv_weight, progress=not args.no_progress)


def write_result(command: str, args, result: OptimizeResult, vgg, device, load_seconds: float,
                 extra: dict | None = None) -> None:
    """Write the image, then its sidecar (config, weights, versions, timing, losses and history)."""
    config = {key: (list(value) if isinstance(value, tuple) else value)
              for key, value in vars(args).items() if key not in ("func", "debug")}
    final = {key: value for key, value in result.final.items() if key not in ("step", "scale")}
    save_image(result.image, args.out)
    write_json(sidecar_path(args.out), sidecar(
        command, config, device=device,
        weights={"vgg19": {"source": vgg.info.source, "pooling": vgg.pooling, "path": vgg.info.path,
                           "sha256": vgg.info.sha256}},
        timing={"load_seconds": load_seconds, "optimise_seconds": result.seconds,
                "seconds_per_step": result.seconds / max(1, len(result.history) - 1),
                "peak_rss_mb": peak_rss_mb()},
        results={"final": final, "history": result.history, **(extra or {})},
    ))


def _prepare(args, layers: list[str]):
    """Check the output folder first (fail before any work), then load the network."""
    ensure_parent(args.out)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    vgg = load_vgg19(args.weights, args.pooling, device)
    return vgg, device, min_input_size(layers), start


def run_invert(args) -> None:
    layers = check_layers([args.layer])
    vgg, device, min_side, start = _prepare(args, layers)
    image = load_image(args.image, args.size, min_side)
    load = time.perf_counter() - start
    result = invert(vgg, image.to(device), args.layer, optimisation_config(args))
    write_result("invert", args, result, vgg, device, load)


def run_texture(args) -> None:
    layers = check_layers(args.layers)
    vgg, device, min_side, start = _prepare(args, layers)
    style = load_image(args.style, args.style_size or args.size, min_side)
    shape = tuple(style.shape[-2:]) if args.out_size is None else (args.out_size, args.out_size)
    if min(shape) < min_side:
        raise ConfigError(f"--out-size {args.out_size} is below the {min_side} px these layers need")
    load = time.perf_counter() - start
    result = synthesize_texture(vgg, style.to(device), layers, args.loss, shape, optimisation_config(args),
                                args.layer_weights)
    write_result("texture", args, result, vgg, device, load)


def run_transfer(args) -> None:
    layers = check_layers(args.layers)
    vgg, device, min_side, start = _prepare(args, layers + check_layers([args.content_layer]))
    content = load_image(args.content, args.size, min_side)
    style = load_image(args.style, args.style_size or args.size, min_side)
    load = time.perf_counter() - start
    result = transfer_style(vgg, content.to(device), style.to(device), layers, args.loss, optimisation_config(args),
                            content_layer=args.content_layer, style_weight=args.style_weight,
                            content_weight=args.content_weight, layer_weights=args.layer_weights)
    write_result("transfer", args, result, vgg, device, load)


def run_layers(args) -> None:
    for name in LAYERS:
        print(name)


def run_batch(args) -> None:
    """Run several verb command lines in this process: Python, torch and the VGG weights load once
    (a 64 px texture run computes for about 2 s after about 5 s of start-up). Every line is parsed
    before the first runs, so a typo fails before any work; each run writes its own image and sidecar,
    exactly as it would alone."""
    parser = build_parser()
    runs = []
    for line in args.commands:
        argv = shlex.split(line)
        if not argv or argv[0] == "batch":
            raise ConfigError(f"each batch item is one verb command line (not empty, not batch), got {line!r}")
        runs.append(parser.parse_args(argv))
    for index, run in enumerate(runs, 1):
        print(f"[{index}/{len(runs)}] stylediff {run.verb} -> {getattr(run, 'out', '')}", flush=True)
        try:
            run.func(run)
        except StylediffError as exc:
            raise type(exc)(f"item {index} of {len(runs)} ({run.verb}): {exc}") from exc


class OneLineParser(argparse.ArgumentParser):
    """Argument errors are one line (what is wrong, where to look), not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="stylediff", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("invert", help="reconstruct an image from one layer's features")
    p.add_argument("--image", required=True)
    p.add_argument("--layer", default="relu3_1")
    add_optimisation(p, steps=300, init="noise")
    add_common(p)
    p.set_defaults(func=run_invert)

    p = sub.add_parser("texture", help="synthesise a texture matching a style image's statistics")
    p.add_argument("--style", required=True)
    p.add_argument("--style-size", type=positive_int, default=None, help="style image's longest side (default --size)")
    p.add_argument("--out-size", type=positive_int, default=None, help="square output side (default: style's shape)")
    add_style(p)
    add_optimisation(p, steps=300, init="mean")
    add_common(p)
    p.set_defaults(func=run_texture)

    p = sub.add_parser("transfer", help="neural style transfer: content of one image, style of another")
    p.add_argument("--content", required=True)
    p.add_argument("--style", required=True)
    p.add_argument("--style-size", type=positive_int, default=None, help="style image's longest side (default --size)")
    p.add_argument("--content-layer", default=CONTENT_LAYER_GATYS)
    p.add_argument("--style-weight", type=nonnegative_float, default=10.0,
                   help="weight of the (per-layer normalised) style loss against the content loss")
    p.add_argument("--content-weight", type=nonnegative_float, default=1.0)
    add_style(p)
    add_optimisation(p, steps=300, init="content")
    add_common(p)
    p.set_defaults(func=run_transfer)

    p = sub.add_parser("layers", help="list the VGG-19 layer names")
    p.set_defaults(func=run_layers)

    p = sub.add_parser("batch", help="run several verb command lines in one process (start-up paid once)")
    p.add_argument("commands", nargs="+", metavar="COMMAND",
                   help="a quoted verb command line, e.g. 'texture --style s.jpg --out a.png'")
    p.set_defaults(func=run_batch)

    for register in EXTRA_VERBS:
        register(sub)
    return parser


EXTRA_VERBS: list[Callable[[argparse._SubParsersAction], None]] = []
"""Verbs defined in other modules (``sample``, ``metrics``, ``aggregate``…) register here."""


def main(argv: list[str] | None = None) -> int:
    from . import cli_verbs  # noqa: F401  (registers the verbs of the diffusion and report modules)

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except StylediffError as exc:
        if args.debug:
            raise
        print(f"stylediff {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stylediff {args.verb}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # `python -m stylediff.cli`: run the registry's module, not a __main__ copy of it
    from stylediff.cli import main as package_main

    sys.exit(package_main())
