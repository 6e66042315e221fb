"""Do channels-last and torch.compile pay for the VGG-19 forward+backward on this machine?

One Gram-loss step (VGG-19 to relu5_1, the five Gatys Gram terms, backward to the pixels) in three
forms, interleaved and repeated so machine noise hits all of them: the eager model as stylediff
runs it, the same in channels-last memory format, and ``torch.compile`` of the eager step (its
compile time reported apart). Prints the median ms per step and the ratio to eager.

    python bench/vgg_variants.py [--sizes 128,256] [--steps 10] [--repeats 5] [--no-compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import mean_seconds, sync  # noqa: E402

from stylediff.core.provenance import peak_rss_mb  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import style_objective  # noqa: E402


def make_step(objective, channels_last: bool):
    def step(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        loss = objective(x.contiguous(memory_format=torch.channels_last) if channels_last else x).sum()
        (grad,) = torch.autograd.grad(loss, x)
        return grad

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    vgg = load_vgg19("caffe", "max", device)
    print(f"device: {device}, threads: {torch.get_num_threads()}, torch {torch.__version__}")
    print(
        f"{'size':>5} {'eager ms':>9} {'channels-last ms':>17} {'compiled ms':>12} {'compile s':>10} "
        f"{'CL/eager':>9} {'compiled/eager':>15}"
    )
    summary = []
    for size in [int(s) for s in args.sizes.split(",")]:
        style = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
        objective = style_objective(vgg, style, list(STYLE_LAYERS_GATYS), "gram")
        variants = {"eager": make_step(objective, False), "channels_last": make_step(objective, True)}
        compile_seconds = float("nan")
        if not args.no_compile:
            compiled = torch.compile(make_step(objective, False))
            start = time.perf_counter()
            compiled(x)
            sync(device)
            compile_seconds = time.perf_counter() - start
            variants["compiled"] = compiled
        for step in variants.values():
            step(x)  # warm-up
        times = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, step in variants.items():
                times[name].append(mean_seconds(lambda: step(x), args.steps, device))
        med = {name: statistics.median(values) for name, values in times.items()}
        compiled_ms = med.get("compiled", float("nan")) * 1e3
        print(
            f"{size:>5} {med['eager'] * 1e3:>9.1f} {med['channels_last'] * 1e3:>17.1f} {compiled_ms:>12.1f} "
            f"{compile_seconds:>10.1f} {med['channels_last'] / med['eager']:>9.2f} "
            f"{compiled_ms / 1e3 / med['eager']:>15.2f}"
        )
        summary.append(
            f"{size} px CL {med['channels_last'] / med['eager']:.2f}, compiled {compiled_ms / 1e3 / med['eager']:.2f}"
        )
    print(f"peak RSS {peak_rss_mb():.0f} MiB")
    print("time / eager: " + "; ".join(summary))


if __name__ == "__main__":
    main()
