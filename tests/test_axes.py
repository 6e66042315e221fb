"""Axes as data (stylediff.workflow.runids, stylediff.workflow.experiments): the run-id kinds, the axis
rule, every committed table's run ids, and the recipe of docs/concepts.md "An experiment axis": a new
axis is its ``Axis`` line."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pandas as pd
import pytest

from stylediff.core.errors import ConfigError
from stylediff.workflow import plan
from stylediff.workflow.experiments import EXPERIMENTS, lookup
from stylediff.workflow.runids import CODECS, Axis, parse_run_id, run_id, split_run
from stylediff.workflow.spec import Experiment

from .conftest import preset_config

ROOT = Path(__file__).resolve().parents[1]
TABLES = sorted(ROOT.glob("report/**/tables/*.csv"))

SAMPLES = {
    "name": ["gram", "x0", "per_step", "relu4_2"],
    "seed": [0, 3, 1000],
    "scale": [0, 0.03, 1, 2.25, 1e-3, 1e-5, 1e6, 9000],
    "window": [[0.0, 1.0], [0.25, 0.75], "0-1"],
    "layers": [["relu1_1"], ["relu1_1", "relu2_1"], ["hidden2"]],
    "image": ["data/styles/starry night.jpg", "skimage:brick"],
    "model": ["google/ddpm-cifar10-32", "models/ddpm-emoji-faces-32/", "stable-diffusion-v1-5/stable-diffusion-v1-5"],
    "network": ["vgg19", "clip-vit-b16"],
    "prompt": ["a cat", "a lighthouse on a rocky coast at dusk", ""],
}


@pytest.mark.parametrize("kind", list(CODECS))
def test_each_kind_writes_a_slug_that_reads_back_and_carries_its_mark(kind):
    codec = CODECS.lookup(kind)()
    assert SAMPLES.get(kind), f"give the new kind {kind!r} sample values here"
    for value in SAMPLES[kind]:
        text = codec.encode(value)
        assert "__" not in text and "/" not in text and "." not in text and " " not in text, text
        assert codec.recognises(text), (value, text)
        assert codec.encode(codec.decode(text)) == text  # what a table shows writes the same id


def test_the_marks_tell_the_kinds_apart():
    marked = [kind for kind in CODECS if CODECS.lookup(kind).mark]
    for kind in marked:
        for other in marked:
            if other != kind:
                texts = [CODECS.lookup(other)().encode(value) for value in SAMPLES[other]]
                assert not any(CODECS.lookup(kind)().recognises(text) for text in texts), (kind, other)
    assert not CODECS.lookup("scale")().recognises("gram") and not CODECS.lookup("seed")().recognises("starry")


@pytest.mark.parametrize("table", TABLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_committed_run_id_reads_back(table):
    """The committed tables' ids stay valid: each reads back to the table's own columns, and those
    columns write the same id."""
    frame = pd.read_csv(table, keep_default_na=False)
    for experiment, rows in frame.groupby("experiment"):
        spec = lookup(experiment)
        columns = [axis.name for axis in spec.axes if axis.name in rows]
        for _, row in rows.iterrows():
            parsed = parse_run_id(spec, row["run"])
            assert run_id(spec, parsed) == row["run"]
            assert run_id(spec, {name: row[name] for name in columns}) == row["run"]
            assert split_run(spec, row["run"])[1]  # every id has its batched part


def broken(**changes) -> Experiment:
    return dataclasses.replace(lookup("guidance"), **changes)


@pytest.mark.parametrize(
    "changes, words",
    [
        (  # a second optional axis without a mark: ids with one of the two left out read two ways
            {
                "axes": (
                    *lookup("guidance").axes[:-1],
                    Axis("extra", "extras", default="a", flag="--extra"),
                    lookup("guidance").axes[-1],
                )
            },
            "the optional axes 'normalization', 'extra' have no mark",
        ),
        ({"batched": "normalization"}, "the batched or grouped axis 'normalization' has a default"),
        ({"batched": ("loss", "method")}, "the batched axes are not consecutive"),
        ({"grouped": "scale"}, "the grouped axis 'scale' is not the last"),
        ({"axes": (*lookup("guidance").axes[:-1], Axis("seed", "seeds", "seed"))}, "axis 'seed' declares no flag"),
        ({"batched": "methods"}, "'methods': not one axis each"),
    ],
)
def test_a_spec_that_breaks_the_axis_rule_is_one_line_naming_it(changes, words):
    with pytest.raises(ConfigError) as error:
        broken(**changes)
    message = str(error.value)
    assert words in message and "the axis rule: " in message and "\n" not in message


def test_an_optional_axis_after_the_batched_one_needs_only_its_axis_line(monkeypatch):
    """The recipe: a throw-away experiment (texture's spec) gets a throw-away axis with a default (so the
    ids written before it stay valid) by its Axis line alone, after the batched axes. It plans, its ids
    read back and split around the batched part, and its flag reaches the verb with each value."""
    texture = lookup("texture")
    axes = list(texture.axes)
    axes.insert(3, Axis("init", "inits", default="noise", flag="--init"))  # after the batched layers, loss
    spec = dataclasses.replace(texture, name="texture_init", axes=tuple(axes))
    monkeypatch.setitem(EXPERIMENTS, spec.name, spec)
    config = preset_config()
    config = {
        **config,
        "experiments": ["texture", spec.name],
        spec.name: {**config["texture"], "inits": ["noise", "mean"]},
    }
    built = plan.build(config)
    old = built.runs[built.runs["experiment"] == "texture"]
    new = built.runs[built.runs["experiment"] == spec.name]
    assert len(new) == 2 * len(old) and set(new["init"]) == {"noise", "mean"}
    assert set(new[new["init"] == "noise"]["run"]) == set(old["run"])  # the ids written before the axis
    for run, init in zip(new["run"], new["init"]):
        assert run_id(spec, parse_run_id(spec, run)) == run
        _, part, tail = split_run(spec, run)
        assert part == split_run(texture, run.replace("__mean__", "__"))[1]
        assert tail == ("mean__s0" if init == "mean" else "s0")
    jobs = built.jobs(spec.name)
    assert len(jobs) == 2 * len(built.jobs("texture"))
    for job, runs in jobs.items():
        lines = [shlex.split(line) for line in built.commands(spec.name, job)]
        init = parse_run_id(spec, runs[0])["init"]
        assert all(words[words.index("--init") + 1] == init for words in lines)
        assert len(built.job_outputs(spec.name, ".png")) == len(runs)
    texture_lines = [line for job in built.jobs("texture") for line in built.commands("texture", job)]
    lines = {line.replace(" --init noise ", " ") for job in jobs for line in built.commands(spec.name, job)}
    assert lines >= {line.replace("results/texture/", f"results/{spec.name}/") for line in texture_lines}


@pytest.mark.parametrize("where", ["before the batched axis", "after the batched axis"])
def test_the_ids_of_both_guidance_networks_stay_valid_beside_a_new_optional_axis(where, monkeypatch):
    """The issue's case: an unmarked optional axis added to guidance_methods with its Axis line alone kept
    neither the CLIP-network ids (they stopped parsing) nor split_run (placed after the batched axis)."""
    methods = lookup("guidance_methods")
    axes = list(methods.axes)
    at = [axis.name for axis in axes].index("method") + (where == "after the batched axis")
    axes.insert(at, Axis("guide_every", "guide_every", default="all", flag="--guide-every"))
    spec = dataclasses.replace(methods, axes=tuple(axes))
    config = preset_config("sd_style")
    before = plan.build(config).runs
    assert set(before["network"]) == {"vgg19", "clip-vit-b16"} and before["prompt"].str.len().min() > 0
    for run in before["run"]:
        assert parse_run_id(spec, run) == {**parse_run_id(methods, run), "guide_every": "all"}
        assert split_run(spec, run) == split_run(methods, run)
    monkeypatch.setitem(EXPERIMENTS, "guidance_methods", spec)
    config["guidance_methods"] = {**config["guidance_methods"], "guide_every": ["all", "odd"]}
    after = plan.build(config).runs
    assert set(before["run"]) < set(after["run"]) and len(after) == 2 * len(before)
    for run in after["run"]:
        assert run_id(spec, parse_run_id(spec, run)) == run


def test_a_value_that_looks_like_a_mark_is_named_not_misread():
    """A style whose slug carries the prompt's mark would read as a prompt: the plan names the run id."""
    config = preset_config()
    config = {**config, "guidance_methods": {**config["guidance_methods"], "styles": ["data/p-cat-abc123.png"]}}
    with pytest.raises(ConfigError, match=r"run id 'ddpm-emoji-faces-32__p-cat-abc123__gram__.*'") as error:
        plan.build(config)
    assert "\n" not in str(error.value)
