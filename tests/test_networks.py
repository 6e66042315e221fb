"""The feature-network registry: every network's layers, losses on any network, CLIP-Gram on a tiny random CLIP,
CSD's conversion against OpenAI CLIP's equations, held-out metrics' order on paintings and noise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylediff.core.errors import LayerError, WeightsError
from stylediff.core.images import load_image
from stylediff.evaluation.heldout import HELDOUT, HeldOut, HeldOutMetric
from stylediff.networks import NETWORKS, load_network, network_available, network_status
from stylediff.nst.losses import STYLE_LOSSES, Objective, StyleTerm

from .conftest import DEMO_MODEL, csd_checkpoint_state, stylediff

ROOT = Path(__file__).resolve().parents[1]
STYLES = sorted((ROOT / "data" / "styles").glob("*.jpg"))


def test_every_network_says_in_one_line_how_to_get_its_weights():
    for name in NETWORKS:
        status = network_status(name)
        assert status is None or ("\n" not in status and status)


def test_absent_clip_weights_are_a_one_line_error_naming_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("STYLEDIFF_NETWORK_CLIP_VIT_B16", raising=False)
    assert not network_available("clip-vit-b16")
    with pytest.raises(WeightsError) as info:
        load_network("clip-vit-b16", path=str(tmp_path / "nothing-here"))
    assert "\n" not in str(info.value) and "stylediff weights fetch --networks clip-vit-b16" in str(info.value)


def test_clip_hidden_states_are_transformers_own_without_the_cls_token(tiny_clip_vision):
    from transformers import CLIPVisionModel

    network = load_network("clip-vit-b16", path=tiny_clip_vision)
    assert network.layers == ("hidden0", "hidden1", "hidden2", "hidden3") and network.style_layers == ("hidden2",)
    images = torch.rand(2, 3, 40, 56)
    ours = network(images, ["hidden2", "hidden1"])
    theirs = CLIPVisionModel.from_pretrained(tiny_clip_vision)(
        pixel_values=network.preprocess(images), output_hidden_states=True
    ).hidden_states
    for k in (1, 2):
        assert ours[f"hidden{k}"].shape == (2, 32, 16, 1)
        torch.testing.assert_close(ours[f"hidden{k}"][..., 0], theirs[k][:, 1:, :].transpose(1, 2))
    with pytest.raises(LayerError):
        network.check_layers("hidden9")
    assert network.provenance()["sha256"] and network.provenance()["path"].startswith(str(tiny_clip_vision))


@pytest.mark.parametrize("loss", list(STYLE_LOSSES))
def test_every_style_loss_runs_on_clip_tokens_and_is_zero_at_the_style(tiny_clip_vision, loss):
    network = load_network("clip-vit-b16", path=tiny_clip_vision)
    style = load_image(STYLES[0], 48)
    objective = Objective(network, {"style": (StyleTerm(network, style, network.style_layers, loss), 1.0)})
    noise = torch.rand(1, 3, 48, 48, requires_grad=True)
    at_style, at_noise = objective(style).item(), objective(noise)
    at_noise.sum().backward()
    assert at_style < 1e-4 * max(at_noise.item(), 1e-12) + 1e-6 and torch.isfinite(noise.grad).all()
    assert noise.grad.abs().sum() > 0


def test_clip_gram_texture_through_the_cli(tiny_clip_vision, tmp_path):
    out = tmp_path / "t.png"
    done = stylediff(
        *("texture", "--style", STYLES[0], "--network", "clip-vit-b16", "--network-path", tiny_clip_vision),
        *("--size", 32, "--steps", 5, "--scales", "none", "--device", "cpu", "--out", out, "--no-progress"),
    )
    assert done.stdout.count("\n") == 1 and done.stderr == ""  # one line saying what it wrote
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["config"]["layers"] == "hidden2" and sidecar["config"]["network"] == "clip-vit-b16"
    assert sidecar["weights"]["network"]["name"] == "clip-vit-b16"
    history = sidecar["history"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_pooling_applies_only_to_networks_that_take_it(tiny_clip_vision, tmp_path):
    done = stylediff(
        *("texture", "--style", STYLES[0], "--network", "clip-vit-b16", "--network-path", tiny_clip_vision),
        *("--pooling", "avg", "--out", tmp_path / "t.png"),
        check=False,
    )
    takes = [name for name, spec in NETWORKS.items() if "pooling" in spec.options]
    assert takes and "pooling" not in NETWORKS["clip-vit-b16"].options
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"applies to {', '.join(takes)} only, not to --network clip-vit-b16" in done.stderr
    assert not (tmp_path / "t.png").exists()


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_torchvision_backbones_reach_their_layers_at_their_min_size(name):
    if not network_available(name):
        pytest.skip(network_status(name))
    network = load_network(name)
    side = network.min_size(network.layers)
    feats = network(torch.rand(1, 3, side, side), network.layers)
    assert all(min(f.shape[-2:]) >= 1 for f in feats.values())
    with pytest.raises(RuntimeError):  # one pixel less does not reach the last layer
        network(torch.rand(1, 3, side - 1, side - 1), network.layers)
    assert torch.isfinite(feats[network.layers[-1]]).all()


# ------------------------------------------------------------------------------------------ CSD
def _openai_reference(state, x):
    """OpenAI CLIP's VisionTransformer.forward (clip/model.py), transcribed: conv1, class token, positions,
    ln_pre, residual blocks (nn.MultiheadAttention with in_proj, QuickGELU MLP), ln_post of token 0, proj."""
    v = {k[len("backbone.") :]: t for k, t in state.items() if k.startswith("backbone.")}
    width = v["conv1.weight"].shape[0]
    x = F.conv2d(x, v["conv1.weight"], stride=v["conv1.weight"].shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([v["class_embedding"].expand(x.shape[0], 1, width), x], 1) + v["positional_embedding"]
    x = F.layer_norm(x, (width,), v["ln_pre.weight"], v["ln_pre.bias"], 1e-5).transpose(0, 1)
    i = 0
    while f"transformer.resblocks.{i}.ln_1.weight" in v:
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (width,), v[p + "ln_1.weight"], v[p + "ln_1.bias"], 1e-5)
        attn, _ = F.multi_head_attention_forward(
            h,
            h,
            h,
            width,
            max(1, width // 64),
            v[p + "attn.in_proj_weight"],
            v[p + "attn.in_proj_bias"],
            None,
            None,
            False,
            0.0,
            v[p + "attn.out_proj.weight"],
            v[p + "attn.out_proj.bias"],
            need_weights=False,
        )
        x = x + attn
        h = F.layer_norm(x, (width,), v[p + "ln_2.weight"], v[p + "ln_2.bias"], 1e-5)
        h = F.linear(h, v[p + "mlp.c_fc.weight"], v[p + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), v[p + "mlp.c_proj.weight"], v[p + "mlp.c_proj.bias"])
        i += 1
    x = F.layer_norm(x[0], (width,), v["ln_post.weight"], v["ln_post.bias"], 1e-5)
    return F.normalize(x @ state["last_layer_style"], dim=1)


def test_csd_embedding_equals_openai_clip_equations_on_a_converted_checkpoint(tmp_path, monkeypatch):
    state = csd_checkpoint_state()
    path = tmp_path / "checkpoint.pth"
    torch.save({"model_state_dict": state, "epoch": 1}, path)
    monkeypatch.setenv("STYLEDIFF_NETWORK_CSD", str(path))
    assert network_available("csd")
    network = load_network("csd")
    images = torch.rand(3, 3, 24, 30)
    ours = network(images, ["style", "hidden1"])
    theirs = _openai_reference({k.removeprefix("module."): t for k, t in state.items()}, network.preprocess(images))
    torch.testing.assert_close(ours["style"][..., 0, 0], theirs, atol=1e-5, rtol=1e-4)
    assert ours["hidden1"].shape == (3, 64, 9, 1)
    monkeypatch.setenv("STYLEDIFF_NETWORK_CSD", str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="STYLEDIFF_NETWORK_CSD"):
        load_network("csd")


# ------------------------------------------------------------------------------------ held out
def _painting_crops(side=64):
    """The style image, another painting, uniform noise."""
    style, other = load_image(STYLES[0], side), load_image(STYLES[1], side)
    noise = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    return style, other, noise


def _check_order(held: HeldOut, column: str):
    style, other, noise = _painting_crops()
    d = {
        name: held.distances(image, style, None)[column]
        for name, image in (("self", style), ("other", other), ("noise", noise))
    }
    assert d["self"] < 1e-5 < d["other"] < d["noise"], d


@pytest.mark.parametrize("metric", [m for m in HELDOUT if m.network in ("vgg16", "alexnet")], ids=lambda m: m.column)
def test_heldout_real_backbones_rank_self_then_another_painting_then_noise(metric):
    if not network_available(metric.network):
        pytest.skip(network_status(metric.network))
    _check_order(HeldOut("true", metrics=[metric]), metric.column)


def test_heldout_with_random_weights_offline_fixture(tiny_clip_vision, tmp_path, monkeypatch):
    """No ../shared needed: a random-weight AlexNet file and the tiny random CLIP through the env variables."""
    import torchvision

    torch.manual_seed(0)
    alex = tmp_path / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
    monkeypatch.setenv("STYLEDIFF_NETWORK_ALEXNET", str(alex))
    monkeypatch.setenv("STYLEDIFF_NETWORK_CLIP_VIT_B32", str(tiny_clip_vision))
    metrics = [m for m in HELDOUT if m.network in ("alexnet", "clip-vit-b32")]
    held = HeldOut("true", metrics=metrics)
    for metric in metrics:
        _check_order(held, metric.column)
    # a run that optimised CLIP-B/32 is not graded by it
    assert set(held.distances(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), "clip-vit-b32")) == {
        "heldout_alexnet_gram"
    }


def test_heldout_auto_skips_absent_networks_in_one_line_and_true_fails(capsys, monkeypatch):
    monkeypatch.delenv("STYLEDIFF_NETWORK_CSD", raising=False)
    absent = HeldOutMetric("heldout_csd", "csd", "cosine", "x")
    held = HeldOut("auto", metrics=[absent])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "heldout_csd" in err and held.metrics == []
    opt_in = HeldOutMetric("heldout_csd", "csd", "cosine", "x", optional=True)  # CLIP, CSD: said in provenance only
    assert HeldOut("auto", metrics=[opt_in]).provenance() == {"heldout_csd": {"skipped": held.skipped["heldout_csd"]}}
    assert capsys.readouterr().err == ""
    assert held.distances(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), None) == {}
    with pytest.raises(WeightsError):
        HeldOut("true", metrics=[absent])
    HeldOut("false", metrics=[absent])
    assert capsys.readouterr().err == ""


def test_clip_gram_guides_sampling(tiny_clip_vision, tiny_ddpm_dir, tmp_path):
    """`stylediff sample --network clip-vit-b16`: the guidance loss is the CLIP-Gram of the tiny CLIP."""
    from stylediff.cli import main

    runs = {}
    for scale in ("0", "5"):
        out = tmp_path / f"s{scale}.png"
        assert (
            main(
                [
                    "sample",
                    "--model",
                    str(tiny_ddpm_dir),
                    "--style",
                    str(STYLES[0]),
                    "--out",
                    str(out),
                    "--network",
                    "clip-vit-b16",
                    "--network-path",
                    str(tiny_clip_vision),
                    "--steps",
                    "3",
                    "--scale",
                    scale,
                    "--method",
                    "x0",
                    "--device",
                    "cpu",
                    "--no-progress",
                ]
            )
            == 0
        )
        runs[scale] = json.loads(out.with_suffix(".json").read_text())
        assert (
            runs[scale]["config"]["layers"] == "hidden2" and runs[scale]["weights"]["network"]["name"] == "clip-vit-b16"
        )
    assert runs["5"]["final_style_loss"][0] != runs["0"]["final_style_loss"][0]


def test_weights_fetch_networks_offline_is_one_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    done = stylediff("weights", "fetch", "--networks", "clip-vit-b32", env=env, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "openai/clip-vit-base-patch32" in done.stderr and "--networks clip-vit-b32" in done.stderr


def test_a_full_clip_checkpoint_loads_its_image_encoder(tmp_path):
    """The hub repos hold a whole CLIPModel (text + vision): the network reads its vision weights exactly."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=49408
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(tmp_path)
    network = load_network("clip-vit-b32", path=tmp_path)
    images = torch.rand(1, 3, 32, 32)
    theirs = model.vision_model(pixel_values=network.preprocess(images), output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(network(images, ["hidden2"])["hidden2"][..., 0], theirs[:, 1:, :].transpose(1, 2))


def test_transfer_on_clip_takes_the_networks_content_layer(tiny_clip_vision, tmp_path):
    from stylediff.cli import main

    out = tmp_path / "t.png"
    assert (
        main(
            [
                "transfer",
                "--content",
                str(STYLES[1]),
                "--style",
                str(STYLES[0]),
                "--network",
                "clip-vit-b16",
                "--network-path",
                str(tiny_clip_vision),
                "--size",
                "32",
                "--steps",
                "3",
                "--scales",
                "none",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    config = json.loads(out.with_suffix(".json").read_text())["config"]
    assert config["content_layer"] == "hidden1" and config["layers"] == "hidden2"


def test_metrics_documents_carry_the_heldout_columns_of_networks_the_run_did_not_use(tmp_path):
    """`stylediff metrics`' document: VGG-16 and AlexNet Gram for a VGG-19 run; no VGG-16 column for a VGG-16 run."""
    from stylediff.core.images import save_image
    from stylediff.core.io import write_json
    from stylediff.evaluation.document import image_metrics
    from stylediff.evaluation.scorer import Scorer

    present = [m.column for m in HELDOUT if m.network in ("vgg16", "alexnet") and network_available(m.network)]
    if not present:
        pytest.skip("no VGG-16 / AlexNet backbone files (stylediff weights fetch)")
    scorer = Scorer(lpips=False)
    style = STYLES[0]
    docs = {}
    for network in (None, "vgg16"):
        path = tmp_path / f"{network}.png"
        save_image(load_image(STYLES[1], 48), path)
        write_json(path.with_suffix(".json"), {"config": {"size": 48, "network": network}})
        docs[network] = image_metrics(scorer, "texture", path, style)["metrics"]
    assert set(present) <= set(docs[None]) and all(0 < docs[None][c] < 1 for c in present)
    assert "heldout_vgg16_gram" not in docs["vgg16"]
    assert ("heldout_alexnet_gram" in docs["vgg16"]) == ("heldout_alexnet_gram" in present)


def test_clip_gram_guides_sampling_through_the_cli(tiny_clip_vision, tmp_path):
    """CLIP-Gram as the guidance loss of `stylediff sample` (the sd_style preset's second network): the
    guided sample of a seed has a lower CLIP-Gram loss than the unguided one, and the sidecar says which
    network guided it."""
    losses = {}
    for scale in (0, 0.3):
        out = tmp_path / f"g{scale}.png"
        stylediff(
            *("sample", "--model", DEMO_MODEL, "--style", STYLES[0], "--network", "clip-vit-b16"),
            *("--network-path", tiny_clip_vision, "--method", "through_unet", "--scale", scale, "--steps", 8),
            *("--seed", 0, "--device", "cpu", "--no-progress", "--out", out),
        )
        sidecar = json.loads(out.with_suffix(".json").read_text())
        assert sidecar["config"]["network"] == "clip-vit-b16" and sidecar["config"]["layers"] == "hidden2"
        losses[scale] = sidecar["final_style_loss"]
    assert losses[0.3] < losses[0], losses
