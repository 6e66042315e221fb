"""``stylediff search``: a beam search over one guidance method's knobs on a few seeds (see
:mod:`stylediff.diffusion.knob_search`). Every evaluated candidate goes to a CSV; the best setting to a YAML entry
that the workflow's ``guidance_methods.methods`` list reads as it is."""

from __future__ import annotations

import argparse
import time

from . import args as cli


def run_search(args) -> str:
    import torch

    from ..core.images import load_image
    from ..core.io import ensure_parent, write_text
    from ..diffusion import METHODS, GuidedSampler, default_guidance_size, load_model, make_method
    from ..diffusion.knob_search import beam_search
    from ..evaluation.scorer import METRIC_LAYERS, Scorer, gram_distances
    from ..networks.vgg19_layers import min_input_size
    from ..nst.losses import style_objective

    ensure_parent(args.out)
    cls = METHODS.lookup(args.method)
    device = cli.resolve_device(args.device)
    network = cli.feature_network(args, device)
    layers = cli.style_layers(args, network, cls)
    model = load_model(args.model, device, local_files_only=True if args.offline else None)
    min_side = network.min_size(layers)
    guidance_size = default_guidance_size(max(model.sample_size), min_side)
    style = load_image(args.style, guidance_size, min_side).to(device)
    vgg_objective = style_objective(network, style, layers, args.loss, args.layer_weights)
    scorer = Scorer(
        weights=args.weights, pooling=args.pooling, device=str(device), lpips=args.lpips, heldout=False
    )  # the search ranks by the VGG-19 Gram distance and LPIPS only
    metric_side = default_guidance_size(max(model.sample_size), min_input_size(list(METRIC_LAYERS)))
    metric_style = load_image(args.style, metric_side).to(device)
    style_features = scorer.vgg(metric_style, list(METRIC_LAYERS))
    seeds = list(args.seeds)
    unguided = GuidedSampler(model.unet, model.scheduler(args.scheduler))(
        seeds, num_inference_steps=args.steps, eta=args.eta, progress=False
    ).images.to(device)

    def evaluate(knobs):
        method = make_method(args.method, **knobs)
        start = time.perf_counter()
        references = {"style": metric_style}  # what an attention-based method reads
        images = GuidedSampler(
            model.unet, model.scheduler(args.scheduler), vgg_objective, method, references=references
        )(seeds, num_inference_steps=args.steps, eta=args.eta, progress=False).images.to(device)
        seconds = (time.perf_counter() - start) / len(seeds)
        with torch.no_grad():  # the Gram distance at relu1_1…relu5_1, samples resized to the style's shape
            resized = torch.nn.functional.interpolate(
                images, size=metric_style.shape[-2:], mode="bilinear", align_corners=False
            )
            style_distance = sum(
                gram_distances(scorer.vgg(resized[i : i + 1], list(METRIC_LAYERS)), style_features)["gram_dist_mean"]
                for i in range(len(seeds))
            ) / len(seeds)
            if scorer.lpips_on:
                fidelity = sum(
                    scorer.lpips_distances(images[i : i + 1], unguided[i : i + 1])["lpips_vgg"]
                    for i in range(len(seeds))
                ) / len(seeds)
            else:  # no LPIPS backbones: 1 − SSIM to the unguided sample (said in the CSV's fidelity column)
                from torchmetrics.functional.image import structural_similarity_index_measure as ssim

                fidelity = 1 - ssim(images, unguided, data_range=1.0).item()
        return {"style": style_distance, "fidelity": fidelity, "seconds_per_image": seconds}

    start = {
        "scale": cls.scale_range[0],
        **{k: v for k, v in cls.knobs().items() if k in cls.search_factors},
        **cls.search_start,
    }
    for item in args.start or []:
        key, _, value = item.partition("=")
        start[key.replace("-", "_")] = float(value)
    candidates = beam_search(
        evaluate,
        start,
        cls.search_factors,
        rounds=args.rounds,
        beam=args.beam,
        budget=args.budget,
        progress=not args.no_progress,
        caps=cls.search_caps,
    )
    best = min(candidates, key=lambda c: c.key(args.budget))
    import pandas as pd
    import yaml

    fidelity = "lpips_vgg" if scorer.lpips_on else "one_minus_ssim"
    rows = [
        {
            "round": c.round,
            **c.knobs,
            "gram_dist_mean": c.style,
            fidelity: c.fidelity,
            "within_budget": c.fidelity <= args.budget,
            **c.extra,
        }
        for c in candidates
    ]
    write_text(cli.sidecar_path(args.out).with_suffix(".csv"), pd.DataFrame(rows).to_csv(index=False))
    knobs = {k: v for k, v in best.knobs.items() if k != "scale"}
    entry = {"name": args.method, "scales": [float(best.knobs["scale"])], **({"knobs": knobs} if knobs else {})}
    write_text(
        args.out,
        "# stylediff search: the best setting found (guidance_methods.methods entry)\n"
        + f"# score: Gram distance {best.style:.4g} at {fidelity} {best.fidelity:.3g} "
        + f"(budget {args.budget}); {len(candidates)} candidates in "
        + f"{cli.sidecar_path(args.out).with_suffix('.csv').name}\n"
        + yaml.safe_dump([entry], sort_keys=False),
    )
    return (
        f"{cli.wrote(args.out, cli.sidecar_path(args.out).with_suffix('.csv'))} (best of {len(candidates)}: "
        f"{entry}, Gram distance {best.style:.4g}, {fidelity} {best.fidelity:.3g})"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="beam search over a guidance method's knobs (as TFG tunes)",
        description="Beam search over one guidance method's knobs (TFG's search, for any method) "
        "on a few seeds: the best Gram distance within a fidelity budget. Writes the "
        "best setting as a workflow methods entry (YAML) and every candidate to a CSV.",
    )
    cli.add_registered(p, "--method", "method", "the guidance method: %(choices)s", required=True)
    p.add_argument("--model", required=True, help="hub id or local diffusers folder")
    p.add_argument("--offline", action="store_true")
    p.add_argument("--style", required=True)
    p.add_argument("--seeds", type=cli.seed_list, default=[0, 1, 2, 3], help="seeds every candidate samples")
    p.add_argument("--rounds", type=cli.positive_int, default=4)
    p.add_argument("--beam", type=cli.positive_int, default=2, help="settings kept per round (top-k)")
    p.add_argument(
        "--budget",
        type=cli.nonnegative_float,
        default=0.3,
        help="fidelity budget: LPIPS to the same-seed unguided sample at most this",
    )
    p.add_argument(
        "--start",
        nargs="+",
        default=None,
        metavar="KNOB=VALUE",
        help="starting values (default: the low end of the scale range and the method's defaults)",
    )
    p.add_argument("--scheduler", choices=("ddim", "ddpm"), default="ddim")
    p.add_argument("--steps", type=cli.positive_int, default=50)
    p.add_argument("--eta", type=cli.nonnegative_float, default=0.0)
    p.add_argument("--lpips", choices=("auto", "true", "false"), default="auto")
    p.add_argument("--out", required=True, help="YAML of the best setting; every candidate goes to OUT.csv")
    cli.add_style(p)
    cli.add_network(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_search)
