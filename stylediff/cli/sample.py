"""``stylediff sample``: style-guided sampling of a diffusers model, pixel-space or latent (Stable
Diffusion 1.x/2.x/XL with ``--prompt``, or an unconditional ``LDMPipeline``), by any registered
guidance method.

``--seeds 0,1,2`` (or ``--seed S --num-images K``) samples the seeds as one batch, one generator per
image, so an image is the same alone or in a batch. One image writes OUT.png and OUT.json; several
write ``OUT__s<seed>.png`` with a sidecar each (``OUT__s<seed>.json``), a grid at OUT.png and the
batch's sidecar at OUT.json. Sidecars record the config, the method and its settings, the diffusion
model (id, revision or file sha256), the VGG weights, network evaluations, time per step and image,
and the final style loss of each image.

``--content IMG`` transfers the style onto a given image: the run starts from the content noised to
``--strength`` (SDEdit, as diffusers' img2img pipeline) or DDIM-inverted (``--start inversion``), and the
objective adds a content term (``--content-weight``; the feature network's content layer as Part 1's
transfer, or LPIPS), so every method runs unchanged; attention-based methods also read the content
image itself. ``--method attention_distillation --ad-mode optimize`` runs that method's own engine
(the reference's transfer protocol) instead of the sampler.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from . import args as cli
from .content import add_content_arguments, content_objective, content_start


def knob_names() -> list[str]:
    """Every knob of every registered method (each one ``stylediff sample`` flag), in registry order."""
    from ..diffusion.methods import METHODS

    return list(dict.fromkeys(knob for cls in METHODS.values() for knob in cls.knobs()))


def knob_argument(classes: list, name: str) -> dict:
    """``add_argument`` keywords of knob ``name`` shared by ``classes``: typed by the field's annotation
    (START,END pair, integer, number, or the ``choices`` of its metadata); the help is each class's own
    (prefixed by the method's name where two differ); default None keeps each method's default."""
    import typing

    meta = classes[0].knob_help(name)
    hint = typing.get_type_hints(classes[0])[name]
    helps = {cls.name: cls.knob_help(name)["help"] for cls in classes}
    if len(set(helps.values())) > 1:
        text = "; ".join(f"{method}: {text}" for method, text in helps.items())
    else:
        text = next(iter(helps.values()))
    spec: dict = {"help": text, "default": None}
    if "choices" in meta:
        spec["choices"] = meta["choices"]
    elif typing.get_origin(hint) is tuple:
        spec.update(type=cli.window, metavar="START,END")
    elif hint is int:
        spec["type"] = cli.nonnegative_int
    elif hint in (float, float | None):
        spec["type"] = cli.finite_float
    else:
        raise TypeError(f"{classes[0].__name__}.{name}: no command-line type for {hint}; give it choices")
    return spec


def add_method_groups(parser: argparse.ArgumentParser) -> None:
    """``--method``, ``--scale`` and the knobs every method has (window, recurrence) in one group; then
    one group per registered method with its own knobs and its defaults. A knob two methods share is
    one flag, in the first method's group (the other's group names it)."""
    from ..diffusion.methods import METHODS, GuidanceMethod

    classes = list(METHODS.values())
    common = parser.add_argument_group("guidance (every method)")
    cli.add_registered(
        common,
        "--method",
        "method",
        "guidance rule (default %(default)s): %(choices)s (stylediff methods describes them)",
        default="x0",
    )
    common.add_argument(
        "--scale",
        type=cli.nonnegative_float,
        default=None,
        help=GuidanceMethod.knob_help("scale")["help"] + " (default: the method's)",
    )
    shared = list(GuidanceMethod.knobs())
    for name in shared:
        common.add_argument("--" + name.replace("_", "-"), **knob_argument(classes, name))
    placed = {name: "every method" for name in shared}
    for name, cls in METHODS.items():
        own = [knob for knob in cls.knobs() if knob not in shared]
        defaults = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in {"scale": cls().scale, **cls.knobs()}.items()
        )
        elsewhere = [f"--{knob.replace('_', '-')} (under {placed[knob]})" for knob in own if knob in placed]
        description = f"defaults: {defaults}" + (f"; also {', '.join(elsewhere)}" if elsewhere else "")
        group = parser.add_argument_group(f"{name}: {cls.paper}", description)
        for knob in own:
            if knob not in placed:
                having = [other for other in classes if knob in other.knobs()]
                group.add_argument("--" + knob.replace("_", "-"), **knob_argument(having, knob))
                placed[knob] = name


def output_paths(out: str | Path, seeds: list[int]) -> list[Path]:
    """OUT.png for one image; OUT__s<seed>.png for several (the grid then goes to OUT.png)."""
    out = Path(out)
    if len(seeds) == 1:
        return [out]
    return [out.with_name(f"{out.stem}__s{seed}{out.suffix or '.png'}") for seed in seeds]


def seeds_of(args) -> list[int]:
    from ..core.errors import ConfigError

    if args.seeds is not None:
        if args.num_images is not None:
            raise ConfigError("give --seeds or --num-images, not both")
        return list(args.seeds)
    return [args.seed + i for i in range(args.num_images or 1)]


def run_sample(args) -> str:
    from ..core.errors import ImageError
    from ..core.io import ensure_parent
    from ..diffusion import make_method
    from ..nst.losses import get_style_loss

    # 1. check what can be checked before anything loads
    ensure_parent(args.out)
    get_style_loss(args.loss)
    seeds = seeds_of(args)
    method = make_method(args.method, scale=args.scale, **{knob: getattr(args, knob) for knob in knob_names()})
    if not Path(args.style).is_file():
        raise ImageError(f"style image not found: {Path(args.style)}")
    # 2. load the feature network, the model and the style; sample
    start = time.perf_counter()
    device = cli.resolve_device(args.device)
    run = prepare(args, method, device)
    method = run["sampler"].method  # its knobs resolved for this model (auto step rules, MPGD's window): recorded
    load_seconds = time.perf_counter() - start
    result = run["sampler"](
        seeds,
        num_inference_steps=args.steps,
        eta=args.eta,
        precision=args.precision,
        progress=not args.no_progress,
        description=f"sample {args.method} s={method.scale:g}",
        start=run["start"],
    )
    # 3. the images and their sidecars
    paths = write_outputs(args, seeds, result, *records(args, method, run, result, load_seconds), device)
    if len(seeds) == 1:
        return f"{cli.wrote(args.out, cli.sidecar_path(args.out))} ({args.method}, {result.seconds:.3g} s)"
    return (
        f"wrote {args.out} (grid of {len(seeds)}), {cli.sidecar_path(args.out)} and {paths[0].name} … "
        f"{paths[-1].name} with their sidecars ({args.method}, {result.seconds:.3g} s)"
    )


def prepare(args, method, device) -> dict:
    """The feature network, the diffusion model (its adapter and decoder), the style image and the sampler."""
    from ..core.images import load_image, scaled_shape
    from ..diffusion import GuidedSampler, default_guidance_size, load_model
    from ..diffusion.distillation import engine_for
    from ..diffusion.loading import load_decoder
    from ..nst.losses import style_objective

    network = cli.feature_network(args, device)
    layers = cli.style_layers(args, network, method)
    offline = True if args.offline else None
    model = load_model(args.model, device, revision=args.revision, local_files_only=offline)
    scheduler = model.scheduler(args.scheduler)
    decoder, decoder_info = (
        (None, None) if args.decoder == "vae" else load_decoder(args.decoder, model, device, local_files_only=offline)
    )
    adapter = model.adapter(
        scheduler,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        cfg_scale=args.cfg_scale,
        decoder=decoder,
        vae_checkpointing=args.vae_checkpointing,
    )
    min_side = network.min_size(layers)
    guidance_size = args.guidance_size or default_guidance_size(max(model.sample_size), min_side)
    style = load_image(args.style, args.style_size or guidance_size, min_side)
    objective = style_objective(network, style.to(device), layers, args.loss, args.layer_weights)
    engine = engine_for(method)
    start_from, content_info = content_start(args, adapter, optimize=engine is not GuidedSampler)
    if start_from is not None:
        shape = scaled_shape(adapter.image_shape, guidance_size)
        objective = content_objective(args, network, objective, start_from.image.to(device), shape)
    references = {"style": load_image(args.style, max(adapter.image_shape))}
    return {
        "network": network,
        "model": model,
        "adapter": adapter,
        "decoder_info": decoder_info,
        "style": style,
        "start": start_from,
        "content_info": content_info,
        "sampler": engine(adapter, scheduler, objective, method, args.guidance_size, references),
    }


def records(args, method, run: dict, result, load_seconds: float) -> tuple[dict, dict]:
    """What every sidecar of the run records: weights and timing (``common``), and the guidance settings."""
    from ..core.provenance import peak_rss_mb

    adapter, seeds, content_info = run["adapter"], result.seeds, run["content_info"]
    first = (result.start or {}).get("t_start", 0)  # a content start runs the steps from t_start only
    evaluations = {
        key: sum(method.evaluations(i, args.steps).to_dict()[key] for i in range(first, args.steps))
        for key in ("unet_forward", "unet_backward", "objective_forward", "objective_backward")
    }
    common = {
        "weights": {
            "diffusion": run["model"].info,
            **cli.network_weights(run["network"]),
            **({"decoder": run["decoder_info"]} if run["decoder_info"] else {}),
        },
        "timing": {
            "load_seconds": load_seconds,
            "sample_seconds": result.seconds,
            "seconds_per_image": result.seconds / len(seeds),
            "seconds_per_step": result.seconds_per_step,
            "seconds_per_step_median": statistics.median(result.step_seconds) if result.step_seconds else 0.0,
            "step_seconds": result.step_seconds,
            "peak_rss_mb": peak_rss_mb(),
        },
    }
    guidance = {
        "method": args.method,
        **method.settings(),
        "guidance_shape": list(result.guidance_size or ()),
        "style_shape": list(run["style"].shape[-2:]),
        "scheduler": args.scheduler,
        "steps": args.steps,
        "eta": args.eta,
        "precision": args.precision,
        "batches": result.batches,
        "evaluations": evaluations,
        "latent": adapter.latent,
        "cfg_batch": adapter.cfg_batch,
        **(
            {"prompt": args.prompt or "", "negative_prompt": args.negative_prompt, "cfg_scale": adapter.cfg_scale}
            if getattr(adapter, "conditioning", None)
            else {}
        ),
        **({"decoder": args.decoder, "vae_checkpointing": args.vae_checkpointing} if adapter.latent else {}),
        **({"content": {**content_info, **result.start}} if content_info else {}),
    }
    return common, guidance


def write_outputs(args, seeds: list[int], result, common: dict, guidance: dict, device) -> list[Path]:
    """Each image (with its own sidecar when there are several), the grid, and the run's sidecar at OUT.json."""
    from ..core.images import save_image
    from ..core.io import write_json
    from ..core.provenance import sidecar
    from ..reporting.figures import labelled_grid

    paths = output_paths(args.out, seeds)
    for index, (image, path, seed, loss) in enumerate(zip(result.images, paths, seeds, result.losses)):
        save_image(image.unsqueeze(0), path)
        if len(seeds) > 1:
            history = [
                {**record, **{key: value[index] for key, value in record.items() if isinstance(value, list)}}
                for record in result.history
            ]
            results = {"guidance": guidance, "seed": seed, "batch": str(args.out), "final_style_loss": [loss]}
            config = {**cli.rerun_config(args), "seeds": [seed], "num_images": None}
            write_json(
                cli.sidecar_path(path),
                sidecar("sample", config, device=device, **common, results={**results, "history": history}),
            )
    if len(seeds) > 1:  # the style first, then one labelled column per seed
        labelled_grid([[args.style, *result.images]], None, ["style", *(f"seed {s}" for s in seeds)], args.out)
    images = [
        {"path": str(path), "seed": seed, "style_loss": loss} for path, seed, loss in zip(paths, seeds, result.losses)
    ]
    results = {
        "guidance": guidance,
        "images": images,
        "final_style_loss": result.losses,
        "grid": str(args.out) if len(seeds) > 1 else None,
        "history": result.history,
    }
    write_json(
        cli.sidecar_path(args.out), sidecar("sample", cli.rerun_config(args), device=device, **common, results=results)
    )
    return paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="sample a diffusion model guided by a style loss",
        description="Sample a diffusers model (hub id or local folder; pixel-space, or latent: Stable "
        "Diffusion 1.x/2.x/XL, LDM), steering each denoising step with a style loss (VGG-19, "
        "or another feature network with --network) of the predicted image (decoded by the "
        "VAE for latent models) against --style, by one of the registered guidance methods "
        "(stylediff methods describes them). Each method's knobs are listed under its name; a "
        "knob left out keeps the method's default.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="hub id (google/ddpm-cifar10-32, stable-diffusion-v1-5/stable-diffusion-v1-5) or local "
        "diffusers folder (unet/ + scheduler/ [+ vae/, text_encoder/, tokenizer/], or flat)",
    )
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    p.add_argument(
        "--offline", action="store_true", help="read hub models from the Hugging Face cache only (as HF_HUB_OFFLINE=1)"
    )
    latent = p.add_argument_group("latent models (Stable Diffusion 1.x/2.x/XL, LDM)")
    latent.add_argument("--prompt", default=None, help="text prompt of a text-conditioned latent model (SD)")
    latent.add_argument("--negative-prompt", default=None, help="negative prompt (the unconditional half of CFG)")
    latent.add_argument(
        "--cfg-scale",
        type=cli.nonnegative_float,
        default=None,
        help="classifier-free guidance scale w of a text model (default 7.5; w <= 1: no CFG batch)",
    )
    latent.add_argument(
        "--decoder",
        default="vae",
        help="latent models: the differentiable decoder guidance goes through: vae (default), tiny "
        "(TAESD, an AutoencoderTiny from the hub), or an AutoencoderTiny folder or hub id",
    )
    latent.add_argument(
        "--vae-checkpointing",
        action="store_true",
        help="latent models: gradient checkpointing in the decoder (less memory, one more decoder forward)",
    )
    p.add_argument("--style", required=True, help="style image")
    p.add_argument(
        "--style-size",
        type=cli.positive_int,
        default=None,
        help="style image's longest side (default: the guidance size)",
    )
    p.add_argument(
        "--guidance-size",
        type=cli.positive_int,
        default=None,
        help="side at which x0-hat is fed to the feature network (default max(model size, 4 x layers' minimum))",
    )
    p.add_argument("--scheduler", choices=("ddim", "ddpm"), default="ddim")
    p.add_argument("--steps", type=cli.positive_int, default=50, help="number of inference steps")
    p.add_argument("--eta", type=cli.nonnegative_float, default=0.0, help="DDIM eta (0 deterministic, 1 DDPM-like)")
    p.add_argument("--seeds", type=cli.seed_list, default=None, help="comma-separated seeds, one image each")
    p.add_argument("--num-images", type=cli.positive_int, default=None, help="images, seeds SEED..SEED+K-1")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="autocast: bf16 on CPU or CUDA, fp16 on CUDA",
    )
    add_content_arguments(p)
    cli.add_style(p)
    cli.add_common(p)
    p.defer(add_method_groups)
    p.set_defaults(func=run_sample)
