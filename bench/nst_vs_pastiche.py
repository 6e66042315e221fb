"""Texture synthesis, stylediff vs pastiche (or pystiche): wall time to reach the peer's Gram distance.

Both run as a user runs them: a fresh process each, start-up and weight loading included, on the
same style image, output size and style size, style layers relu1_1…relu5_1, from noise. The style
is read at ``--style-read`` × the output size for both tools (2, stylediff's default since a style
read at the output's size was rebuilt rather than synthesised); ``--style-read 1`` is the old
comparison. pastiche runs 150 steps with its defaults (L-BFGS, one evaluation per step). stylediff
runs with its defaults except ``--steps``: a coarse ladder finds a step count that reaches
pastiche's distance, then bisection finds the smallest one that does, so the ratio is not a lower
bound. Both distances come from ``stylediff.evaluation.scorer`` on the final PNGs (mean relative Gram
distance over relu1_1…relu5_1, to the style read at the size both tools read it). Timings are
medians of ``--repeats`` alternating runs of the two tools (the search's own runs are not timed).

``--peer pystiche`` runs bench/peer_pystiche.py instead (pystiche 1.0.1's Gram texture with its default
L-BFGS, the same steps, sizes and noise start; the VGG-19 Caffe weights pastiche ships, converted once
into a temporary file, because pystiche's own are a download).

    python bench/nst_vs_pastiche.py [--sizes 128,256] [--repeats 3] [--styles starry_night,the_scream]
        [--style-read 2] [--stylediff-args "--scales 64"] [--peer pastiche|pystiche] [--threads 1 --clock cpu]
        [--out bench/measured/nst_vs_pastiche.md]

``--threads 1 --clock cpu`` measures the CPU seconds of one-thread runs, which a machine shared with other
jobs does not inflate as it does wall time (both tools alike).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image  # noqa: E402
from stylediff.evaluation.scorer import Scorer  # noqa: E402

LADDER = (4, 8, 16, 32, 64, 128, 256)


CLOCK = {"clock": "wall", "env": None}


def timed(cmd: list[str]) -> float:
    """Seconds of one run of ``cmd``: wall time, or with ``--clock cpu`` the CPU time (user + system) of
    the process and its children, which other jobs on a shared machine do not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=CLOCK["env"])
    if CLOCK["clock"] == "wall":
        return time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def pastiche_cmd(style: Path, size: int, style_size: int, steps: int, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pastiche",
        "--device",
        "cpu",
        "--content",
        str(style),
        "--styles",
        str(style),
        "--content-weight",
        "0",
        "--random-init",
        "--num-steps",
        str(steps),
        "--size",
        str(size),
        "--style-size",
        str(style_size),
        "--seed",
        "0",
        "--no-verbose",
        "--output",
        str(out),
    ]


def pystiche_cmd(weights: Path, style: Path, size: int, style_size: int, steps: int, out: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "bench" / "peer_pystiche.py"),
        "--weights",
        str(weights),
        "--style",
        str(style),
        "--size",
        str(size),
        "--style-size",
        str(style_size),
        "--steps",
        str(steps),
        "--seed",
        "0",
        "--output",
        str(out),
    ]


def stylediff_cmd(style: Path, size: int, style_size: int, steps: int, out: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stylediff.cli",
        "texture",
        "--style",
        str(style),
        "--size",
        str(size),
        "--style-size",
        str(style_size),
        "--steps",
        str(steps),
        "--seed",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
        "--out",
        str(out),
    ]


def fewest_steps(reaches) -> int | None:
    """Smallest step count ``n`` with ``reaches(n)``: the ladder brackets it, bisection narrows it to one step."""
    low = 0
    for steps in LADDER:
        if reaches(steps):
            high = steps
            break
        low = steps
    else:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-steps", type=int, default=150, help="the peer's steps")
    parser.add_argument("--peer", choices=("pastiche", "pystiche"), default="pastiche")
    parser.add_argument("--styles", default="starry_night,the_scream", help="names in data/styles or paths")
    parser.add_argument("--style-read", type=float, default=2.0, help="style size / output size, for both tools")
    parser.add_argument("--stylediff-args", default="", help="extra stylediff arguments (to try a non-default)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both tools (default: theirs)")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: user+system seconds (use with --threads 1)"
    )
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    CLOCK["clock"] = args.clock
    if args.threads:
        CLOCK["env"] = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    extra = shlex.split(args.stylediff_args)
    scorer = Scorer(lpips=False)
    work = Path(tempfile.mkdtemp(prefix="bench_nst_"))
    peer_cmd = pastiche_cmd
    if args.peer == "pystiche":
        weights = work / "vgg19_caffe.pth"
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "peer_pystiche.py"), "--write-weights", str(weights)], check=True
        )
        peer_cmd = lambda *run: pystiche_cmd(weights, *run)  # noqa: E731
    rows = []
    for name in args.styles.split(","):
        path = Path(name) if Path(name).exists() else ROOT / "data" / "styles" / f"{name}.jpg"
        for size in [int(s) for s in args.sizes.split(",")]:
            style_size = round(args.style_read * size)
            style = load_image(path, style_size)
            distance = lambda png: scorer.style_distances(load_image(png), style)["gram_dist_mean"]  # noqa: E731
            ref = work / f"{args.peer}_{path.stem}_{size}.png"
            timed(peer_cmd(path, size, style_size, args.peer_steps, ref))
            target = distance(ref)
            reached: dict[int, float] = {}

            def reaches(steps: int) -> bool:
                out = work / f"stylediff_{path.stem}_{size}_{steps}.png"
                timed(stylediff_cmd(path, size, style_size, steps, out, extra))
                reached[steps] = distance(out)
                print(
                    f"  {path.stem} {size} px: {steps} steps -> {reached[steps]:.4f} ({args.peer} {target:.4f})",
                    file=sys.stderr,
                    flush=True,
                )
                return reached[steps] <= target

            steps = fewest_steps(reaches)
            times: dict[str, list[float]] = {"peer": [], "stylediff": []}
            for _ in range(args.repeats):  # alternate, so that machine noise hits both
                times["peer"].append(timed(peer_cmd(path, size, style_size, args.peer_steps, ref)))
                if steps:
                    out = work / "t.png"
                    times["stylediff"].append(timed(stylediff_cmd(path, size, style_size, steps, out, extra)))
            t_p = statistics.median(times["peer"])
            t_s = statistics.median(times["stylediff"]) if steps else float("nan")
            rows.append((path.stem, size, t_p, target, steps, t_s, reached.get(steps, float("nan")), t_p / t_s))
    lines = [
        f"| style | size | {args.peer} s ({args.peer_steps} steps) | {args.peer} dist | stylediff steps per scale "
        "| stylediff s | stylediff dist | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for style, size, t_p, d_p, n, t_s, d_s, ratio in rows:
        lines.append(
            f"| {style} | {size} px | {t_p:.1f} | {d_p:.4f} | {n} | {t_s:.1f} | {d_s:.4f} | **{ratio:.1f}×** |"
        )
    lines.append(
        f"(style read at {args.style_read:g}× the output size; stylediff arguments: "
        f"{args.stylediff_args or 'defaults'}; {args.clock} seconds, threads: {args.threads or 'default'}; medians "
        f"of {args.repeats} alternating runs; {datetime.date.today().isoformat()})"
    )
    print("\n".join(lines))
    print(
        f"speed-up to {args.peer}'s Gram distance (median of repeats): "
        + ", ".join(f"{style} {size} px {ratio:.1f}x" for style, size, *_, ratio in rows)
    )
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
