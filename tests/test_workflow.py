"""The Snakemake workflow: lint, dry runs of both presets (job counts = product of the axes, GPU
rules carry gpu=1), schema errors, and a real end-to-end run of a tiny config (tables and every
figure; a second run does nothing; deleting one output reruns only what depends on it; a killed
run resumes with --rerun-incomplete without corrupt files).

Each run uses a fresh working directory (``--directory``) with links to the repository's
config.yaml, data/ and models/, so the repository's own results/ and report/ are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stylediff.workflow import plan
from stylediff.workflow.experiments import lookup

from .conftest import preset_config, snakemake_command

ROOT = Path(__file__).resolve().parents[1]
RUN_RULES = {
    "inversion": "invert",
    "texture": "texture",
    "transfer": "transfer",
    "guidance": "sample",
    "guidance_methods": "sample_methods",
}


def workdir(path: Path) -> Path:
    for name in ("config.yaml", "data", "models"):
        link = path / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    return path


ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
"""The rules run the installed `stylediff` command: the one beside the Python running the tests."""


def snakemake(work: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(work, *args), cwd=work, capture_output=True, text=True, timeout=timeout, env=ENV
    )


def job_stats(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: {rule: count}."""
    stats, inside = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            inside = True
            continue
        if inside:
            parts = line.split()
            if not parts or parts[0].startswith("-"):
                continue
            if parts[0] == "total":
                break
            stats[parts[0]] = int(parts[1])
    return stats


def rule_resources(output: str) -> dict[str, set[str]]:
    """{rule: set of its jobs' resource strings} from a dry run's job listing."""
    found: dict[str, set[str]] = {}
    rule = None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
            found.setdefault(rule, set())
        elif rule and line.strip().startswith("resources:"):
            found[rule].add(line.split("resources:", 1)[1].strip())
    return found


def expected_jobs(config: dict) -> dict[str, int]:
    """Jobs per rule: one per batch of the plan (tests/test_plan.py checks the plan's rows against the
    product of the axes), one metrics, plan, aggregate and figures job per experiment."""
    built = plan.build(config)
    expected = {"all": 1}
    skimage = set()
    for experiment in config["experiments"]:
        if experiment == "guidance_methods":  # a rule per style group with scales of its own
            for index, group in enumerate(built.job_groups(experiment), 1):
                expected["sample_methods" if index == 1 else f"sample_methods_{index}"] = len(group)
        else:
            expected[RUN_RULES[experiment]] = len(built.jobs(experiment))
        if built.reference_sets(experiment):
            expected["reference_set"] = expected.get("reference_set", 0) + len(built.reference_sets(experiment))
        expected[f"metrics_{experiment}"] = 1
        expected[f"figures_{experiment}"] = 1
        for axis in lookup(experiment).axes:
            if axis.kind == "image":
                skimage |= {spec for spec in config[experiment][axis.key] if spec.startswith("skimage:")}
    expected["aggregate"] = expected["plan"] = len(config["experiments"])
    if config.get("findings"):
        expected["findings"] = 1
    if skimage:
        expected["image"] = len(skimage)
    return expected


def test_lint():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--workflow-profile", "none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize("preset", ["quick", "full", "findings"])
def test_dry_run_counts_and_gpu_resources(tmp_path, preset):
    work = workdir(tmp_path)
    args = ["-n"] + ([] if preset == "quick" else ["--config", f"preset={preset}"])
    result = snakemake(work, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    config = preset_config(preset)
    assert job_stats(output) == expected_jobs(config)
    resources = rule_resources(output)
    gpu_rules = {"sample", "sample_methods", "reference_set"} | (
        {"invert", "texture", "transfer"} if config["device"] != "cpu" else set()
    )
    for rule, lines in resources.items():
        for line in lines:
            if rule in gpu_rules or rule.startswith("sample_methods"):
                assert "gpu=1" in line, (rule, line)
            else:
                assert not re.search(r"gpu=[1-9]", line), (rule, line)
    assert "sample" in resources and "invert" in resources
    results = config.get("results_dir", "results") + "/"  # every output under the results folder
    outputs = [
        path.strip()
        for line in output.splitlines()
        if line.strip().startswith("output:")
        for path in line.split("output:", 1)[1].split(", ")
    ]
    assert len(outputs) > 50 and not [path for path in outputs if not path.startswith(results)]


@pytest.mark.parametrize(
    "override, words",
    [
        ({"inversion": {"layers": ["relu1_1", "relu9_1"]}}, ["inversion.layers.1", "relu9_1", "relu5_1"]),
        ({"texture": {"losses": ["gram", "gramm"]}}, ["texture.losses.1", "gramm", "sliced_wasserstein"]),
        ({"guidance": {"scales": [0, -1]}}, ["guidance.scales.1", "-1", "minimum of 0"]),
        ({"guidance": {"scales": [1, 2]}}, ["guidance.scales", "0 (unguided) must be present"]),
        ({"guidance": {"normalizations": ["per_step", "l2"]}}, ["guidance.normalizations.1", "l2", "first_step"]),
    ],
)
def test_schema_rejects_bad_values(tmp_path, override, words):
    work = workdir(tmp_path)
    (work / "bad.yaml").write_text(yaml.safe_dump(override))
    result = snakemake(work, "-n", "--configfile", "config.yaml", "bad.yaml")
    assert result.returncode != 0
    message = next(
        line for line in (result.stdout + result.stderr).splitlines() if line.startswith("invalid config value")
    )
    for word in words:
        assert word in message, message


def test_unknown_preset_and_missing_image_are_named(tmp_path):
    work = workdir(tmp_path)
    result = snakemake(work, "-n", "--config", "preset=ful")
    assert result.returncode != 0 and "unknown preset 'ful'" in result.stdout + result.stderr
    (work / "bad.yaml").write_text(yaml.safe_dump({"inversion": {"images": ["data/nope.png"]}}))
    result = snakemake(work, "-n", "--configfile", "config.yaml", "bad.yaml")
    assert (
        result.returncode != 0 and "inversion.images: image not found: data/nope.png" in result.stdout + result.stderr
    )


# ----------------------------------------------------------------------------- end to end
def check_outputs_readable(work: Path) -> int:
    """Every PNG and JSON under results/ is complete (opens / parses); returns the count."""
    from PIL import Image

    count = 0
    for path in (work / "results").rglob("*.png"):
        with Image.open(path) as img:
            img.load()
        count += 1
    for path in (work / "results").rglob("*.json"):
        json.loads(path.read_text())
        count += 1
    return count


def targets(config: dict) -> list[str]:
    built = plan.build(config)
    files = []
    for experiment in config["experiments"]:
        files += [f"results/tables/{experiment}.csv", f"results/report/{experiment}_summary.md"]
        files += [f"results/report/{name}" for name in built.figures(experiment)]
    return files


def image_hashes(work: Path) -> dict[str, str]:
    """sha256 of every run image and figure (tables and sidecars hold timings, so they differ)."""
    return {
        str(path.relative_to(work)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((work / "results").rglob("*.png"))
    }


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_a_run_writes_only_its_results_and_publish_only_what_it_declares(tmp_path):
    """In a git copy of the checkout (tracked files as they are now), a real run of a small config leaves
    `git status` empty; `snakemake publish` then changes only the publish folder, docs/results.md and
    README.md's results section (the text outside the markers stays)."""
    from stylediff.reporting.findings import README_BEGIN, README_END

    repo = tmp_path / "clone"
    for name in git(ROOT, "ls-files", "-z").split("\0"):
        if name and (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes((ROOT / name).read_bytes())
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    config.update(
        experiments=["inversion", "texture"], publish_dir="report/tiny", findings=True, readme=True, lpips=False
    )
    (repo / "tiny.yaml").write_text(yaml.safe_dump(config))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    readme = (repo / "README.md").read_text()

    def run(*args):
        command = [
            sys.executable,
            "-m",
            "snakemake",
            *args,
            "--workflow-profile",
            "none",
            "--cores",
            "2",
            "--configfile",
            "tiny.yaml",
        ]
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=600, env=ENV)
        assert result.returncode == 0, result.stderr[-3000:]

    run()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / "results" / "report" / "findings.md").is_file()

    run("publish")
    changed = {line[3:] for line in git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()}
    published = {
        f"report/tiny/{path.name}" for path in (repo / "results" / "report").iterdir() if path.name != "findings.md"
    }
    tables = {f"report/tiny/tables/{name}.csv" for name in config["experiments"]}
    assert changed == published | tables | {"docs/results.md", "README.md"}
    text = (repo / "README.md").read_text()
    assert text[: text.index(README_BEGIN)] == readme[: readme.index(README_BEGIN)]
    assert text[text.index(README_END) :] == readme[readme.index(README_END) :]
    assert "](docs/results.md)" in text and "](../report/tiny/" in (repo / "docs" / "results.md").read_text()


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path, tiny_ddpm_dir):
    import pandas as pd

    work = workdir(tmp_path)
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    tiny = str(tiny_ddpm_dir)
    config["guidance"]["models"] = config["guidance_methods"]["models"] = [tiny]
    # as on a fresh machine: no LPIPS backbones, no network (auto: skipped, and the summaries say so)
    (work / "torch-home").mkdir()
    config["lpips_torch_home"] = str(work / "torch-home")
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    args = ("--configfile", "tiny.yaml")

    # 1. the whole tiny grid: every table and figure
    result = snakemake(work, *args)
    assert result.returncode == 0, result.stderr[-4000:]
    for target in targets(config):
        assert (work / target).is_file() and (work / target).stat().st_size > 0, target
    runs = plan.build(config).runs
    for experiment in config["experiments"]:
        table = pd.read_csv(work / "results" / "tables" / f"{experiment}.csv")
        assert sorted(table["run"]) == sorted(runs[runs["experiment"] == experiment]["run"])
        assert table["model"].notna().all()
        metric = "feature_error" if experiment == "inversion" else "gram_dist_mean"
        assert table[metric].notna().all()
        assert "lpips_vgg" not in table
        assert "LPIPS was skipped" in (work / "results" / "report" / f"{experiment}_summary.md").read_text()
    assert "LPIPS skipped" in (work / "results" / "logs" / "metrics" / "texture.log").read_text()
    assert check_outputs_readable(work) > 0
    uninterrupted = image_hashes(work)

    # 2. a second run does nothing
    result = snakemake(work, *args)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr

    # 2b. adding a seed adds only that seed's runs: the finished runs stay valid
    more = {**config, "texture": {**config["texture"], "seeds": [0, 1]}}
    (work / "tiny_more.yaml").write_text(yaml.safe_dump(more))
    result = snakemake(work, "--configfile", "tiny_more.yaml", "-n")
    assert job_stats(result.stdout + result.stderr) == {
        "texture": expected_jobs(config)["texture"],
        "metrics_texture": 1,
        "plan": 1,
        "aggregate": 1,
        "figures_texture": 1,
        "all": 1,
    }, result.stdout[-3000:]

    # 3. deleting one output reruns only what depends on it ...
    texture_run = next((work / "results" / "texture").glob("*__s0.png"))
    untouched = work / "results" / "tables" / "inversion.csv"
    before = untouched.stat().st_mtime_ns
    texture_run.unlink()
    result = snakemake(work, *args, "-n")
    assert job_stats(result.stdout + result.stderr) == {
        "texture": 1,
        "metrics_texture": 1,
        "aggregate": 1,
        "figures_texture": 1,
        "all": 1,
    }

    # 4. ... and a run redoing every texture, SIGKILLed at a random moment while a job runs, leaves no
    # corrupt file and resumes with --rerun-incomplete to the same bytes as the uninterrupted run
    for png in (work / "results" / "texture").glob("*.png"):
        png.unlink()
    command = snakemake_command(work, *args)
    process = subprocess.Popen(
        command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=ENV
    )
    incomplete = work / ".snakemake" / "incomplete"
    seed = int(os.environ.get("STYLEDIFF_KILL_SEED", "0"))  # another moment: STYLEDIFF_KILL_SEED=N
    delay = random.Random(seed).uniform(0.0, 3.0)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if incomplete.is_dir() and any(incomplete.iterdir()):
            time.sleep(delay)  # somewhere inside the jobs: start-up, optimisation or the write
            break
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be killed (delay {delay:.2f} s, seed {seed})"
    os.killpg(process.pid, signal.SIGKILL)  # snakemake and its jobs
    process.wait()
    check_outputs_readable(work)  # nothing half-written
    assert snakemake(work, "--unlock", *args).returncode == 0
    result = snakemake(work, *args, "--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-4000:]
    assert texture_run.is_file() and untouched.stat().st_mtime_ns == before
    assert check_outputs_readable(work) > 0
    for target in targets(config):
        assert (work / target).is_file(), target
    resumed = image_hashes(work)
    changed = sorted(name for name in uninterrupted if resumed.get(name) != uninterrupted[name])
    assert not changed, (
        f"killed after {delay:.2f} s (STYLEDIFF_KILL_SEED={seed}), the resumed run differs from the "
        f"uninterrupted one: {changed}"
    )
    result = snakemake(work, *args)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_sd_style_preset_dry_runs_with_both_guidance_networks(tmp_path):
    """The GPU preset (SD 1.5 hub id, not present here) plans: every job a gpu=1 sampling job, VGG-19 and
    CLIP-Gram (clip-vit-b16 at hidden2) runs in equal numbers, nothing written outside its results folder."""
    work = workdir(tmp_path)
    result = snakemake(work, "-n", "--config", "preset=sd_style")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    config = preset_config("sd_style")
    assert job_stats(output) == expected_jobs(config)
    assert all("gpu=1" in line for line in rule_resources(output)["sample_methods"])
    runs = plan.build(config).runs
    assert set(runs["network"]) == {"vgg19", "clip-vit-b16"}
    assert (runs["network"] == "clip-vit-b16").sum() == (runs["network"] == "vgg19").sum()
    assert set(runs[runs["network"] == "clip-vit-b16"]["layers"]) == {"hidden2"}
