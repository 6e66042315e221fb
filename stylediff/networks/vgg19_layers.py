"""VGG-19 layer names (the package's layer registry) and network options, torch-free.

The CLI's help, the ``layers`` verb and the workflow plan need no torch.

Names follow Gatys et al.: ``conv{b}_{i}``, ``relu{b}_{i}`` and ``pool{b}`` for block b = 1…5.
"""

from __future__ import annotations

from ..core.errors import LayerError

WEIGHT_SOURCES = ("caffe", "torchvision")
POOLINGS = ("max", "avg")
BLOCK_CONVS = (2, 2, 4, 4, 4)
CONV_CHANNELS = (64, 128, 256, 512, 512)


def _layer_names() -> tuple[str, ...]:
    names = []
    for block, convs in enumerate(BLOCK_CONVS, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYERS: tuple[str, ...] = _layer_names()
"""Every layer name in network order: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, …, pool5``."""
LAYER_INDEX = {name: i for i, name in enumerate(LAYERS)}
CONV_LAYERS = tuple(name for name in LAYERS if name.startswith("conv"))
STYLE_LAYERS_GATYS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER_GATYS = "relu4_2"


def check_layers(layers: str | list[str] | tuple[str, ...]) -> list[str]:
    """Parse a comma-separated string or list of VGG-19 layer names.

    Args:
        layers: ``"relu1_1,relu2_1"`` or a sequence of names.

    Returns:
        The names, in the order given.

    Raises:
        LayerError: no layer, or an unknown one (the message names the valid ones).
    """
    if isinstance(layers, str):
        layers = [name.strip() for name in layers.split(",") if name.strip()]
    layers = list(layers)
    if not layers:
        raise LayerError("no layer given: name at least one VGG-19 layer, e.g. relu3_1 (see `stylediff layers`)")
    unknown = [name for name in layers if name not in LAYER_INDEX]
    if unknown:
        raise LayerError(f"unknown VGG-19 layer {', '.join(map(repr, unknown))}; valid layers: {', '.join(LAYERS)}")
    return layers


def pools_before(name: str) -> int:
    """How many 2x poolings the input has passed when it reaches layer ``name``.

    Args:
        name: a VGG-19 layer.

    Returns:
        0 for block 1, up to 5 for ``pool5``.
    """
    block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
    return block if name.startswith("pool") else block - 1


def channels(name: str) -> int:
    """Channel count of layer ``name``.

    Args:
        name: a VGG-19 layer.

    Returns:
        64, 128, 256 or 512.
    """
    block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
    return CONV_CHANNELS[block - 1]


def min_input_size(layers: list[str] | tuple[str, ...]) -> int:
    """Smallest image side for which every layer in ``layers`` still has at least one pixel.

    Args:
        layers: VGG-19 layer names.

    Returns:
        ``2 ** (poolings before the deepest)``.

    Raises:
        LayerError: an unknown layer.
    """
    return 2 ** max(pools_before(name) for name in check_layers(layers))
