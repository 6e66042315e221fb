"""Texture synthesis, stylediff vs pastiche: time to reach pastiche's Gram distance to the style.

Both run as a user runs them (a fresh process each, start-up and weight loading included), on the
same style image and size, style layers relu1_1…relu5_1, L-BFGS, from noise. pastiche runs 150
steps; stylediff runs a ladder of step counts and the first that reaches pastiche's distance is
its time. Both distances come from ``stylediff.metrics`` on the final PNGs (mean relative Gram
distance over relu1_1…relu5_1). Each timing is the median of ``--repeats`` alternating runs (the search runs count as the first).

    python bench/nst_vs_pastiche.py [--sizes 128,256] [--repeats 3] [--style data/styles/starry_night.jpg]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.images import load_image  # noqa: E402
from stylediff.metrics import Scorer  # noqa: E402

LADDER = (10, 20, 30, 50, 80, 120, 150)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def pastiche_cmd(style: Path, size: int, steps: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "pastiche", "--device", "cpu", "--content", str(style), "--styles", str(style),
            "--content-weight", "0", "--random-init", "--num-steps", str(steps), "--size", str(size),
            "--style-size", str(size), "--seed", "0", "--no-verbose", "--output", str(out)]


def stylediff_cmd(style: Path, size: int, steps: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "stylediff.cli", "texture", "--style", str(style), "--size", str(size),
            "--steps", str(steps), "--seed", "0", "--device", "cpu", "--no-progress", "--out", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pastiche-steps", type=int, default=150)
    parser.add_argument("--style", type=Path, default=ROOT / "data" / "styles" / "starry_night.jpg")
    args = parser.parse_args()
    scorer = Scorer(lpips=False)
    work = Path(tempfile.mkdtemp(prefix="bench_nst_"))
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        style = load_image(args.style, size)
        distance = lambda png: scorer.style_distances(load_image(png), style)["gram_dist_mean"]
        ref = work / f"pastiche_{size}.png"
        times: dict[str, list[float]] = {"pastiche": [], "stylediff": []}
        # find stylediff's step count first (one pass; its runs are the first repeat), then time both alternately
        times["pastiche"].append(timed(pastiche_cmd(args.style, size, args.pastiche_steps, ref)))
        target = distance(ref)
        reached, steps_needed = None, None
        for steps in LADDER:
            out = work / f"stylediff_{size}_{steps}.png"
            seconds = timed(stylediff_cmd(args.style, size, steps, out))
            if distance(out) <= target:
                reached, steps_needed = distance(out), steps
                times["stylediff"].append(seconds)
                break
        equal_steps = work / f"stylediff_{size}_{args.pastiche_steps}.png"
        timed(stylediff_cmd(args.style, size, args.pastiche_steps, equal_steps))
        for _ in range(args.repeats - 1):
            times["pastiche"].append(timed(pastiche_cmd(args.style, size, args.pastiche_steps, ref)))
            if steps_needed:
                times["stylediff"].append(timed(stylediff_cmd(args.style, size, steps_needed, work / "t.png")))
        t_p = statistics.median(times["pastiche"])
        t_s = statistics.median(times["stylediff"]) if steps_needed else float("nan")
        rows.append((size, t_p, target, steps_needed, t_s, reached, distance(equal_steps), t_p / t_s))
    print(f"{'size':>5} {'pastiche s':>11} {'pastiche dist':>14} {'sd steps':>9} {'stylediff s':>12} "
          f"{'sd dist':>8} {'sd dist@150':>12} {'speed-up':>9}")
    for size, t_p, d_p, n, t_s, d_s, d_eq, ratio in rows:
        print(f"{size:>5} {t_p:>11.1f} {d_p:>14.4f} {str(n):>9} {t_s:>12.1f} {d_s or float('nan'):>8.4f} "
              f"{d_eq:>12.4f} {ratio:>8.1f}x")
    print("speed-up to pastiche's Gram distance (median of repeats): "
          + ", ".join(f"{size} px {ratio:.1f}x" for size, *_, ratio in rows))


if __name__ == "__main__":
    main()
