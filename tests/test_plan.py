"""The experiment plan (stylediff.workflow.plan, stylediff.workflow.experiments, stylediff.workflow.runids): run ids, runs per preset, jobs and their command lines.
torch-free: these tests also check that the plan imports no torch."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from stylediff.core.errors import ConfigError
from stylediff.workflow import plan
from stylediff.workflow.experiments import lookup, method_entries, method_scales
from stylediff.workflow.runids import model_slug, parse_run_id, run_id, split_run

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


def expected_rows(config: dict, name: str) -> int:
    """The product of the axes, with one unguided (scale 0) run per combination of the others."""
    section = config[name]
    if name == "guidance_methods":  # each style at its group's scales
        others = math.prod(len(section[key]) for key in ("models", "losses", "layer_sets", "seeds"))
        per_style = [
            1 + sum(len(method_scales(section, entry, style)) for entry in section["methods"])
            for style in section["styles"]
        ]
        return others * sum(per_style)
    if name == "texture":  # a loss given with its own layer sets runs on those only
        pairs = sum(
            len(entry["layer_sets"]) if isinstance(entry, dict) else len(section["layer_sets"])
            for entry in section["losses"]
        )
        return len(section["styles"]) * len(section["seeds"]) * pairs
    spec = lookup(name)
    count = 1
    for axis in spec.axes:
        if axis.name in ("normalization", "scale"):
            continue
        count *= len(section.get(axis.key) or [None])
    if name == "guidance":
        guided = [s for s in section["scales"] if s > 0]
        count *= len(guided) * len(section.get("normalizations") or [None]) + len(section["scales"]) - len(guided)
    return count


@pytest.mark.parametrize("preset", ["quick", "findings", "full"])
def test_rows_are_the_product_of_the_axes(preset):
    config = preset_config(preset)
    built = plan.build(config)
    for name in config["experiments"]:
        runs = built.runs[built.runs["experiment"] == name]
        assert len(runs) == expected_rows(config, name), (preset, name)
        assert runs["run"].is_unique
        for run in runs["run"]:  # ids round-trip through the grammar
            assert run_id(lookup(name), parse_run_id(lookup(name), run)) == run
        jobs = built.jobs(name)
        assert sorted(run for runs_ in jobs.values() for run in runs_) == sorted(runs["run"])
        for group in built.job_groups(name):  # every job fills its rule's patterns: one output per run
            patterns = built.job_outputs(name, ".png", group)
            for job in group:
                assert len(patterns) == len(jobs[job]), (preset, name)


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


def test_style_groups_sample_their_own_scales_in_a_rule_of_their_own():
    """A method's scales_by_group replace its scales for the styles of that group; the jobs of each group
    write the same outputs (one rule each), and a group the styles do not define is a one-line error."""
    config = preset_config("findings")
    section = config["guidance_methods"]
    built = plan.build(config)
    runs = built.runs[built.runs["experiment"] == "guidance_methods"]
    high = set(section["style_groups"]["high_loss"])
    for entry in section["methods"]:
        for spec in section["styles"]:
            scales = entry.get("scales_by_group", {}).get("high_loss") if spec in high else None
            got = runs[(runs["method"] == entry["name"]) & (runs["style"] == Path(spec).stem.removeprefix("skimage:"))]
            expected = scales or entry["scales"]
            assert sorted(got["scale"].unique()) == pytest.approx(sorted(expected)), (entry["name"], spec)
    groups = built.job_groups("guidance_methods")
    assert len(groups) == 2 and sum(map(len, groups)) == len(section["styles"])
    bad = {**section, "methods": [{"name": "dps", "scales": [1], "scales_by_group": {"textures": [0.1]}}]}
    with pytest.raises(ConfigError, match="scales_by_group names textures, not in style_groups"):
        plan.build({**config, "guidance_methods": bad})
    twice = {**section, "style_groups": {"high_loss": ["skimage:brick"], "b": ["skimage:brick"]}}
    with pytest.raises(ConfigError, match="in several style_groups"):
        plan.build({**config, "guidance_methods": twice})


def test_a_texture_loss_with_its_own_layer_sets_runs_on_those_only():
    config = preset_config("findings")
    runs = plan.build(config).runs
    runs = runs[runs["experiment"] == "texture"]
    deepest = "-".join(config["texture"]["layer_sets"][-1])
    assert set(runs[runs["loss"] == "gram"]["layers"]) == {"-".join(s) for s in config["texture"]["layer_sets"]}
    assert set(runs[runs["loss"] == "sliced_wasserstein"]["layers"]) == {deepest}
    stray = {**config["texture"], "losses": ["gram", {"name": "mean_std", "layer_sets": [["relu9_1"]]}]}
    with pytest.raises(ConfigError, match="not in texture.layer_sets"):
        plan.build({**config, "texture": stray})
