"""Where an engine step's time goes: torch.profiler over texture steps against bare VGG-19 passes.

Profiles one engine run of ``--steps`` steps (long enough for L-BFGS's history to fill: it keeps
``history_size`` = 50 curvature pairs and walks them twice per step) and as many bare forward+backward
passes to relu5_1, and divides each by the step count; the engine's once-per-run work (the final
image's two forward-only scores) stays in, so its share is slightly overstated. Prints the operators
with the most self CPU time per step for both and the totals of the network's operators
(convolutions, ReLU, pooling and their backward) and of everything else, so the difference is
attributed to operators rather than guessed.

    python bench/profile_step.py [--size 128] [--loss gram] [--steps 60] [--top 12]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, optimize_image  # noqa: E402

NETWORK = ("conv", "relu", "threshold", "max_pool", "avg_pool", "mkldnn", "_nnpack")


def self_times(prof) -> dict[str, float]:
    """Self CPU milliseconds of every operator."""
    return {event.key: event.self_cpu_time_total / 1e3 for event in prof.key_averages()}


def group(name: str) -> str:
    lowered = name.lower()
    if any(part in lowered for part in NETWORK):
        return "network"
    return "everything else"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--loss", default="gram")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    vgg = load_vgg19("caffe", "max", "cpu")
    generator = torch.Generator().manual_seed(0)
    style = torch.rand(1, 3, args.size, args.size, generator=generator)
    objective = style_objective(vgg, style, list(STYLE_LAYERS_GATYS), args.loss)
    init = torch.rand(1, 3, args.size, args.size, generator=generator)
    optimize_image(objective, init, OptimizeConfig(steps=2, progress=False))  # warm the allocator and kernels

    x = torch.rand(1, 3, args.size, args.size, generator=generator, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as bare_prof:
        for _ in range(args.steps):
            vgg(x, ["relu5_1"])["relu5_1"].sum().backward()
    with profile(activities=[ProfilerActivity.CPU]) as engine_prof:
        optimize_image(objective, init, OptimizeConfig(steps=args.steps, progress=False))
    bare = {name: value / args.steps for name, value in self_times(bare_prof).items()}
    engine = {name: value / args.steps for name, value in self_times(engine_prof).items()}
    bare_total, engine_total = sum(bare.values()), sum(engine.values())
    print(f"size {args.size} px, loss {args.loss}, {args.steps} steps, threads {torch.get_num_threads()}")
    print(
        f"self CPU per step: bare VGG fwd+bwd {bare_total:.1f} ms, engine step {engine_total:.1f} ms "
        f"(ratio {engine_total / bare_total:.2f}; profiler overhead included in both)"
    )
    print("\n| operator | bare ms/step | engine ms/step | engine − bare |")
    print("|---|---|---|---|")
    names = sorted(set(bare) | set(engine), key=lambda n: -engine.get(n, 0.0))
    for name in names[: args.top]:
        b, e = bare.get(name, 0.0), engine.get(name, 0.0)
        print(f"| `{name}` | {b:.2f} | {e:.2f} | {e - b:+.2f} |")
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for name in names:
        groups[group(name)][0] += bare.get(name, 0.0)
        groups[group(name)][1] += engine.get(name, 0.0)
    print("\n| group | bare ms/step | engine ms/step | engine − bare |")
    print("|---|---|---|---|")
    for name, (b, e) in sorted(groups.items(), key=lambda item: -item[1][1]):
        print(f"| {name} | {b:.2f} | {e:.2f} | {e - b:+.2f} |")


if __name__ == "__main__":
    main()
