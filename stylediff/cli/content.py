"""The content image of ``stylediff sample`` (style transfer of a given image): its flags, the run's
content start (SDEdit or DDIM inversion of the image, cropped to the model's size) and the content term
added to the style objective."""

from __future__ import annotations

import argparse

from . import args as cli


def add_content_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("content image (style transfer of a given image)")
    group.add_argument("--content", default=None, help="content image: start from it and keep it (a content term)")
    group.add_argument(
        "--strength",
        type=cli.nonnegative_float,
        default=None,
        help="noise level of the start in (0, 1]: the run is the last int(steps x strength) steps "
        "(default 0.8, diffusers' img2img default)",
    )
    group.add_argument(
        "--start",
        choices=("sdedit", "inversion"),
        default="sdedit",
        help="sdedit: the content noised (img2img); inversion: its DDIM inversion (needs --scheduler ddim)",
    )
    group.add_argument(
        "--content-weight",
        type=cli.nonnegative_float,
        default=0.1,
        help="weight of the content term against the style loss's 1 (default 0.1: Part 1's transfer ratio, 1 : 10)",
    )
    group.add_argument(
        "--content-loss",
        choices=("features", "lpips"),
        default="features",
        help="features: the feature network's content layer (relu4_2 of VGG-19, Part 1's content loss); "
        "lpips: LPIPS (AlexNet) to the content image",
    )


def content_start(args, adapter, optimize: bool):
    """The run's :class:`ContentStart` (None without ``--content``) and the sidecar's ``content`` entry. The
    content is scaled to cover the model's image and centre-cropped to it; ``ad_mode optimize`` starts
    from the content itself (no strength, no inversion)."""
    from ..core.errors import ConfigError
    from ..core.images import load_image, resize
    from ..core.provenance import file_sha256
    from ..diffusion.starts import DEFAULT_STRENGTH, ContentStart

    if args.content is None:
        if args.strength is not None or args.start != "sdedit":
            raise ConfigError("--strength and --start need a --content image")
        return None, None
    if optimize and (args.strength is not None or args.start != "sdedit"):
        raise ConfigError("--ad-mode optimize starts from the content itself: it takes no --strength or --start")
    height, width = adapter.image_shape
    image = load_image(args.content)
    side = max(height / image.shape[-2], width / image.shape[-1])
    covered = resize(image, (max(height, round(image.shape[-2] * side)), max(width, round(image.shape[-1] * side))))
    top, left = (covered.shape[-2] - height) // 2, (covered.shape[-1] - width) // 2
    image = covered[..., top : top + height, left : left + width].contiguous()
    strength = 1.0 if optimize else (DEFAULT_STRENGTH if args.strength is None else args.strength)
    start = ContentStart(image, strength, args.start)
    info = {
        "path": str(args.content),
        "sha256": file_sha256(args.content),
        "shape": [height, width],
        "content_weight": args.content_weight,
        "content_loss": args.content_loss,
    }
    return start, info


def content_objective(args, network, objective, content, shape):
    """``objective`` plus ``--content-weight`` × the content term of ``content`` at the guidance ``shape``
    (Part 1's ``ContentTerm`` at the network's content layer in the same ``Objective``, or LPIPS)."""
    from ..core.images import resize
    from ..nst.losses import ContentTerm, Objective

    if content is None or args.content_weight == 0:
        return objective
    target = resize(content, shape)
    if args.content_loss == "features":
        term = ContentTerm(network, target, [network.content_layer])
        terms = {name: (term_, objective.term_weights[name]) for name, term_ in objective.terms.items()}
        return Objective(network, {**terms, "content": (term, args.content_weight)})
    from ..evaluation.lpips import lpips_to

    lpips = lpips_to(target)

    def total(images):
        return objective(images) + args.content_weight * lpips(images)

    total.min_size = objective.min_size
    return total
