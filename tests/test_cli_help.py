"""The command line reads well: one line of help per verb, no reStructuredText in any help, the
guidance methods' knobs grouped under each method (derived from the methods' own fields), and one
line on stdout saying what a verb wrote."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from stylediff.cli import build_parser, main
from stylediff.diffusion.methods import METHODS, Evaluations, GuidanceMethod, make_method
from stylediff.diffusion.methods.base import knob

from .conftest import run_main

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "data" / "styles" / "the_scream.jpg"
MODEL = ROOT / "models" / "ddpm-emoji-faces-32"
MARKUP = ("``", ":mod:", ":func:", ":class:", ":data:", ":meth:")


def verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return parser._subparsers._group_actions[0].choices


def test_every_verb_has_one_line_of_help_and_a_description():
    parser = build_parser()
    assert parser.description.endswith(".") and "\n" not in parser.description
    action = parser._subparsers._group_actions[0]
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    assert set(helps) == set(verbs(parser))
    for verb, text in helps.items():
        # one line of an 80-column terminal beside the verb's name
        assert text and "\n" not in text and len(text) <= 62 and "`" not in text, (verb, text)
        description = verbs(parser)[verb].description
        assert description and description.rstrip().endswith("."), (verb, description)


def test_no_restructuredtext_in_any_help():
    parser = build_parser()
    texts = {"stylediff": parser.format_help()}
    for verb, sub in verbs(parser).items():
        texts[verb] = sub.format_help()
    for verb, text in texts.items():
        assert not [m for m in MARKUP if m in text], f"stylediff {verb} --help: {[m for m in MARKUP if m in text]}"
        assert "`" not in text, f"stylediff {verb} --help has a backtick"


def test_version_flag(capsys):
    from stylediff import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"stylediff {__version__}"


def groups_of(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    parser.format_help()  # builds the deferred method groups
    return {group.title: [action.dest for action in group._group_actions] for group in parser._action_groups}


def test_sample_groups_each_methods_knobs_under_it(monkeypatch):
    """The knobs every method has sit in the common group; each method's own knob in its group, or in the group
    of the first method that has it (its own group then names it); each group says the method's defaults; a
    knob whose help differs between methods says each one's."""
    monkeypatch.setenv("COLUMNS", "2000")  # one line per option
    sample = verbs(build_parser())["sample"]
    groups = groups_of(sample)
    shared = set(GuidanceMethod.knobs())
    assert {"method", "scale"} | shared <= set(groups["guidance (every method)"])
    titles = {title.split(":")[0]: title for title in groups if title}
    text = sample.format_help()
    first: dict[str, str] = {}
    for name, cls in METHODS.items():
        assert name in titles, f"no group for method {name}"
        assert f"defaults: scale={cls().scale}" in text, name
        for knob_name in set(cls.knobs()) - shared:
            owner = first.setdefault(knob_name, name)
            assert knob_name in groups[titles[owner]], (name, knob_name)
            if owner != name:
                assert f"--{knob_name.replace('_', '-')} (under {owner})" in text, (name, knob_name)
            helps = {other.knob_help(knob_name)["help"] for other in METHODS.values() if knob_name in other.knobs()}
            if len(helps) > 1:
                assert f"{name}: {cls.knob_help(knob_name)['help']}" in text, (name, knob_name)


def test_a_new_method_needs_only_its_class_and_registry_line():
    """A method registered with knobs of its own becomes a --method choice, a group and typed flags
    with no edit to the CLI."""

    @dataclass
    class Fake(GuidanceMethod):
        name = "fake"
        paper = "Nobody 2026, a method made up for this test"
        scale: float = 1.0
        push: float = knob(2.0, "how hard it pushes")
        shape: str = knob("round", "its shape", choices=("round", "square"))
        span: tuple[float, float] = knob((0.1, 0.9), "where it acts")

        def pass_evaluations(self) -> Evaluations:
            return Evaluations(unet_forward=1)

    METHODS.register(Fake)
    try:
        check_fake_method()
    finally:
        del METHODS["fake"]


def check_fake_method():
    parser = build_parser()
    args = parser.parse_args(
        [
            "sample",
            "--model",
            "m",
            "--style",
            "s",
            "--out",
            "o",
            "--method",
            "fake",
            "--push",
            "3",
            "--shape",
            "square",
            "--span",
            "0.2,0.5",
        ]
    )
    assert (args.method, args.push, args.shape, args.span) == ("fake", 3.0, "square", (0.2, 0.5))
    groups = groups_of(verbs(parser)["sample"])
    assert groups["fake: Nobody 2026, a method made up for this test"] == ["push", "shape", "span"]
    method = make_method("fake", push=args.push, shape=args.shape, span=args.span)
    assert (method.push, method.shape, method.span) == (3.0, "square", (0.2, 0.5))
    with pytest.raises(SystemExit):  # choices come from the knob's metadata
        build_parser().parse_args(["sample", "--model", "m", "--style", "s", "--out", "o", "--shape", "oval"])


def run_verb(capsys, argv: list[str]) -> list[str]:
    code, out, err = run_main(capsys, argv)
    assert code == 0, err[-2000:]
    return out.splitlines()


def test_texture_says_in_one_line_what_it_wrote(capsys, tmp_path):
    out = tmp_path / "t.png"
    lines = run_verb(
        capsys,
        [
            "texture",
            "--style",
            str(STYLE),
            "--size",
            "16",
            "--steps",
            "2",
            "--layers",
            "relu1_1",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert len(lines) == 1 and lines[0].startswith(f"stylediff texture: wrote {out} and {out.with_suffix('.json')}")
    assert out.is_file() and out.with_suffix(".json").is_file()


def test_sample_and_batch_say_in_one_line_what_they_wrote(capsys, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "s.png"
    common = ["--model", str(MODEL), "--style", str(STYLE), "--steps", "2", "--layers", "relu1_1", "--no-progress"]
    lines = run_verb(capsys, ["sample", *common, "--seeds", "0,1", "--out", str(out)])
    assert len(lines) == 1 and lines[0].startswith(
        f"stylediff sample: wrote {out} (grid of 2), {out.with_suffix('.json')}"
    )
    assert all((tmp_path / f"s__s{seed}{suffix}").is_file() for seed in (0, 1) for suffix in (".png", ".json"))
    lines = run_verb(
        capsys,
        [
            "batch",
            "texture",
            *(
                f"--style {STYLE} --size 16 --steps 1 --layers relu1_1 --out {tmp_path / name} --no-progress"
                for name in ("a.png", "b.png")
            ),
        ],
    )
    assert lines == [f"stylediff batch: 2 texture runs: wrote {tmp_path / 'a.png'} and {tmp_path / 'b.png'}"]


def test_plan_says_in_one_line_what_it_wrote_and_a_missing_config_is_one_line(capsys, tmp_path):
    out = tmp_path / "runs.csv"
    lines = run_verb(capsys, ["plan", "--configfile", str(ROOT / "config.yaml"), "--out", str(out)])
    rows = out.read_text().strip().splitlines()[1:]
    assert lines == [f"stylediff plan: wrote {out} ({len(rows)} runs)"] and rows
    assert main(["plan", "--configfile", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config file not found" in err
