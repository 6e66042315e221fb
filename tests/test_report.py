"""Tables and figures (stylediff.reporting) and image specs (stylediff.workflow.image_specs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylediff.core.errors import ConfigError, ImageError
from stylediff.core.io import write_json
from stylediff.reporting.figures import caption_name, make_figures
from stylediff.reporting.tables import aggregate
from stylediff.workflow.experiments import lookup
from stylediff.workflow.image_specs import check_spec, image_slug, materialise, resolve_image
from stylediff.workflow.runids import parse_run_id, run_id


def test_image_specs(tmp_path):
    assert image_slug("skimage:brick") == "brick" and image_slug("a/b c.jpg") == "b_c"
    assert resolve_image("skimage:brick", "imgs") == "imgs/brick.png"
    assert resolve_image("data/x.jpg") == "data/x.jpg"
    with pytest.raises(ConfigError):
        check_spec("skimage:nonsense")
    with pytest.raises(ImageError):
        check_spec("missing.png", tmp_path)
    out = materialise("skimage:brick", tmp_path / "brick.png")  # a grey image becomes RGB
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (512, 512)


def _png(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


def _fake_experiment(tmp_path, experiment, runs):
    """The plan rows of ``runs`` and a PNG and metrics JSON per run, as `stylediff metrics` would write."""
    import pandas as pd

    files, rows = [], []
    for i, values in enumerate(runs):
        run = run_id(lookup(experiment), values)
        out = _png(tmp_path / f"{run}.png", i)
        rows.append(
            {"experiment": experiment, "run": run, **parse_run_id(lookup(experiment), run), "job": "j", "output": out}
        )
        ref = _png(tmp_path / f"ref{i}.png", 100 + i)
        doc = {
            "image": out,
            "reference": ref,
            "baseline": ref if experiment in ("transfer", "guidance") else None,
            "metrics": {
                "gram_dist_mean": 0.1 * (i + 1),
                "feature_error": 0.01 * (i + 1),
                "lpips_vgg": 0.05 * i,
                "psnr": 20.0,
                "ssim": 0.5,
            },
            "timing": {"wall_seconds": 1.0 + i, "peak_rss_mb": 800.0, "seconds_per_image": 2.0 + i},
            "final_loss": 0.1,
            "run": {
                "config": {"size": 16, "steps": 5, **({"model": values["model"]} if "model" in values else {})},
                "weights": {"vgg19": {"source": "caffe"}},
                "device": "cpu",
            },
        }
        path = tmp_path / f"{run}.metrics.json"
        write_json(path, doc)
        files.append(path)
    pd.DataFrame(rows).to_csv(tmp_path / "plan.csv", index=False)
    return tmp_path / "plan.csv", files


def test_aggregate_table_and_summary(tmp_path):
    runs = [
        {"image": "skimage:chelsea", "layer": layer, "pooling": "max", "seed": seed}
        for layer in ("relu1_1", "relu4_2")
        for seed in (0, 1)
    ]
    runs_csv, files = _fake_experiment(tmp_path, "inversion", runs)
    frame = aggregate("inversion", runs_csv, files, tmp_path / "t.csv", tmp_path / "s.md")
    table = pd.read_csv(tmp_path / "t.csv")
    assert len(table) == 4 and list(table["seed"]) == [0, 1, 0, 1]
    assert {"image", "layer", "seed", "model", "feature_error", "wall_seconds", "output"} <= set(table.columns)
    assert (table["model"] == "VGG-19 (caffe weights)").all()
    summary = (tmp_path / "s.md").read_text()
    assert "VGG-19 (caffe weights)" in summary and "±" in summary
    assert any(line.replace(" ", "").startswith("|chelsea|relu4_2|max|2|") for line in summary.splitlines())
    assert len(frame) == 4
    write_json(files[0], {**__import__("json").loads(files[0].read_text()), "image": "elsewhere.png"})
    with pytest.raises(ConfigError, match="no metrics file scores"):
        aggregate("inversion", runs_csv, files, tmp_path / "t2.csv")


@pytest.mark.parametrize("experiment", ["inversion", "texture", "transfer", "guidance", "guidance_methods", "networks"])
def test_figures_written_and_byte_identical(tmp_path, experiment):
    networks = experiment == "networks"  # guidance_methods guided on two feature networks
    experiment = "guidance_methods" if networks else experiment
    if experiment == "inversion":
        runs = [
            {"image": img, "layer": layer, "pooling": pooling, "seed": 0}
            for img in ("skimage:a", "skimage:b")
            for layer in ("relu1_1", "relu5_1")
            for pooling in ("max", "avg")
        ]
    elif experiment == "texture":
        runs = [
            {"style": "s.jpg", "layers": layers, "loss": loss, "seed": 0}
            for layers in (["relu1_1"], ["relu1_1", "relu2_1"])
            for loss in ("gram", "mean_std")
        ]
    elif experiment == "transfer":
        runs = [{"content": "c.png", "style": "s.jpg", "loss": loss, "seed": 0} for loss in ("gram", "mean_std")]
    elif experiment == "guidance":
        runs = [
            {
                "model": "models/tiny",
                "style": "s.jpg",
                "loss": "gram",
                "layers": ["relu1_1"],
                "window": window,
                "method": method,
                "scale": scale,
                "seed": seed,
            }
            for method in ("x0", "through_unet")
            for scale in (0, 0.3, 1)
            for seed in (0, 1)
            for window in ([0, 1], [0, 0.5])
        ]
    else:
        runs = [
            {
                "model": "models/tiny",
                "style": style,
                "loss": "gram",
                "network": network,
                "layers": layers,
                "method": method,
                "scale": scale,
                "seed": seed,
            }
            for style in ("s.jpg", "t.jpg")
            for seed in (0, 1)
            for method, scale in (("unguided", 0), ("x0", 0.1), ("x0", 0.3), ("dps", 1.0), ("dps", 3.0))
            for network, layers in [("vgg19", ["relu1_1"])] + ([("clip-vit-b16", ["hidden2"])] if networks else [])
        ]
    runs_csv, files = _fake_experiment(tmp_path, experiment, runs)
    aggregate(experiment, runs_csv, files, tmp_path / "t.csv")
    make_figures(experiment, tmp_path / "t.csv", tmp_path / "fig1")
    section = {"models": ["models/tiny"], "methods": ["x0", "through_unet"]}
    if networks:
        section["networks"] = ["vgg19", {"name": "clip-vit-b16", "layer_sets": [["hidden2"]]}]
    expected = lookup(experiment).figures({"guidance": section, "guidance_methods": section})
    captions = [caption_name(name) for name in expected]
    assert sorted(p.name for p in (tmp_path / "fig1").iterdir()) == sorted(expected + captions)
    make_figures(experiment, tmp_path / "t.csv", tmp_path / "fig2")
    for name in expected + captions:
        first, second = (tmp_path / "fig1" / name).read_bytes(), (tmp_path / "fig2" / name).read_bytes()
        assert first == second, name
        assert first[:8] == b"\x89PNG\r\n\x1a\n" if name.endswith(".png") else first.strip(), name


def test_tables_and_figures_take_labels_and_losses_from_the_metrics_job(tmp_path):
    """aggregate and figures do not import the torch registries: the metrics documents carry the labels
    and the style losses, the table's sidecar passes them on."""
    import json
    import subprocess
    import sys

    from stylediff.reporting.tables import read_table, recorded_label

    runs = [{"style": "s.jpg", "layers": ["relu1_1"], "loss": loss, "seed": 0} for loss in ("gram", "mean_std")]
    runs_csv, files = _fake_experiment(tmp_path, "texture", runs)
    for path in files:
        doc = json.loads(path.read_text())
        doc["metrics"].update(my_loss_mean=0.5, gram_mean=0.25)
        doc.update(
            metric_labels={"gram_dist_mean": "Gram distance (label from the job)"}, style_losses=["my_loss", "gram"]
        )
        write_json(path, doc)
    aggregate("texture", runs_csv, files, tmp_path / "t.csv", tmp_path / "s.md")
    header = next(line for line in (tmp_path / "s.md").read_text().splitlines() if line.startswith("|"))
    assert "my_loss_mean" in header and header.index("my_loss_mean") < header.index("gram_mean")
    frame = read_table(tmp_path / "t.csv")
    assert recorded_label(frame, "gram_dist_mean") == "Gram distance (label from the job)"
    assert recorded_label(frame, "seconds_per_image") == "seconds per image"
    assert recorded_label(frame, "unknown") == "unknown"
    code = (
        "import sys; from stylediff.cli import main; main(['figures', '--experiment', 'texture', '--table', "
        f"{str(tmp_path / 't.csv')!r}, '--out-dir', {str(tmp_path / 'fig')!r}]); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
