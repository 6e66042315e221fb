"""The image-optimisation verbs: ``invert``, ``texture``, ``transfer``. Each parses its arguments, calls
one function of :mod:`stylediff.nst.optimize` and writes the image and its JSON sidecar. torch and the
package's torch modules are imported when a verb runs, not when the parser is built."""

from __future__ import annotations

import argparse
import time

from ..networks.vgg19_layers import CONTENT_LAYER_GATYS
from . import args as cli


def first_step_size(text: str) -> float | None:
    """An argument type: ``none`` (torch's first L-BFGS step) or a positive number."""
    if text.strip().lower() == "none":
        return None
    value = cli.finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or none, got {text!r}")
    return value


def add_optimisation(
    parser: argparse.ArgumentParser, steps: int, init: str, scales: str = "none", first_step: float | None = None
) -> None:
    parser.add_argument("--size", type=cli.positive_int, default=256, help="longest side in pixels")
    parser.add_argument("--steps", type=cli.positive_int, default=steps, help="optimisation steps (per scale)")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument(
        "--lr", type=cli.finite_float, default=None, help="step size (default 1 for L-BFGS, 0.02 for Adam)"
    )
    parser.add_argument(
        "--first-step",
        type=first_step_size,
        default=first_step,
        help="L-BFGS: RMS pixel change of each scale's first (steepest-descent) step, or none: torch's, of L1 "
        f"length --lr over all pixels (default {first_step if first_step else 'none'})",
    )
    parser.add_argument(
        "--init",
        choices=("noise", "content", "mean", "spectrum"),
        default=init,
        help="start from uniform noise, the content image, the style's mean colour plus noise, or random "
        f"phase noise of the style's spectrum (default {init})",
    )
    parser.add_argument(
        "--scales",
        type=cli.scales,
        default=scales,
        help="coarser sizes run first, e.g. 64,128; auto: halvings of --size down to 64 px; "
        f"none: one scale (default {scales})",
    )
    parser.add_argument("--tv-weight", type=cli.nonnegative_float, default=0.0, help="total-variation weight")


def optimisation_config(args):
    from ..nst.optimize import OptimizeConfig, coarse_to_fine

    if args.scales == "auto":  # resolved here, so that the sidecar records the sizes that ran
        args.scales = coarse_to_fine(args.size)
    return OptimizeConfig(
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        init=args.init,
        first_step=args.first_step,
        scales=args.scales,
        tv_weight=args.tv_weight,
        progress=not args.no_progress,
    )


def write_result(command: str, args, result, vgg, device, load_seconds: float, extra: dict | None = None) -> str:
    """Write the image, then its sidecar (config, weights, versions, timing, losses and history); return
    the line the verb prints."""
    from ..core.images import save_image
    from ..core.io import write_json
    from ..core.provenance import peak_rss_mb, sidecar

    final = {key: value for key, value in result.final.items() if key not in ("step", "scale")}
    save_image(result.image, args.out)
    write_json(
        cli.sidecar_path(args.out),
        sidecar(
            command,
            cli.rerun_config(args),
            device=device,
            weights=cli.network_weights(vgg),
            timing={
                "load_seconds": load_seconds,
                "optimize_seconds": result.seconds,
                "seconds_per_step": result.seconds / max(1, len(result.history) - 1),
                "peak_rss_mb": peak_rss_mb(),
            },
            results={"final": final, "history": result.history, **(extra or {})},
        ),
    )
    height, width = result.image.shape[-2:]
    return (
        f"{cli.wrote(args.out, cli.sidecar_path(args.out))} ({width}x{height}, {len(result.history) - 1} steps, "
        f"{result.seconds:.3g} s)"
    )


def _prepare(args):
    """Check the output folder first (fail before any work), then load the network."""
    import torch

    from ..core.io import ensure_parent

    ensure_parent(args.out)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    device = cli.resolve_device(args.device)
    return cli.feature_network(args, device), device, start


def run_invert(args) -> str:
    from ..core.images import load_image
    from ..nst.optimize import invert

    vgg, device, start = _prepare(args)
    min_side = vgg.min_size(vgg.check_layers([args.layer]))
    image = load_image(args.image, args.size, min_side)
    load = time.perf_counter() - start
    result = invert(vgg, image.to(device), args.layer, optimisation_config(args))
    return write_result("invert", args, result, vgg, device, load)


STYLE_READ_FACTOR = 2
"""``stylediff texture`` reads the style at this many times the output's size by default. With the style
read at the output's own size, the deep layers have fewer positions than channels (relu5_1 at 128 px:
40 positions for 512 channels), matching their statistics pins the features, and the optimiser
rebuilds the exemplar: at 64 px `gaussian_w2` gave layout_copy 0.81–0.86, `gram` 0.32–0.54. Read at
twice the size, the output cannot hold the exemplar's layout at the scale its statistics describe,
and every loss gave a texture (layout_copy ≤ 0.31; see bench/texture_copy.py and docs/part1/texture-copy.md)."""


TEXTURE_FIRST_STEP = 0.02
"""``stylediff texture``'s ``--first-step``: L-BFGS's first step moves the pixels by 0.02 (RMS) instead of
~1e-5 (``bench/texture_defaults.py`` compares it, with ``--init spectrum``, against the old defaults)."""


def run_texture(args) -> str:
    from ..core.errors import ConfigError
    from ..core.images import load_image, scaled_shape
    from ..nst.optimize import synthesize_texture

    vgg, device, start = _prepare(args)
    layers = cli.style_layers(args, vgg)
    min_side = vgg.min_size(layers)
    if args.style_size is None:
        args.style_size = STYLE_READ_FACTOR * args.size  # recorded in the sidecar: the metrics read it there
    style = load_image(args.style, args.style_size, min_side)
    if args.out_size is None:  # the style's aspect at --size on the longest side
        shape = scaled_shape(style.shape[-2:], args.size, minimum=min_side)
    else:
        shape = (args.out_size, args.out_size)
    if min(shape) < min_side:
        raise ConfigError(f"--out-size {args.out_size} is below the {min_side} px these layers need")
    load = time.perf_counter() - start
    result = synthesize_texture(
        vgg, style.to(device), layers, args.loss, shape, optimisation_config(args), args.layer_weights
    )
    return write_result("texture", args, result, vgg, device, load)


def run_transfer(args) -> str:
    from ..core.images import load_image
    from ..nst.optimize import transfer_style

    vgg, device, start = _prepare(args)
    layers = cli.style_layers(args, vgg)
    args.content_layer = args.content_layer or vgg.content_layer  # recorded in the sidecar
    min_side = vgg.min_size(layers + vgg.check_layers([args.content_layer]))
    content = load_image(args.content, args.size, min_side)
    style = load_image(args.style, args.style_size or args.size, min_side)
    load = time.perf_counter() - start
    result = transfer_style(
        vgg,
        content.to(device),
        style.to(device),
        layers,
        args.loss,
        optimisation_config(args),
        content_layer=args.content_layer,
        style_weight=args.style_weight,
        content_weight=args.content_weight,
        layer_weights=args.layer_weights,
    )
    return write_result("transfer", args, result, vgg, device, load)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invert", help="reconstruct an image from one layer's features")
    p.add_argument("--image", required=True)
    p.add_argument("--layer", default="relu3_1")
    add_optimisation(p, steps=300, init="noise")
    cli.add_common(p)
    p.set_defaults(func=run_invert)

    p = sub.add_parser("texture", help="synthesise a texture matching a style image's statistics")
    p.add_argument("--style", required=True)
    p.add_argument(
        "--style-size",
        type=cli.positive_int,
        default=None,
        help=f"longest side the style is read at (default {STYLE_READ_FACTOR}× --size: a texture, not a copy)",
    )
    p.add_argument(
        "--out-size",
        type=cli.positive_int,
        default=None,
        help="square output side (default: the style's aspect, --size on the longest side)",
    )
    cli.add_style(p)
    add_optimisation(p, steps=300, init="spectrum", scales="auto", first_step=TEXTURE_FIRST_STEP)
    cli.add_common(p)
    p.set_defaults(func=run_texture)

    p = sub.add_parser("transfer", help="neural style transfer: content of one image, style of another")
    p.add_argument("--content", required=True)
    p.add_argument("--style", required=True)
    p.add_argument(
        "--style-size", type=cli.positive_int, default=None, help="style image's longest side (default --size)"
    )
    p.add_argument(
        "--content-layer",
        default=None,
        help=f"content layer (default: the network's, {CONTENT_LAYER_GATYS} for VGG-19)",
    )
    p.add_argument(
        "--style-weight",
        type=cli.nonnegative_float,
        default=10.0,
        help="weight of the (per-layer normalised) style loss against the content loss",
    )
    p.add_argument("--content-weight", type=cli.nonnegative_float, default=1.0)
    cli.add_style(p)
    add_optimisation(p, steps=300, init="content", scales="auto")
    cli.add_common(p)
    p.set_defaults(func=run_transfer)
