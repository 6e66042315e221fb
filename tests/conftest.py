"""Shared fixtures. Tests run offline: where the developers' ``../shared`` folder exists, TORCH_HOME
points at its LPIPS backbones (elsewhere torchvision's usual cache and download apply), and the
Hugging Face hub is switched off."""

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if (ROOT.parent / "shared" / "cache" / "torch").is_dir():
    os.environ.setdefault("TORCH_HOME", str(ROOT.parent / "shared" / "cache" / "torch"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
STYLES = ROOT / "data" / "styles"
DEMO_MODEL = ROOT / "models" / "ddpm-emoji-faces-32"


@pytest.fixture(scope="session")
def vgg():
    from stylediff.networks.vgg19 import load_vgg19

    return load_vgg19("caffe", "max", "cpu")


def _skimage_png(name: str, folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / f"{name}.png"
    if not path.exists():
        array = getattr(data, name)()
        Image.fromarray(np.asarray(array)).save(path)
    return path


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def astronaut_png(image_dir) -> Path:
    return _skimage_png("astronaut", image_dir)


@pytest.fixture(scope="session")
def chelsea_png(image_dir) -> Path:
    return _skimage_png("chelsea", image_dir)


@pytest.fixture(scope="session")
def tiny_ddpm_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised UNet2DModel + DDPMScheduler saved as a diffusers folder (16 px)."""
    return save_tiny_ddpm(tmp_path_factory.mktemp("tiny-ddpm"))


def save_tiny_ddpm(folder: Path, attention: bool = False) -> Path:
    """A tiny random 16 px UNet2DModel + DDPMScheduler saved in ``folder``; ``attention``: self-attention in
    its second down block and first up block (what an attention-based rule reads)."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(1)
    unet = diffusers.UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        attention_head_dim=8,
        down_block_types=("DownBlock2D", "AttnDownBlock2D" if attention else "DownBlock2D"),
        up_block_types=("AttnUpBlock2D" if attention else "UpBlock2D", "UpBlock2D"),
    )
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(folder)
    return folder


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a - b).pow(2).mean().item()
    return 10 * np.log10(1.0 / mse)


def preset_config(preset: str = "quick") -> dict:
    """config.yaml with config/<preset>.yaml laid over it by Snakemake's own merge (what the Snakefile's
    ``configfile:`` directives do)."""
    import yaml
    from snakemake.utils import update_config

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config.yaml").read_text())
    if preset != "quick":
        update_config(config, yaml.safe_load((root / "config" / f"{preset}.yaml").read_text()))
    return config


# ------------------------------------------------------------------------------------- the CLI
def stylediff(*args, check: bool = True, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``python -m stylediff ARGS`` in a fresh process from the repository root, as a user runs it; with
    ``check`` a non-zero exit fails the test with its stderr. ``env`` is added to this process's environment."""
    result = subprocess.run(
        [sys.executable, "-m", "stylediff", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})},
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def run_main(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of one in-process CLI call (argument errors exit from argparse, the rest
    return their status)."""
    from stylediff.cli import main

    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sample_argv(model, out, *extra, style=STYLES / "the_scream.jpg", steps: int = 3) -> list[str]:
    """``stylediff sample`` of ``model`` on the CPU at relu1_1,relu2_1 in ``steps`` steps, quietly."""
    return [
        "sample",
        *("--model", str(model), "--style", str(style), "--out", str(out)),
        *("--layers", "relu1_1,relu2_1", "--steps", str(steps), "--device", "cpu", "--no-progress"),
        *map(str, extra),
    ]


def search_argv(model, out, method: str, *extra, style=STYLES / "starry_night.jpg") -> list[str]:
    """``stylediff search`` of ``method`` at its smallest: two seeds, one round of a beam of one, three steps,
    relu1_1, no LPIPS (the fidelity is then 1 − SSIM)."""
    return [
        "search",
        *("--method", method, "--model", str(model), "--style", str(style), "--seeds", "0,1"),
        *("--rounds", "1", "--beam", "1", "--steps", "3", "--layers", "relu1_1", "--lpips", "false"),
        *("--device", "cpu", "--no-progress", "--out", str(out)),
        *map(str, extra),
    ]


def snakemake_command(work: Path, *args: str) -> list[str]:
    """Snakemake on the repository's Snakefile in ``work``, no workflow profile, two cores."""
    return [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")),
        *("--directory", str(work), "--workflow-profile", "none", "--cores", "2"),
        *args,
    ]


# --------------------------------------------------------- the registries against the schema and docs
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
LOSSES_PAGE = ROOT / "docs" / "part1" / "losses.md"
METHODS_PAGE = ROOT / "docs" / "part2" / "methods" / "index.md"
METRICS_PAGE = ROOT / "docs" / "workflow" / "metrics.md"
NETWORKS_TABLE = ROOT / "stylediff" / "networks" / "__init__.py"
"""The table of networks is the module docstring of stylediff.networks (docs/reference/losses.md renders it)."""


def _mismatch(where: str, listed, registered, line) -> list[str]:
    """One line per registered name ``where`` lacks (``line(name)``: what to add) and per name it lists that is
    not registered."""
    listed, registered = list(listed), list(registered)
    return [f"{where}: add {line(name)}" for name in registered if name not in listed] + [
        f"{where}: {name!r} is not registered (remove it or register it)" for name in listed if name not in registered
    ]


def schema_enums() -> dict[str, list[str]]:
    """What each enum of the schema must hold, from the registries."""
    from stylediff.diffusion.methods import METHODS
    from stylediff.diffusion.methods.normalised import NormalisedGradient
    from stylediff.networks import NETWORKS
    from stylediff.networks.vgg19_layers import LAYERS, POOLINGS, WEIGHT_SOURCES
    from stylediff.nst.losses import STYLE_LOSSES
    from stylediff.workflow.experiments import EXPERIMENTS

    return {
        "$defs.loss.enum": list(STYLE_LOSSES),
        "$defs.network.enum": list(NETWORKS),
        "$defs.method.enum": list(METHODS),
        "$defs.normalised_method.enum": [n for n, cls in METHODS.items() if issubclass(cls, NormalisedGradient)],
        "$defs.layer.enum": list(LAYERS),
        "properties.weights.enum": list(WEIGHT_SOURCES),
        "properties.pooling.enum": list(POOLINGS),
        "properties.experiments.items.enum": list(EXPERIMENTS),
    }


def schema_problems() -> list[str]:
    """The schema's enums against the registries (order free: a name is registered or not)."""
    import yaml

    schema = yaml.safe_load(SCHEMA.read_text())
    problems = []
    for path, registered in schema_enums().items():
        node = schema
        for key in path.split("."):
            node = node[key]
        problems += _mismatch(f"{SCHEMA.relative_to(ROOT)} {path}", node, registered, repr)
    return problems


def table_names(text: str, pattern: str) -> list[str]:
    """The names in the first cell of a markdown table's rows (backticked; several per cell allowed)."""
    names = []
    for row in re.findall(r"^\|([^|\n]*)\|", text, flags=re.M):
        names += re.findall(pattern, row)
    return names


def nav_method_pages(mkdocs: str) -> list[str]:
    """The method pages the mkdocs nav lists (``- NAME: part2/methods/NAME.md``) besides the index."""
    return re.findall(r"^\s*- (\S+): part2/methods/\1\.md\s*$", mkdocs, flags=re.M)


def docs_problems(read=Path.read_text) -> list[str]:
    """The docs against the registries: the losses' table, the networks' table and API pages, the methods'
    table, pages and nav entries, the metrics' table (``read(path)``: a file's text)."""
    import stylediff.networks as networks_package
    from stylediff.diffusion.methods import METHODS
    from stylediff.evaluation.metrics import METRICS
    from stylediff.networks import NETWORKS
    from stylediff.nst.losses import STYLE_LOSSES

    problems = _mismatch(
        str(LOSSES_PAGE.relative_to(ROOT)),
        table_names(read(LOSSES_PAGE), r"^\s*`([^`]+)`"),
        STYLE_LOSSES,
        lambda name: f"the table row '| `{name}` | statistic | distance |'",
    )
    problems += _mismatch(
        f"{NETWORKS_TABLE.relative_to(ROOT)} (its docstring's table)",
        re.findall(r"^``([^`]+)``\s", networks_package.__doc__, flags=re.M),
        NETWORKS,
        lambda name: f"the row '``{name}``  weights  where they are looked for'",
    )
    reference = "\n".join(read(path) for path in (ROOT / "docs" / "reference").glob("*.md"))
    for name, spec in NETWORKS.items():
        if f"::: stylediff.networks.{spec.module}\n" not in reference:
            problems.append(f"docs/reference/losses.md: add the line '::: stylediff.networks.{spec.module}' ({name})")
    problems += _mismatch(
        str(METHODS_PAGE.relative_to(ROOT)),
        table_names(read(METHODS_PAGE), r"^\s*\[`([^`]+)`\]"),
        METHODS,
        lambda name: (
            f"the table row '| [`{name}`]({name}.md) | paper | what it does | reference code | default | range |'"
        ),
    )
    for name in METHODS:
        if not (METHODS_PAGE.parent / f"{name}.md").is_file():
            problems.append(f"docs/part2/methods/{name}.md: write the method's page")
    problems += _mismatch(
        "mkdocs.yml nav (Guidance methods)",
        nav_method_pages(read(ROOT / "mkdocs.yml")),
        METHODS,
        "'- {0}: part2/methods/{0}.md'".format,
    )
    problems += _mismatch(
        str(METRICS_PAGE.relative_to(ROOT)),
        table_names(read(METRICS_PAGE), r"`([^`]+)`"),
        METRICS,
        lambda name: f"the table row '| `{name}` | columns | kinds | what |'",
    )
    return problems


def naming(problems: list[str], name: str) -> list[str]:
    """The problems that concern ``name``."""
    return [
        line
        for line in problems
        if f"{name!r}" in line or f"`{name}`" in line or f"{name}.md" in line or f"({name})" in line
    ]


# ----------------------------------------------------------------------------- test doubles
def fill_hub_cache(cache: Path, repo: str, files: dict[str, bytes], commit: str = "0123456789abcdef" * 2 + "01234567"):
    """A Hugging Face cache holding ``repo`` at ``commit`` (the layout huggingface_hub writes)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    for name, data in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(data)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return commit


# -- tiny random latent models and CLIP encoders (diffusers' and transformers' own test configurations) -----
PROMPT = "lower newer"
"""A prompt of the tiny tokenizer's vocabulary."""


def clip_tokenizer(folder: Path):
    """transformers' CLIP tokenizer test vocabulary (23 tokens), written to ``folder``."""
    vocab = [
        "l",
        "o",
        "w",
        "e",
        "r",
        "s",
        "t",
        "i",
        "d",
        "n",
        "lo",
        "l</w>",
        "w</w>",
        "r</w>",
        "t</w>",
        "low</w>",
        "er</w>",
        "lowest</w>",
        "newer</w>",
        "wider",
        "<unk>",
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


class Counting:
    """Wraps an objective: counts its evaluations and the backward passes through its output, in batches of
    ``batch`` images."""

    def __init__(self, objective, batch: int):
        self.objective, self.batch = objective, batch
        self.forward = self.backward = 0
        self.min_size = getattr(objective, "min_size", 1)

    def __call__(self, images):
        self.forward += images.shape[0] // self.batch
        loss = self.objective(images)
        if loss.requires_grad:
            loss.register_hook(lambda grad: setattr(self, "backward", self.backward + images.shape[0] // self.batch))
        return loss


@pytest.fixture(scope="session")
def tiny_clip_vision(tmp_path_factory) -> Path:
    """A random 3-block CLIPVisionModel (hidden 32, 32-px input, 8-px patches) saved as a local folder."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=32, patch_size=8
    )
    folder = tmp_path_factory.mktemp("clip")
    CLIPVisionModel(config).eval().save_pretrained(folder)
    return folder


def csd_checkpoint_state(width=64, layers=2, patch=8, grid=3, out=16, seed=0) -> dict[str, torch.Tensor]:
    """A random CSD ``model_state_dict`` in OpenAI CLIP's layout (``module.backbone.*`` plus the style and
    content heads), small enough for a test."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.05):
        return torch.randn(*shape, generator=g) * s

    state = {
        "conv1.weight": r(width, 3, patch, patch),
        "class_embedding": r(width),
        "positional_embedding": r(grid * grid + 1, width),
        "ln_pre.weight": 1 + r(width),
        "ln_pre.bias": r(width),
        "ln_post.weight": 1 + r(width),
        "ln_post.bias": r(width),
    }
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        state.update(
            {
                p + "attn.in_proj_weight": r(3 * width, width, s=0.2),
                p + "attn.in_proj_bias": r(3 * width),
                p + "attn.out_proj.weight": r(width, width, s=0.2),
                p + "attn.out_proj.bias": r(width),
                p + "ln_1.weight": 1 + r(width),
                p + "ln_1.bias": r(width),
                p + "ln_2.weight": 1 + r(width),
                p + "ln_2.bias": r(width),
                p + "mlp.c_fc.weight": r(4 * width, width, s=0.2),
                p + "mlp.c_fc.bias": r(4 * width),
                p + "mlp.c_proj.weight": r(width, 4 * width, s=0.2),
                p + "mlp.c_proj.bias": r(width),
            }
        )
    return {
        **{"module.backbone." + k: v for k, v in state.items()},
        "module.last_layer_style": r(width, out, s=0.3),
        "module.last_layer_content": r(width, out),
    }


@pytest.fixture(scope="session")
def tiny_csd(tmp_path_factory) -> Path:
    """:func:`csd_checkpoint_state` saved as CSD saves its ``checkpoint.pth``."""
    path = tmp_path_factory.mktemp("csd") / "checkpoint.pth"
    torch.save({"model_state_dict": csd_checkpoint_state(), "epoch": 1}, path)
    return path


def sd_ddim(prediction_type: str = "epsilon"):
    """Stable Diffusion's DDIM scheduler config (scaled-linear betas, leading spacing, offset 1)."""
    import diffusers

    return diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def tiny_vae(channels=(4, 8), groups=2, **config):
    import diffusers

    torch.manual_seed(0)
    return diffusers.AutoencoderKL(
        block_out_channels=list(channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=groups,
        **config,
    )


def tiny_sd_unet():
    """The UNet of diffusers' ``StableDiffusionPipelineFastTests.get_dummy_components`` (seed 0, 32² latents)."""
    import diffusers

    torch.manual_seed(0)
    return diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=2,
    )


def build_tiny_sd(folder: Path, prediction_type: str = "epsilon") -> Path:
    """diffusers' ``StableDiffusionPipelineFastTests.get_dummy_components`` (32² latents, 64² images) with a
    DDIM scheduler predicting ``prediction_type``, saved to ``folder``; returns it."""
    import diffusers
    import transformers

    unet = tiny_sd_unet()
    vae = tiny_vae()
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=8,
            intermediate_size=16,
            layer_norm_eps=1e-5,
            num_attention_heads=2,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=1000,
        )
    )
    diffusers.StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=clip_tokenizer(folder.parent / f"{folder.name}-vocab"),
        unet=unet,
        scheduler=sd_ddim(prediction_type),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    ).save_pretrained(folder)
    return folder


def tiny_clip_vision_model(seed: int = 0):
    """A random ``CLIPVisionModel`` (4 blocks of width 32, 32 px input, 8 px patches: 16 tokens)."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=32, patch_size=8
    )
    return transformers.CLIPVisionModel(config).eval()


def tiny_clip_network(name: str = "clip-vit-b16", seed: int = 0):
    """``tiny_clip_vision_model`` as stylediff's CLIP feature network ``name`` (so a method's CLIP layer applies)."""
    from stylediff.networks.clip import CLIPVision

    return CLIPVision(name, tiny_clip_vision_model(seed), provenance={"name": name, "source": "tests"})


def methods_table(
    gaps: dict[str, float],
    styles: int = 6,
    seeds: int = 6,
    held_out: dict[str, float] | None = None,
    noise: float = 0.02,
    rng: int = 0,
):
    """A synthetic guidance-methods table (pandas): every method's (style, seed) curve has LPIPS 0.07 k to the
    unguided sample at its k-th scale (k = 1 … 5: every level of 0.1, 0.2, 0.3 bracketed by points 0.07
    apart) and the log ratio of its style distance to the unguided one is −(1 + gaps[method]) · LPIPS plus
    noise: a larger gap is closer to the style at every matched LPIPS. The unguided distances differ tenfold
    between the first half of the styles and the second (paintings and textures). ``held_out`` gives the
    gaps the held-out metric ``heldout_vgg16_gram`` sees (default: the same)."""
    import pandas as pd

    noise_of = np.random.default_rng(rng)
    held_out = gaps if held_out is None else held_out
    rows = []
    for style in range(styles):
        base = 2.0 if style < styles / 2 else 20.0
        for seed in range(seeds):
            common = {"model_slug": "m", "model": "m", "style": f"s{style}", "seed": seed, "steps": 25}
            rows.append(
                {**common, "method": "unguided", "scale": 0.0, "lpips_vgg": 0.0, "realism": 0.01}
                | {"gram_dist_mean": base, "heldout_vgg16_gram": 0.5}
            )
            for method, k in itertools.product(gaps, range(1, 6)):
                lpips = 0.07 * k
                y = -(1 + gaps[method]) * lpips + noise * float(noise_of.normal())
                h = -(1 + held_out[method]) * lpips + noise * float(noise_of.normal())
                rows.append(
                    {**common, "method": method, "scale": float(k), "lpips_vgg": lpips, "realism": 0.01 + 0.01 * k}
                    | {"gram_dist_mean": base * np.exp(y), "heldout_vgg16_gram": 0.5 * np.exp(h)}
                )
    return pd.DataFrame(rows)
