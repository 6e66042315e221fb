"""The SLURM profile (profiles/slurm) on a real SLURM cluster.

Needs a running cluster with at least one (possibly fake) GPU, e.g. the one-node
test cluster of ci/slurm/start.sh:

    bash ci/slurm/start.sh && STYLEDIFF_SLURM=1 pytest -m slurm; bash ci/slurm/stop.sh

Skipped unless STYLEDIFF_SLURM=1 and `sinfo` answers.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm"
RUN_TIMEOUT_S = 900


def _sinfo_ok() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("STYLEDIFF_SLURM") != "1",
        reason="set STYLEDIFF_SLURM=1 (and start a cluster: bash ci/slurm/start.sh)",
    ),
]


@pytest.fixture(scope="module", autouse=True)
def _slurm_reachable():
    if os.environ.get("STYLEDIFF_SLURM") == "1" and not _sinfo_ok():
        pytest.skip("STYLEDIFF_SLURM=1 but `sinfo` does not answer: no SLURM cluster")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _clean_env() -> dict:
    """Environment for the snakemake subprocess: no inherited SLURM job context
    (pytest itself might run inside a job) and no user-level default profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "SNAKEMAKE_PROFILE"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _snakemake_cmd() -> list[str]:
    exe = shutil.which("snakemake")
    return [exe] if exe else [sys.executable, "-m", "snakemake"]


def _run(cmd: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess:
    """Run cmd, tee its output to `log`; on timeout kill the whole process group
    and cancel the SLURM jobs of that run (snakemake ignores SIGTERM while it waits)."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=_clean_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            run_id = re.search(r"SLURM run ID: (\S+)", log.read_text())
            if run_id:
                subprocess.run(["scancel", "--name", run_id.group(1)], timeout=30)
            pytest.fail(f"{' '.join(cmd)} did not finish in {RUN_TIMEOUT_S}s; log tail:\n{_tail(log)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, log.read_text(), "")


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _slurm_cmd(*extra: str, profile: Path = SLURM_PROFILE) -> list[str]:
    return [
        *_snakemake_cmd(),
        "--profile",
        str(profile),
        # profiles/default is for local runs; see the README, "Running on a SLURM cluster"
        "--workflow-profile",
        "none",
        # poll SLURM every few seconds instead of the profile's 20 s: tiny jobs
        "--slurm-init-seconds-before-status-checks",
        "2",
        # print the sbatch command lines ("sbatch call: ...")
        "--verbose",
        *extra,
    ]


_SBATCH_RE = re.compile(r"^sbatch call: (sbatch .*)$", re.M)
_SUBMITTED_RE = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", re.M)
_JOB_BLOCK_RE = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)+)", re.M)


def _parse_submissions(log_text: str) -> dict[str, list[dict]]:
    """From a `snakemake --verbose` log of the slurm executor:
    rule name -> [{'jobid', 'sbatch', 'slurm_log', 'gpu'}], one per SLURM job.

    Snakemake prints each job as a block ("rule x:" ... "jobid: N" ...
    "resources: ..., gpu=1"), the plugin prints "sbatch call: sbatch ... --output
    <dir>/%j.log ..." and then "Job N has been submitted with SLURM jobid J (log:
    <dir>/J.log)."; the three are joined on Snakemake's job id and the log path."""
    blocks = {}
    for m in _JOB_BLOCK_RE.finditer(log_text):
        jid = re.search(r"^\s+jobid: (\d+)$", m.group(2), re.M)
        if not jid:
            continue
        res = re.search(r"^\s+resources: (.*)$", m.group(2), re.M)
        gpu = re.search(r"(?:^|, )gpu=(\d+)", res.group(1)) if res else None
        blocks[jid.group(1)] = {"rule": m.group(1), "gpu": int(gpu.group(1)) if gpu else 0}
    sbatch_by_output = {}
    for call in _SBATCH_RE.findall(log_text):
        out = re.search(r"--output '?([^' ]+)'?", call)
        assert out, call
        # keep the sbatch options, drop the long --wrap="python -m snakemake ..." payload
        sbatch_by_output[out.group(1)] = call.split(" --wrap")[0]
    subs: dict[str, list[dict]] = {}
    for smk_jobid, jobid, slurm_log in _SUBMITTED_RE.findall(log_text):
        block = blocks[smk_jobid]
        pattern = str(Path(slurm_log).parent / "%j.log")
        subs.setdefault(block["rule"], []).append(
            {
                "jobid": jobid,
                "slurm_log": Path(slurm_log),
                "sbatch": sbatch_by_output.get(pattern),
                "gpu": block["gpu"],
            }
        )
    return subs


def _scontrol_job(jobid: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", jobid],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, (
        f"scontrol does not know job {jobid} (finished longer ago than the cluster's MinJobAge?): {out.stderr}"
    )
    fields = {}
    for tok in out.stdout.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields[k] = v
    return fields


def _gpu_requested(sbatch: str) -> bool:
    return bool(re.search(r"--gpus[= ]|--gres[= ]\S*gpu|--gpus-per-", sbatch))


# --------------------------------------------------------------------------
# a tiny self-contained workflow
# --------------------------------------------------------------------------

TINY_SNAKEFILE = r"""
rule all:
    input:
        "results/summary.txt",


rule gpu_step:
    output:
        "results/gpu_{i}.txt",
    log:
        "logs/gpu_{i}.env",
    threads: 1
    resources:
        gpu=1,
    shell:
        "echo 'gpu step {wildcards.i}' > {output}; "
        "echo SLURM_JOB_ID=${{SLURM_JOB_ID:-}} "
        "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}} > {log}"


rule cpu_step:
    input:
        expand("results/gpu_{i}.txt", i=[1, 2]),
    output:
        "results/summary.txt",
    log:
        "logs/cpu.env",
    threads: 1
    shell:
        "cat {input} > {output}; echo 'cpu step' >> {output}; "
        "echo SLURM_JOB_ID=${{SLURM_JOB_ID:-}} "
        "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}} > {log}"
"""


def _env_log(path: Path) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in path.read_text().split())


def test_tiny_workflow_through_slurm_profile(tmp_path):
    slurm_dir = tmp_path / "slurm"
    local_dir = tmp_path / "local"
    for d in (slurm_dir, local_dir):
        d.mkdir()
        (d / "Snakefile").write_text(TINY_SNAKEFILE)

    # --- through SLURM, with the real profile --------------------------------
    log = tmp_path / "slurm.log"
    res = _run(_slurm_cmd(), slurm_dir, log)
    assert res.returncode == 0, _tail(log)
    text = res.stdout
    assert "Using profile" in text and "profiles/slurm" in text

    subs = _parse_submissions(text)
    assert sorted(subs) == ["cpu_step", "gpu_step"], subs
    assert len(subs["gpu_step"]) == 2 and len(subs["cpu_step"]) == 1
    # only the target rule ran locally
    assert re.findall(r"^localrule (\w+):", text, re.M) == ["all"]

    for rule, jobs in subs.items():
        for job in jobs:
            # the sbatch line the plugin issued
            assert job["sbatch"], (rule, job)
            assert job["gpu"] == (1 if rule == "gpu_step" else 0), job
            if rule == "gpu_step":
                assert _gpu_requested(job["sbatch"]), job["sbatch"]
                assert "--ntasks=" not in job["sbatch"], job["sbatch"]
            else:
                assert not _gpu_requested(job["sbatch"]), job["sbatch"]
            # SLURM itself saw the job, ran it to completion, with/without GPUs
            info = _scontrol_job(job["jobid"])
            assert info["JobState"] == "COMPLETED", info
            assert info["JobName"] == re.search(r"SLURM run ID: (\S+)", text).group(1)
            partition = re.search(r" -p '?([^' ]+)", job["sbatch"])
            if partition:  # the profile's slurm_partition was used
                assert info["Partition"] == partition.group(1), info
            tres = info.get("TresPerJob", "") + info.get("TresPerNode", "")
            if rule == "gpu_step":
                assert "gpu" in tres, info
            else:
                assert "gpu" not in tres, info
            # per-job SLURM log kept by the profile (slurm-keep-successful-logs)
            assert job["slurm_log"].is_file(), job["slurm_log"]
            assert job["slurm_log"].is_relative_to(slurm_dir / ".snakemake" / "slurm_logs")

    # the jobs really ran inside those SLURM jobs
    gpu_env = {_env_log(slurm_dir / f"logs/gpu_{i}.env")["SLURM_JOB_ID"] for i in (1, 2)}
    assert gpu_env == {j["jobid"] for j in subs["gpu_step"]}
    for i in (1, 2):
        # slurm binds the (fake) GPU to the job
        assert _env_log(slurm_dir / f"logs/gpu_{i}.env")["CUDA_VISIBLE_DEVICES"] != ""
    cpu_env = _env_log(slurm_dir / "logs/cpu.env")
    assert cpu_env["SLURM_JOB_ID"] == subs["cpu_step"][0]["jobid"]

    # --- the same workflow locally --------------------------------------------
    llog = tmp_path / "local.log"
    lres = _run(
        [
            *_snakemake_cmd(),
            "--workflow-profile",
            "none",
            "--cores",
            "2",
            "--resources",
            "gpu=1",
        ],
        local_dir,
        llog,
    )
    assert lres.returncode == 0, _tail(llog)
    assert _env_log(local_dir / "logs/cpu.env")["SLURM_JOB_ID"] == ""

    slurm_out = sorted(p.relative_to(slurm_dir) for p in (slurm_dir / "results").rglob("*"))
    local_out = sorted(p.relative_to(local_dir) for p in (local_dir / "results").rglob("*"))
    assert slurm_out == local_out
    for rel in slurm_out:
        assert (slurm_dir / rel).read_bytes() == (local_dir / rel).read_bytes(), rel


# --------------------------------------------------------------------------
# the project's own workflow, tiny config
# --------------------------------------------------------------------------

_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".snakemake",
    "results",
    "__pycache__",
    ".pytest_cache",
    "*.egg-info",
    "build",
    "dist",
    ".venv",
)


@pytest.mark.parametrize("configfile", ["tests/data/tiny.yaml"])
def test_project_workflow_through_slurm_profile(tmp_path, configfile, tiny_ddpm_dir):
    work = tmp_path / "repo"
    shutil.copytree(REPO, work, ignore=_COPY_IGNORE, symlinks=True)
    # the tiny config's guidance models are placeholders: point both experiments at a tiny UNet
    model = tiny_ddpm_dir
    override = tmp_path / "model.yaml"
    override.write_text(
        "".join(f"{experiment}:\n  models: ['{model}']\n" for experiment in ("guidance", "guidance_methods"))
    )
    configfiles = ["--configfile", configfile, str(override)]

    log = tmp_path / "slurm.log"
    res = _run(_slurm_cmd(*configfiles, profile=work / "profiles" / "slurm"), work, log)
    assert res.returncode == 0, _tail(log)
    text = res.stdout

    subs = _parse_submissions(text)
    assert subs, "no job was submitted to SLURM:\n" + _tail(log)
    # both kinds of jobs went through SLURM
    all_jobs = [job for jobs in subs.values() for job in jobs]
    assert any(job["gpu"] > 0 for job in all_jobs), subs
    assert any(job["gpu"] == 0 for job in all_jobs), subs
    run_id = re.search(r"SLURM run ID: (\S+)", text).group(1)
    for rule, jobs in subs.items():
        for job in jobs:
            assert job["sbatch"], (rule, job)
            # jobs of GPU rules (resources: gpu=N) asked SLURM for GPUs, the others did not
            assert _gpu_requested(job["sbatch"]) == (job["gpu"] > 0), (rule, job)
            info = _scontrol_job(job["jobid"])
            assert info["JobState"] == "COMPLETED", (rule, info)
            assert info["JobName"] == run_id

    # nothing left to do: the SLURM run produced every output of the workflow
    dry = subprocess.run(
        [*_snakemake_cmd(), "--workflow-profile", "none", "--cores", "1", *configfiles, "-n"],
        cwd=work,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
