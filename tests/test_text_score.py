"""TFG's CLIP text score (stylediff.evaluation.text_score) on a tiny random CLIPModel saved to a temporary folder, and the
``clip_text_score`` column of guidance metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylediff.core.errors import WeightsError
from stylediff.core.images import load_image, save_image
from stylediff.core.io import write_json
from stylediff.core.provenance import file_sha256
from stylediff.evaluation.document import image_metrics
from stylediff.evaluation.scorer import Scorer
from stylediff.evaluation.text_score import COLUMN, ENV_VAR, TextScore, load, status

from .conftest import clip_tokenizer, stylediff

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "data" / "styles" / "starry_night.jpg"
PROMPTS = ["lower", "newer", "lowest", "wider", "low", "lower newer", "newer lowest wider"]
SIZE = 32
"""The tiny model's input side (its processor: shorter side to 32, centre crop 32)."""
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def image_processor():
    try:
        return transformers.CLIPImageProcessorPil
    except AttributeError:  # transformers 4
        return transformers.CLIPImageProcessor


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A random CLIPModel (text and vision: hidden 16, 2 layers; 32-px input, 8-px patches), its tokenizer (the
    latent tests' 23-token vocabulary) and image processor, saved as one local folder."""
    folder = tmp_path_factory.mktemp("clip-text")
    tokenizer = clip_tokenizer(folder / "vocab")
    torch.manual_seed(2)  # a seed whose cosines take both signs (test_the_score_is_clips_cosine_times_100_clamped_at_0)
    config = transformers.CLIPConfig(
        text_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=SIZE,
            patch_size=8,
        ),
        projection_dim=8,
    )
    transformers.CLIPModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor()(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(folder)
    return folder


@pytest.fixture
def local_clip(tiny_clip, monkeypatch) -> Path:
    monkeypatch.setenv(ENV_VAR, str(tiny_clip))
    return tiny_clip


def images() -> list[np.ndarray]:
    """Three uint8 images of 48 x 40 px (not square: the shorter side is resized, the longer one cropped): noise,
    the painting, the painting upside down and darker."""
    noise = (torch.rand(48, 40, 3, generator=torch.Generator().manual_seed(1)) * 255).round().to(torch.uint8)
    painting = Image.open(STYLE).convert("RGB").resize((40, 48), Image.BICUBIC)
    dark = np.asarray(painting.transpose(Image.FLIP_TOP_BOTTOM)) // 3
    return [noise.numpy(), np.array(painting), dark.astype(np.uint8)]


def clip_score_by_hand(model, tokenizer, array: np.ndarray, prompt: str) -> float:
    """torchmetrics' CLIPScore: max(100 · cos, 0) of CLIPModel's own normalised embeddings, the image through
    CLIP's preprocessing written out: PIL bicubic resize of the shorter side, centre crop, mean/std."""
    height, width = array.shape[:2]
    resized = (SIZE, int(SIZE * height / width)) if width <= height else (int(SIZE * width / height), SIZE)
    pil = Image.fromarray(array).resize(resized, Image.BICUBIC)
    left, top = (resized[0] - SIZE) // 2, (resized[1] - SIZE) // 2
    pixels = np.asarray(pil.crop((left, top, left + SIZE, top + SIZE)), dtype=np.float32) / 255
    pixels = (pixels - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    with torch.no_grad():
        out = model(
            pixel_values=torch.from_numpy(pixels).permute(2, 0, 1)[None],
            **tokenizer([prompt], return_tensors="pt"),
        )
    return max(100 * (out.image_embeds * out.text_embeds).sum().item(), 0.0)


def test_the_score_is_clips_cosine_times_100_clamped_at_0(local_clip):
    model = transformers.CLIPModel.from_pretrained(local_clip).eval()
    tokenizer = transformers.CLIPTokenizer.from_pretrained(local_clip)
    scorer = load()
    assert scorer.provenance()["sha256"] == file_sha256(local_clip / "model.safetensors")
    got, expected = [], []
    for array in images():
        image = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
        for prompt in PROMPTS:
            got.append(scorer.score(image, prompt).item())
            expected.append(clip_score_by_hand(model, tokenizer, array, prompt))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert min(got) == 0 and max(got) > 1  # the clamp and the cosine are both exercised
    assert len({round(value, 4) for value in got}) > len(PROMPTS)  # image and prompt both matter


class ProjectedFeatures(torch.nn.Module):
    """A CLIPModel as torchmetrics (written for transformers 4) reads it: ``get_*_features`` return tensors."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs):
        out = self.model.get_image_features(*args, **kwargs)
        return getattr(out, "pooler_output", out)

    def get_text_features(self, *args, **kwargs):
        out = self.model.get_text_features(*args, **kwargs)
        return getattr(out, "pooler_output", out)


def test_the_score_is_torchmetrics_clip_score_as_tfg_calls_it(local_clip):
    """TFG's ``_compute_clip_score``: torchmetrics' CLIP score of the uint8 sample and its text, same model."""
    clip_score = pytest.importorskip("torchmetrics.functional.multimodal").clip_score
    model = ProjectedFeatures(transformers.CLIPModel.from_pretrained(local_clip).eval())
    processor = transformers.CLIPProcessor(
        image_processor=image_processor().from_pretrained(local_clip),
        tokenizer=transformers.CLIPTokenizer.from_pretrained(local_clip),
    )
    scorer = load()
    for array in images():
        pixels = torch.from_numpy(array).permute(2, 0, 1)
        for prompt in PROMPTS:
            with torch.no_grad():
                theirs = clip_score([pixels], [prompt], lambda: (model, processor)).item()
            assert scorer.score(pixels[None].float() / 255, prompt).item() == pytest.approx(theirs, abs=1e-5)


def test_a_run_without_a_prompt_gets_no_value_and_loads_nothing(local_clip, capsys):
    score = TextScore("true")
    image = torch.rand(1, 3, 40, 40)
    assert score.scores(image, None) == {} and score.scores(image, "") == {}
    assert score.provenance() == {"source": str(local_clip), "unused": "no output had a prompt"}
    assert COLUMN in score.scores(image, "lower") and "sha256" in score.provenance()
    assert capsys.readouterr().err == ""


def test_absent_weights_skip_in_one_line_under_auto_and_fail_under_true(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))  # an empty folder
    assert "stylediff weights fetch --text-score" in status()
    score = TextScore("auto")
    image = torch.rand(1, 3, 40, 40)
    assert score.scores(image, None) == {} and capsys.readouterr().err == ""  # quiet while no run has a prompt
    assert score.scores(image, "lower") == {} and score.scores(image, "newer") == {}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CLIP text score skipped" in err and "--text-score" in err
    assert score.provenance() == {"skipped": status()}
    with pytest.raises(WeightsError) as info:
        TextScore("true")
    assert "\n" not in str(info.value) and "stylediff weights fetch --text-score" in str(info.value)
    assert TextScore("false").scores(image, "lower") == {} and capsys.readouterr().err == ""


def test_an_image_encoder_alone_is_refused_not_completed_with_random_weights(tiny_clip, monkeypatch, tmp_path):
    """The clip-vit-b32 network's folder may hold a CLIPVisionModel: the text half would be random."""
    model = transformers.CLIPModel.from_pretrained(tiny_clip)
    transformers.CLIPVisionModel(model.config.vision_config).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((tiny_clip / name).read_bytes())
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert status() is None
    with pytest.raises(WeightsError, match="not a full CLIPModel"):
        TextScore("true").scores(torch.rand(1, 3, 40, 40), "lower")


def _output(folder: Path, name: str, array: np.ndarray, config: dict) -> Path:
    path = folder / f"{name}.png"
    save_image(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255, path)
    write_json(path.with_suffix(".json"), {"config": config, "final_style_loss": [0.5]})
    return path


def test_guidance_metrics_of_a_prompted_run_have_the_column(local_clip, tmp_path):
    arrays = images()
    prompted = _output(tmp_path, "sd", arrays[0], {"prompt": "lower newer", "size": 48})
    pixel = _output(tmp_path, "ddpm", arrays[0], {"prompt": None, "size": 48})
    baseline = _output(tmp_path, "unguided", arrays[1], {"prompt": "lower newer", "size": 48})
    scorer = Scorer(lpips=False, heldout=False, text_score="true")
    doc = image_metrics(scorer, "guidance", prompted, STYLE, baseline_path=baseline)
    expected = load().score(load_image(prompted), "lower newer").item()
    assert doc["metrics"][COLUMN] == pytest.approx(expected, abs=1e-6) and "gram_dist_mean" in doc["metrics"]
    assert COLUMN not in image_metrics(scorer, "guidance", pixel, STYLE, baseline_path=baseline)["metrics"]
    assert scorer.provenance()["clip_text_score"]["source"] == str(local_clip)


def test_weights_fetch_text_score_offline_is_one_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    done = stylediff("weights", "fetch", "--text-score", env=env, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "openai/clip-vit-base-patch32" in done.stderr and "stylediff weights fetch --text-score" in done.stderr
