"""Each style loss against its floor: an engine step ÷ a bare VGG-19 forward+backward, and ÷ that pass plus
the loss's own arithmetic alone.

Per size and loss, three costs in CPU seconds of this process at one thread (``time.process_time``: the
work done, which neighbours on a shared machine do not inflate as they do wall time):

- ``VGG``: a bare VGG-19 forward+backward to relu5_1 at the output's size (a sum of relu5_1 as the loss);
- ``loss``: the style term alone on fixed relu1_1…relu5_1 features of the output (they require a gradient,
  the network does not run): its statistics of the output, its comparison with the target and their
  backward to the features, target-side work included, as :class:`~stylediff.nst.losses.StyleTerm` does it;
- ``step``: one step of :func:`~stylediff.nst.optimize.optimize_image` (L-BFGS), as the difference of a
  ``--steps`` and a ``--steps // 4`` run divided by the difference of their step counts, so the
  once-per-run costs drop out.

The floor of a step is VGG + loss: the network and the loss cannot cost less than they do alone, and
``step ÷ (VGG + loss)`` is what the engine adds (the optimiser, the bookkeeping). ``step ÷ VGG`` is the
whole cost against the network's. The style is read at ``--style-read`` × the output's size (2: the
``texture`` default; the sliced Wasserstein then compares with a quarter of the target's pixels per call).
Each step is measured between two VGG passes and divided by their mean; the table gives the medians
of ``--repeats`` such paired ratios.

    python bench/loss_floor.py [--sizes 64,128,256] [--losses gram,…] [--repeats 3] [--out bench/measured/loss_floor.md]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylediff.core.images import load_image  # noqa: E402
from stylediff.networks.vgg19 import load_vgg19  # noqa: E402
from stylediff.networks.vgg19_layers import STYLE_LAYERS_GATYS  # noqa: E402
from stylediff.nst.losses import STYLE_LOSSES, style_objective  # noqa: E402
from stylediff.nst.optimize import OptimizeConfig, optimize_image  # noqa: E402

LAYERS = list(STYLE_LAYERS_GATYS)


def cpu_seconds(fn, calls: int = 1) -> float:
    """CPU seconds of one call of ``fn``, the mean of ``calls`` back-to-back calls."""
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--losses", default=",".join(STYLE_LOSSES))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--style", default=str(ROOT / "data" / "styles" / "starry_night.jpg"))
    parser.add_argument("--style-read", type=float, default=2.0)
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    vgg = load_vgg19("caffe", "max", "cpu")
    short = max(1, args.steps // 4)
    lines = [
        "| size | loss | VGG f+b ms | loss alone ms | step ms | loss ÷ VGG | step ÷ VGG | step ÷ (VGG + loss) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        style = load_image(args.style, round(args.style_read * size))
        image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)

        def bare():
            vgg(image, ["relu5_1"])["relu5_1"].sum().backward()

        bare()  # warm-up
        for name in args.losses.split(","):
            objective = style_objective(vgg, style, LAYERS, name)
            term = objective.terms["style"]
            with torch.no_grad():
                features = vgg(image.detach(), LAYERS)
            leaves = {layer: value.clone().requires_grad_(True) for layer, value in features.items()}

            def loss_alone():
                term(leaves).sum().backward()

            def engine(steps):
                config = OptimizeConfig(steps=steps, progress=False)
                return cpu_seconds(lambda: optimize_image(objective, image.detach(), config))

            loss_alone()  # warm-up
            engine(1)
            vgg_ms, loss_ms, step_ms, step_vgg, step_floor = [], [], [], [], []
            for _ in range(args.repeats):  # each step between two bare passes: a drift hits both sides
                before = cpu_seconds(bare, 3)
                alone = cpu_seconds(loss_alone, 3)
                step = (engine(args.steps) - engine(short)) / (args.steps - short)
                after = cpu_seconds(bare, 3)
                network = (before + after) / 2
                vgg_ms.append(network * 1e3)
                loss_ms.append(alone * 1e3)
                step_ms.append(step * 1e3)
                step_vgg.append(step / network)
                step_floor.append(step / (network + alone))
            m = statistics.median
            row = (
                f"| {size} px | `{name}` | {m(vgg_ms):.0f} | {m(loss_ms):.0f} | {m(step_ms):.0f} | "
                f"{m(loss_ms) / m(vgg_ms):.2f} | {m(step_vgg):.2f} | **{m(step_floor):.2f}** |"
            )
            lines.append(row)
            print(row, flush=True)
    lines.append(
        f"({platform.machine()}, torch {torch.__version__}, 1 thread, CPU time; style "
        f"{Path(args.style).name} read at {args.style_read:g}× the output; medians of {args.repeats} repeats, "
        f"steps {args.steps} − {short}; {datetime.date.today().isoformat()})"
    )
    print(lines[-1])
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
