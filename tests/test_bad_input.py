"""The bad-input matrix: every image-reading verb against every kind of bad input.

Each bad input must exit with status 2, print one or two lines that name the problem (no
traceback), and leave no output file behind; every odd-but-valid image mode must be accepted.
Runs in-process (``stylediff.cli.main``), so the VGG-19 loads once for the whole matrix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import run_main

pytest.importorskip("diffusers")

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "the_scream.jpg"
VERBS = ("invert", "texture", "transfer", "sample")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    out = {
        "good": folder / "good.png",
        "text": folder / "text.png",
        "truncated_png": folder / "cut.png",
        "truncated_jpg": folder / "cut.jpg",
        "tiny": folder / "tiny.png",
        "small": folder / "small.png",
        "blocker": folder / "blocker",
    }
    picture.save(out["good"])
    out["text"].write_text("this is not a picture\n")
    for name, fmt in (("truncated_png", "PNG"), ("truncated_jpg", "JPEG")):
        full = folder / f"full.{fmt.lower()}"
        picture.resize((96, 80)).save(full, fmt)
        out[name].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    Image.new("RGB", (1, 1), (200, 30, 30)).save(out["tiny"])
    Image.new("RGB", (12, 10), (200, 30, 30)).save(out["small"])
    out["blocker"].write_text("")  # a file where the output folder should be
    for mode in ("L", "RGBA", "P", "I;16", "CMYK"):
        path = folder / f"mode_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
        (picture.convert("I;16") if mode == "I;16" else picture.convert(mode)).save(path)
        out[f"mode_{mode}"] = path
    out["missing"] = folder / "missing.png"
    return out


@pytest.fixture(scope="module")
def model_dir(tiny_ddpm_dir) -> Path:
    return tiny_ddpm_dir


def command(verb: str, image: Path, out: Path, model_dir: Path, *extra: str) -> list[str]:
    """The verb with ``image`` in its image slot, tiny sizes and steps, and ``extra`` flags last."""
    common = ["--out", str(out), "--device", "cpu", "--no-progress"]
    if verb == "invert":
        args = ["invert", "--image", str(image), "--layer", "relu2_1", "--size", "24", "--steps", "2"]
    elif verb == "texture":
        args = ["texture", "--style", str(image), "--layers", "relu1_1,relu2_1", "--size", "24", "--steps", "2"]
    elif verb == "transfer":
        args = [
            "transfer",
            "--content",
            str(image),
            "--style",
            str(STYLE),
            "--layers",
            "relu1_1,relu2_1",
            "--content-layer",
            "relu2_1",
            "--size",
            "24",
            "--steps",
            "2",
        ]
    else:
        args = [
            "sample",
            "--model",
            str(model_dir),
            "--style",
            str(image),
            "--layers",
            "relu1_1,relu2_1",
            "--steps",
            "2",
        ]
    return args + common + list(extra)


def run(capsys, argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of one CLI call."""
    code, _, err = run_main(capsys, argv)
    return code, err


BAD_IMAGES = {
    "missing": "image not found",
    "text": "not an image",
    "truncated_png": "truncated",
    "truncated_jpg": "truncated",
    "tiny": "need at least 2 px",
    "small": "need at least 16 px",  # 12x10 px file, relu5_1 requested (upsampling to --size does not help)
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_is_refused_in_one_line_without_output(capsys, tmp_path, files, model_dir, verb, kind):
    out = tmp_path / "out.png"
    deep = {"invert": ["--layer", "relu5_1"], "sample": ["--layers", "relu1_1,relu5_1"]}
    extra = deep.get(verb, ["--layers", "relu1_1,relu5_1", "--size", "32"]) if kind == "small" else []
    code, err = run(capsys, command(verb, files[kind], out, model_dir, *extra))
    assert code == 2, err
    assert BAD_IMAGES[kind] in err and "Traceback" not in err
    assert 1 <= len(err.strip().splitlines()) <= 2
    assert list(tmp_path.iterdir()) == []


BAD_FLAGS = {
    "invert": [
        (["--layer", "relu9_1"], "unknown VGG-19 layer"),
        (["--steps", "0"], "positive integer"),
        (["--size", "0"], "positive integer"),
        (["--tv-weight", "inf"], "finite"),
    ],
    "texture": [
        (["--loss", "gramm"], "unknown style loss"),
        (["--layers", "relu1_1,pool9"], "unknown VGG-19 layer"),
        (["--steps", "-3"], "positive integer"),
        (["--layer-weights", "1,nan"], "finite"),
    ],
    "transfer": [
        (["--loss", "perceptual"], "unknown style loss"),
        (["--style-weight", "nan"], "finite"),
        (["--size", "-1"], "positive integer"),
        (["--content-layer", "relu2_9"], "unknown VGG-19 layer"),
    ],
    "sample": [
        (["--scale", "nan"], "finite"),
        (["--scale", "inf"], "finite"),
        (["--loss", "nope"], "valid losses"),
        (["--layers", "relu0_1"], "unknown VGG-19 layer"),
        (["--steps", "0"], "positive integer"),
    ],
}


@pytest.mark.parametrize(
    "verb, flags, message", [(verb, flags, message) for verb, cases in BAD_FLAGS.items() for flags, message in cases]
)
def test_bad_flag_is_refused_in_one_line_without_output(capsys, tmp_path, files, model_dir, verb, flags, message):
    out = tmp_path / "out.png"
    code, err = run(capsys, command(verb, files["good"], out, model_dir, *flags))
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert 1 <= len(err.strip().splitlines()) <= 2
    assert list(tmp_path.iterdir()) == []


def test_a_flag_prefix_is_no_flag(capsys, tmp_path, files, model_dir):
    # argparse took `--mode x0` for `--model x0` (abbreviations): now an unknown flag is refused by name
    code, err = run(capsys, command("sample", files["good"], tmp_path / "out.png", model_dir, "--mode", "x0"))
    assert code == 2 and "unrecognized arguments: --mode x0" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("typo", ["{model}x", "{model}/nope/", "models/nope", "./nope"])
def test_a_model_path_that_is_no_folder_fails_at_once_with_the_nearest(
    capsys, tmp_path, monkeypatch, files, model_dir, typo
):
    # a path-like --model never reaches the hub (models/nope also reads as a hub id: owner/name)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("asked the hub"))
    model = typo.format(model=model_dir)
    argv = command("sample", files["good"], tmp_path / "out.png", model_dir)
    argv[argv.index("--model") + 1] = model
    code, err = run(capsys, argv)
    assert code == 2 and f"model folder {model}: no such folder" in err and len(err.strip().splitlines()) == 1
    nearest = {"{model}x": str(model_dir), "models/nope": "models/ddpm-emoji-faces-32"}.get(typo)
    if nearest:
        assert nearest in err.split("nearest local models:")[1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", VERBS)
def test_unwritable_output_folder(capsys, files, model_dir, verb):
    code, err = run(capsys, command(verb, files["good"], files["blocker"] / "out.png", model_dir))
    assert code == 2 and "cannot create output folder" in err and "Traceback" not in err


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_odd_image_modes_are_converted_and_accepted(capsys, tmp_path, files, model_dir, verb, mode):
    out = tmp_path / "out.png"
    code, err = run(capsys, command(verb, files[f"mode_{mode}"], out, model_dir))
    assert code == 0, err
    with Image.open(out) as written:
        assert written.mode == "RGB"
    assert out.with_suffix(".json").is_file()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary files left
