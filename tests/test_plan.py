"""The experiment plan (stylediff.workflow.plan, stylediff.workflow.experiments, stylediff.workflow.runids): run ids, runs per preset, jobs and their command lines.
torch-free: these tests also check that the plan imports no torch."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stylediff.core.errors import ConfigError
from stylediff.networks.vgg19_layers import min_input_size
from stylediff.workflow import plan
from stylediff.workflow.experiments import lookup, method_scales, network_layer_sets
from stylediff.workflow.runids import SEPARATOR, model_slug, parse_run_id, run_id, split_run
from stylediff.workflow.spec import method_entries

from .conftest import preset_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("normalization", ["per_step", "first_step"])
@pytest.mark.parametrize("scale", [0, 0.5, 1, 3, 1e-3, 1e6, 2.25])
def test_run_id_round_trip(scale, normalization):
    values = {
        "model": "google/ddpm-cifar10-32",
        "style": "data/styles/starry night.jpg",
        "loss": "gram",
        "layers": ["relu1_1", "relu2_1"],
        "window": [0.25, 1.0],
        "method": "x0",
        "normalization": normalization,
        "scale": scale,
        "seed": 3,
    }
    run = run_id(lookup("guidance"), values)
    assert "." not in run and "/" not in run and " " not in run
    parsed = parse_run_id(lookup("guidance"), run)
    # an unguided sample has nothing to normalise: it is the default-normalisation run for every one
    expected_norm = "per_step" if scale == 0 else normalization
    assert parsed == {
        "model": "ddpm-cifar10-32",
        "style": "starry_night",
        "loss": "gram",
        "layers": "relu1_1-relu2_1",
        "window": "0.25-1",
        "method": "x0",
        "normalization": expected_norm,
        "scale": pytest.approx(scale),
        "seed": 3,
    }
    assert run_id(lookup("guidance"), parsed) == run


def test_default_normalisation_keeps_the_run_ids_of_older_grids():
    values = {
        "model": "m",
        "style": "s.png",
        "loss": "gram",
        "layers": ["relu1_1"],
        "window": [0, 1],
        "method": "x0",
        "scale": 0.1,
        "seed": 0,
    }
    older = "m__s__gram__relu1_1__w0-1__x0__g0p1__s0"
    assert (
        run_id(lookup("guidance"), values)
        == older
        == run_id(lookup("guidance"), {**values, "normalization": "per_step"})
    )
    assert (
        run_id(lookup("guidance"), {**values, "normalization": "first_step"})
        == "m__s__gram__relu1_1__w0-1__x0__first_step__g0p1__s0"
    )
    assert run_id(lookup("guidance"), {**values, "scale": 0, "normalization": "first_step"}).endswith("__x0__g0__s0")


def test_run_id_matches_design_example_and_rejects_bad_ids():
    run = run_id(
        lookup("texture"),
        {"style": "data/styles/starry_night.jpg", "layers": ["relu1_1", "relu2_1"], "loss": "gram", "seed": 0},
    )
    assert run == "starry_night__relu1_1-relu2_1__gram__s0"
    assert split_run(lookup("texture"), run) == ("starry_night", "relu1_1-relu2_1__gram", "s0")  # layers x losses
    with pytest.raises(ConfigError):
        parse_run_id(lookup("texture"), "starry_night__gram__s0")
    with pytest.raises(ConfigError):
        lookup("nonsense")
    assert model_slug("models/ddpm-emoji-32/") == "ddpm-emoji-32"


def runs_of(built: plan.Plan, name: str):
    return built.runs[built.runs["experiment"] == name]


def assert_grid(frame, columns: list[str]) -> None:
    """Every combination of the columns' values is one row of ``frame``, once."""
    assert not frame.duplicated(columns).any()
    assert len(frame) == math.prod(frame[column].nunique() for column in columns)


def shown(spec, axis, values) -> set:
    """The values a table shows of the config values of one axis."""
    return {value if value == axis.default else axis.decode(axis.encode(value)) for value in values}


def assert_texture_grid(spec, section: dict, runs) -> None:
    """texture: the product of its axes, except that a loss given with its own layer sets runs on those only."""
    only = {e["name"]: e["layer_sets"] for e in section["losses"] if isinstance(e, dict)}
    for loss, group in runs.groupby("loss"):
        sets = only.get(loss, section["layer_sets"])
        assert set(group["layers"]) == shown(spec, spec.axis("layers"), sets), loss
        assert_grid(group, [axis.name for axis in spec.axes])


def assert_method_grid(spec, section: dict, runs) -> None:
    """guidance_methods: each setting samples every method at its scales (its style group's, where the
    method has them) and once unguided; each network at its own layer sets."""
    axes = [axis.name for axis in spec.axes]
    style_axis = spec.axis("style")
    config_style = {next(iter(shown(spec, style_axis, [style]))): style for style in section["styles"]}
    setting = [a for a in axes if a not in ("method", "scale")]
    for _, group in runs.groupby(setting):
        style = config_style[group["style"].iloc[0]]
        pairs = {("unguided", 0.0)} | {
            (method, float(scale))
            for method, entry in method_entries(section).items()
            for scale in method_scales(section, entry, style)
        }
        assert set(zip(group["method"], group["scale"])) == pairs and len(group) == len(pairs)
    settings = runs.drop_duplicates(setting)
    assert_grid(
        settings.assign(pair=settings["network"] + "/" + settings["layers"]),
        [a for a in setting if a not in ("network", "layers")] + ["pair"],
    )
    for network, group in settings.groupby("network"):
        assert set(group["layers"]) == shown(spec, spec.axis("layers"), network_layer_sets(section, network))


@pytest.mark.parametrize("preset", ["quick", "findings", "full", "sd_style"])
def test_runs_are_every_combination_of_the_axes_once(preset):
    """Run ids are unique and read back; each axis takes every value of its config list; the runs of a
    product experiment are its axes' grid (the guided samples of guidance; its unguided ones one per
    method and setting, under the default normalisation); guidance_methods samples each setting at
    every method's scales and once unguided, each network at its own layer sets."""
    config = preset_config(preset)
    built = plan.build(config)
    for name in config["experiments"]:
        spec, runs = lookup(name), runs_of(built, name)
        assert runs["run"].is_unique and len(runs) > 1
        for run in runs["run"]:
            assert run_id(spec, parse_run_id(spec, run)) == run
        axes = [axis.name for axis in spec.axes]
        for axis in spec.axes:
            if axis.name not in ("method", "scale", "layers") or spec.combinations is None:
                assert set(runs[axis.name]) == shown(spec, axis, spec.values(config, axis)), (name, axis.name)
        if name == "guidance":
            guided, unguided = runs[runs["scale"] > 0], runs[runs["scale"] == 0]
            assert_grid(guided, axes)
            assert set(unguided["normalization"]) == {"per_step"}
            assert_grid(unguided, [a for a in axes if a != "normalization"])
            others = [a for a in axes if a not in ("normalization", "scale")]
            assert set(map(tuple, unguided[others].values)) == set(map(tuple, guided[others].values))
        elif spec.combinations is None:
            assert_grid(runs, axes)
        elif name == "texture":
            assert_texture_grid(spec, config[name], runs)
        else:
            assert_method_grid(spec, config[name], runs)
        jobs = built.jobs(name)
        assert sorted(run for runs_ in jobs.values() for run in runs_) == sorted(runs["run"])
        for group in built.job_groups(name):  # every job fills its rule's patterns: one output per run
            patterns = built.job_outputs(name, ".png", group)
            for job in group:
                assert len(patterns) == len(jobs[job]), (preset, name)


@pytest.mark.parametrize("preset", ["quick", "sd_style"])
def test_each_command_line_gives_every_axis_its_flag(preset):
    """A run's command line holds each axis' flag with its value (the grouped axis' values comma-joined)
    and the run's output; the flags the axes do not make come from the section (``--steps``)."""
    config = preset_config(preset)
    built = plan.build(config)
    for name in config["experiments"]:
        spec = lookup(name)
        for job, runs in built.jobs(name).items():
            lines = {shlex.split(line)[-1]: line for line in built.commands(name, job)}  # by --out
            for run in runs:
                values = built.values[name][run]
                grouped = built.output(name, run.rsplit(SEPARATOR, 1)[0])  # the seeds' line: OUT__s<seed>.png
                line = lines.get(built.output(name, run)) or lines[grouped]
                words = shlex.split(line)
                assert words.count("--steps") == 1 and words[-3:-2] == ["--no-progress"]
                for axis in spec.axes:
                    if axis.argv is not None:
                        continue
                    text = axis.codec.render(values[axis.name], built)
                    if text is None:
                        assert axis.flag not in words
                    elif axis.name == spec.grouped:
                        assert str(values[axis.name]) in words[words.index(axis.flag) + 1].split(","), (run, axis.name)
                    else:
                        assert words[words.index(axis.flag) + 1] == text, (run, axis.name)


def test_adding_a_seed_adds_only_that_seeds_rows():
    config = preset_config()
    before = plan.build(config).runs
    more = {**config, "texture": {**config["texture"], "seeds": [*config["texture"]["seeds"], 7]}}
    after = plan.build(more).runs
    added = set(after["run"]) - set(before["run"])
    assert added and all(run.endswith("__s7") for run in added)
    assert set(before["run"]) <= set(after["run"])
    assert len(after) - len(before) == len(before[before["experiment"] == "texture"])


def test_jobs_outputs_and_commands_name_the_runs():
    config = preset_config()
    built = plan.build(config)
    job, runs = next(iter(built.jobs("texture").items()))
    commands = built.commands("texture", job)
    assert len(commands) == len(runs) == len(config["texture"]["layer_sets"]) * len(config["texture"]["losses"])
    for command, run in zip(commands, runs):
        assert command.endswith(f"--out results/texture/{run}.png") and "--loss" in command
    patterns = built.job_outputs("texture", ".png")
    assert all("{head}" in p and "{tail}" in p for p in patterns)
    head, _, tail = split_run(lookup("texture"), runs[0])
    assert {p.format(head=head, tail=tail) for p in patterns} == {f"results/texture/{run}.png" for run in runs}
    assert all("--scales auto" in command for command in commands)  # the CLI's default, said on the line
    single = plan.build({**config, "texture": {**config["texture"], "scales": []}})
    assert all("--scales none" in command for command in single.commands("texture", job))
    refs, bases = built.references("guidance")
    assert len(refs) == len(bases) == len(built.values["guidance"]) and all("__g0__" in b for b in bases)


def test_sampling_jobs_run_every_setting_of_a_head_with_seeds_batched():
    config = preset_config("findings")
    built = plan.build(config)
    section = config["guidance_methods"]
    jobs = built.jobs("guidance_methods")
    heads = math.prod(len(section[k]) for k in ("models", "styles", "losses", "layer_sets"))
    assert len(jobs) == heads  # one process per model x style x loss x layer set
    job, runs = next(iter(jobs.items()))
    commands = built.commands("guidance_methods", job)
    entries = method_entries(section)
    style = section["styles"][0]
    assert len(commands) == 1 + sum(len(method_scales(section, e, style)) for e in entries.values())  # + unguided
    seeds = ",".join(str(s) for s in section["seeds"])
    assert all(f"--seeds {seeds}" in command for command in commands)
    for method in entries:
        assert sum(f"--method {method} " in command for command in commands) == len(
            method_scales(section, entries[method], style)
        ) + (method == next(iter(entries)))  # the unguided command names the first method (scale 0 ignores it)
    assert sum("__unguided__g0.png" in command for command in commands) == 1
    group = next(group for group in built.job_groups("guidance_methods") if job in group)
    patterns = built.job_outputs("guidance_methods", ".png", group)
    assert {p.format(head=job) for p in patterns} == {built.output("guidance_methods", run) for run in runs}

    (slug,) = built.reference_sets("guidance_methods")
    style = built.image(section["styles"][0])
    assert style in built.reference_set_inputs("guidance_methods", slug)  # the file its command reads
    assert f"--style {style}" in built.reference_set_command("guidance_methods", slug)

    guidance = config["guidance"]
    jobs = built.jobs("guidance")
    assert len(jobs) == math.prod(len(guidance[k]) for k in ("models", "styles", "losses", "layer_sets", "windows"))
    job, runs = next(iter(jobs.items()))
    unguided = [run for run in runs if "__g0__" in run]
    assert len(unguided) == len(guidance["methods"]) * len(guidance["seeds"])  # shared by the normalisations


def test_a_group_of_one_seed_writes_its_run_id():
    config = preset_config()
    built = plan.build(config)
    job, runs = next(iter(built.jobs("guidance").items()))
    commands = built.commands("guidance", job)
    assert len(commands) == len(runs)  # one seed in the quick preset: one command per run
    for command, run in zip(commands, runs):
        assert command.endswith(f"--out {built.output('guidance', run)}") and "--seeds 0 " in command


def test_plan_imports_no_torch():
    code = (
        "import sys, yaml; from stylediff.workflow import plan; "
        "plan.build(yaml.safe_load(open('config.yaml'))); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("experiment", ["guidance", "guidance_methods"])
def test_the_method_axis_is_named_as_the_sample_verbs_flag(experiment):
    """The workflow's axis, config key and table column of the guidance rule are `method`/`methods`, as
    `stylediff sample --method` names it."""
    config = preset_config("findings")
    built = plan.build(config)
    assert lookup(experiment).axis("method").key == "methods" and "method" in built.runs.columns
    guided = {values["method"] for values in built.values[experiment].values() if values["scale"]}
    passed = {
        command.split("--method ")[1].split()[0]
        for job in built.jobs(experiment)
        for command in built.commands(experiment, job)
        if " --scale 0 " not in command
    }
    assert passed == guided and len(guided) > 1


@pytest.mark.parametrize("prompt", ["", "a lighthouse at dusk"])
@pytest.mark.parametrize("network", ["vgg19", "clip-vit-b16"])
def test_run_ids_with_either_optional_axis_left_out_read_back(prompt, network):
    """guidance_methods has two optional axes (prompt, network): each may be left out of an id alone."""
    spec = lookup("guidance_methods")
    values = {
        "model": "m",
        "prompt": prompt,
        "style": "s.png",
        "loss": "gram",
        "network": network,
        "layers": ["hidden2"],
        "method": "tfg",
        "scale": 0.3,
        "seed": 1,
    }
    run = run_id(spec, values)
    assert ("__p-" in run) == bool(prompt) and ("__n-" in run) == (network != "vgg19")
    parsed = parse_run_id(spec, run)
    assert parsed["network"] == network and parsed["layers"] == "hidden2" and parsed["method"] == "tfg"
    assert (parsed["prompt"] == "") == (not prompt)
    assert run_id(spec, parsed) == run
    assert split_run(spec, run)[1] == "tfg"


def test_networks_axis_gives_each_network_its_own_layer_sets_and_command():
    config = preset_config("findings")
    section = config["guidance_methods"]
    with_clip = {
        **config,
        "guidance_methods": {
            **section,
            "networks": ["vgg19", {"name": "clip-vit-b16", "layer_sets": [["hidden2"], ["hidden2", "hidden4"]]}],
        },
    }
    before, after = plan.build(config), plan.build(with_clip)
    runs = lambda built: built.runs[built.runs["experiment"] == "guidance_methods"]  # noqa: E731
    old, new = runs(before), runs(after)
    assert set(old["run"]) <= set(new["run"])  # the VGG-19 runs keep their ids
    clip = new[new["network"] == "clip-vit-b16"]
    assert len(clip) == 2 * len(old) and set(clip["layers"]) == {"hidden2", "hidden2-hidden4"}
    assert set(new[new["network"] == "vgg19"]["layers"]) == set(old["layers"])
    for job in after.jobs("guidance_methods"):
        for command in after.commands("guidance_methods", job):
            if "__n-clip-vit-b16__" in job:
                assert "--network clip-vit-b16" in command and "--layers hidden2" in command
                assert "--weights" not in command and "--pooling" not in command
            else:
                assert "--network" not in command and "--layers relu1_1" in command


def test_plan_into_a_closed_pipe_is_quiet():
    """`stylediff plan | head -1`: the reader leaves early; the verb stops with the status of a filter whose
    pipe closed (141), and no BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)  # every write now fails: the reader has gone
    try:
        result = subprocess.run(
            [sys.executable, "-m", "stylediff", "plan"], cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (141, "")


def contrary(changes: dict, preset: str = "quick") -> dict:
    """The preset's config with some keys of its sections replaced."""
    config = preset_config(preset)
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            config[section] = {**config[section], name: value}
        else:
            config[section] = value
    return config


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"transfer.size": 8},
            "transfer.size 8 is below the 16 px that relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, relu4_2 need",
        ),
        (  # the content layer counts: relu1_1 alone needs 1 px, relu5_2 16
            {"transfer.layers": ["relu1_1"], "transfer.content_layer": "relu5_2", "transfer.size": 8},
            "transfer.size 8 is below the 16 px that relu1_1, relu5_2 need",
        ),
        (
            {"texture.size": 15},
            "texture.size 15 is below the 16 px that relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 need",
        ),
        ({"inversion.size": 4}, "inversion.size 4 is below the 16 px"),
        (
            {"inversion.images": ["skimage:astronaut", "data/nope.png"]},
            "inversion.images: image not found: data/nope.png",
        ),
        (
            {"texture.styles": ["skimage:brick", "skimage:bricks"]},
            "texture.styles: unknown scikit-image image 'skimage:bricks'",
        ),
        (
            {"guidance.models": ["models/ddpm-emoji-faces-32", "elsewhere/ddpm-emoji-faces-32"]},
            "have the same name 'ddpm-emoji-faces-32'",
        ),
        ({"texture.losses": ["gram", "gram"]}, None),  # the same value twice is one run, not a collision
        ({"experiments": ["inversion", "texture"], "texture": None}, "experiment 'texture' is listed"),
    ],
)
def test_check_names_what_the_schema_cannot_say(changes, message, monkeypatch):
    monkeypatch.chdir(ROOT)  # image paths are relative to the workflow's directory
    config = contrary(changes)
    if changes.get("texture", "kept") is None:
        del config["texture"]
    if message is None:
        plan.check(config, min_size=min_input_size)
        return
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        plan.check(config, min_size=min_input_size)
    assert "\n" not in str(error.value)


def test_check_names_two_images_of_one_name(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    other = tmp_path / "starry_night.png"
    other.write_bytes((ROOT / "data/styles/starry_night.jpg").read_bytes())
    config = contrary({"texture.styles": ["data/styles/starry_night.jpg", str(other)]})
    with pytest.raises(ConfigError, match=r"^texture.styles: .* have the same name 'starry_night'$"):
        plan.check(config, min_size=min_input_size)


@pytest.mark.parametrize("preset", ["quick", "findings", "full", "sd_style"])
def test_check_passes_every_preset(preset, monkeypatch):
    monkeypatch.chdir(ROOT)
    plan.check(preset_config(preset), min_size=min_input_size)


def test_the_quick_preset_runs_every_method_at_its_default_scale():
    """config.yaml's guidance_methods is "every guidance method on one task" at each method's default scale
    (`stylediff methods`): a method added to the registry, or a default moved (tfg's when its log-probability
    became the reference's), shows here."""
    from stylediff.diffusion.methods import METHODS

    entries = method_entries(preset_config("quick")["guidance_methods"])
    assert set(entries) == set(METHODS)
    for name, entry in entries.items():
        assert entry["scales"] == [METHODS[name]().scale], name
