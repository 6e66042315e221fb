"""Engine overhead: time per optimisation step divided by one bare VGG-19 forward+backward to the
same deepest layer at the same size (the practical limit of pixel optimisation).

The engine's step is the difference of a long and a short run divided by the difference of their
step counts, so the once-per-run costs (building the objective, scoring the final image) drop out;
each engine measurement sits between two bare ones and is divided by their mean, so a change in
the machine's speed hits both sides of its ratio; the table gives the median of these paired
ratios over ``--repeats`` and their range.

    python bench/engine_overhead.py [--sizes 64,128,256] [--steps 20] [--repeats 5] [--losses gram,…]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import mean_seconds, sync  # noqa: E402

from stylediff.core.provenance import peak_rss_mb  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, optimize_image  # noqa: E402


def bare_step(vgg, size, device, steps):
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    return mean_seconds(lambda: vgg(x, ["relu5_1"])["relu5_1"].sum().backward(), steps, device)


def engine_seconds(objective, size, device, steps):
    init = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    sync(device)
    return optimize_image(objective, init, OptimizeConfig(steps=steps, progress=False)).seconds


def engine_step(vgg, size, device, steps, loss):
    style = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    objective = style_objective(vgg, style, list(STYLE_LAYERS_GATYS), loss)
    short = max(1, steps // 4)
    return (engine_seconds(objective, size, device, steps) - engine_seconds(objective, size, device, short)) / (
        steps - short
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--losses", default="gram,mean_std,sliced_wasserstein,gaussian_w2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    vgg = load_vgg19("caffe", "max", device)
    print(f"device: {device}, threads: {torch.get_num_threads()}")
    print("| size | loss | bare VGG fwd+bwd to relu5_1 (ms) | engine step (ms) | ratio (range) |")
    print("|---|---|---|---|---|")
    ratios = []
    for size in [int(s) for s in args.sizes.split(",")]:
        bare_step(vgg, size, device, 2)  # warm-up
        for loss in args.losses.split(","):
            bare, engine, paired = [], [], []
            for _ in range(args.repeats):  # alternate so that machine noise hits both
                before = bare_step(vgg, size, device, args.steps)
                engine.append(engine_step(vgg, size, device, args.steps, loss))
                after = bare_step(vgg, size, device, args.steps)
                bare += [before, after]
                paired.append(engine[-1] / ((before + after) / 2))  # against the bare passes around it
            b, e, r = statistics.median(bare), statistics.median(engine), statistics.median(paired)
            low, high = min(paired), max(paired)
            ratios.append((size, loss, r))
            print(
                f"| {size} px | {loss} | {b * 1e3:.1f} | {e * 1e3:.1f} | {r:.2f} ({low:.2f}–{high:.2f}) |", flush=True
            )
    print(
        f"peak RSS {peak_rss_mb():.0f} MiB"
        + (f", CUDA max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else "")
    )
    print("engine step / bare VGG fwd+bwd: " + ", ".join(f"{s} px {loss} {r:.2f}" for s, loss, r in ratios))


if __name__ == "__main__":
    main()
