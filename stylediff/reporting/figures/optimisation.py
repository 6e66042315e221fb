"""The figures of Part 1's experiments: feature inversion, texture synthesis and style transfer."""

from __future__ import annotations

from ..tables import recorded_label
from .grids import labelled_grid
from .style import (
    FIGURE_DPI,
    PAGE_WIDTH_PX,
    Figure,
    _count,
    _draw_errorbars,
    _errorbar_lines,
    _first_seed,
    _legend_below,
    _listing,
    _lookup,
    _model_text,
    _pyplot,
    _save,
    layer_set_label,
    line_styles,
    unique,
)


# ------------------------------------------------------------------------------------------- inversion
def inversion_figures(frame) -> list[Figure]:
    from ...networks.vgg19_layers import LAYER_INDEX

    plt = _pyplot()
    model = _model_text(frame)
    poolings = unique(frame["pooling"]) if "pooling" in frame else []
    pooling = ""
    if len(poolings) > 1:  # the grid and curves show the first pooling; results.md compares them
        frame = frame[frame["pooling"] == poolings[0]]
        pooling = f", {poolings[0]} pooling (of {_listing(poolings)})"
    first = _first_seed(frame)
    seed = first["seed"].iloc[0]
    images = unique(frame["image"])
    layers = sorted(unique(frame["layer"]), key=lambda name: LAYER_INDEX.get(name, 0))
    outputs, refs = _lookup(first, ["image", "layer"], "output"), _lookup(first, ["image"], "reference")
    columns = ["original"] + layers
    seeds = sorted(frame["seed"].unique())
    metric = "lpips_vgg" if "lpips_vgg" in frame else "psnr"

    def grid(path):
        labelled_grid(
            [[refs.get((image,))] + [outputs.get((image, layer)) for layer in layers] for image in images],
            images,
            columns,
            path,
            title=f"Feature inversion, seed {seed}{pooling} ({model})",
        )

    def curves(path):
        fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH_PX / FIGURE_DPI, 3.4))
        lines = {}
        for ax, column in zip(axes, ("feature_error", metric)):
            lines[column] = _errorbar_lines(frame, "layer", column, "image", layers)
            styles = line_styles(list(lines[column]))
            _draw_errorbars(ax, lines[column], range(len(layers)), styles, lambda x, o: x + 0.3 * o)
            ax.set_xticks(range(len(layers)))
            ax.set_xticklabels(layers, rotation=45, ha="right")
            ax.set_ylabel(recorded_label(frame, column))
            ax.grid(alpha=0.3)
        axes[0].set_title("feature error at the layer")
        axes[1].set_title("LPIPS to the original" if metric == "lpips_vgg" else "PSNR")
        _legend_below(fig, axes, ncol=min(len(images), 5))
        _save(fig, path)

    n_seeds = len(seeds)
    return [
        Figure(
            "inversion_grid.png",
            f"Feature inversion (Mahendran and Vedaldi): {_count(len(images), 'image')} (rows; the original in "
            f"the first column) each reconstructed from noise by matching its activations at one layer of "
            f"{model}: {_listing(layers)} (columns, shallow to deep); seed {seed}{pooling}.",
            grid,
        ),
        Figure(
            "inversion_error.png",
            f"Inversion error against the inverted layer ({_listing(layers)}), one line per image "
            f"({_count(len(images), 'image')}): left, the relative feature error at that layer; right, "
            + ("LPIPS (VGG) between the reconstruction and the original" if metric == "lpips_vgg" else "PSNR")
            + f". Mean ± standard deviation over {_count(n_seeds, 'seed')}{pooling}; {model}.",
            curves,
        ),
    ]


# --------------------------------------------------------------------------------------------- texture
def texture_figures(frame) -> list[Figure]:
    plt = _pyplot()
    model = _model_text(frame)
    first = _first_seed(frame)
    seed = first["seed"].iloc[0]
    styles = unique(frame["style"])
    layer_sets = sorted(unique(frame["layers"]), key=lambda s: len(str(s).split("-")))
    losses = unique(frame["loss"])
    loss0 = "gram" if "gram" in losses else losses[0]
    deepest = layer_sets[-1]
    refs = _lookup(first, ["style"], "reference")
    labels = [layer_set_label(s) for s in layer_sets]
    headers = [str(s).split("-")[0] if i == 0 else f"…{str(s).split('-')[-1]}" for i, s in enumerate(layer_sets)]
    by_layers = _lookup(first[first["loss"] == loss0], ["style", "layers"], "output")
    by_loss = _lookup(first[first["layers"] == deepest], ["style", "loss"], "output")
    seeds = sorted(frame["seed"].unique())
    ticks = [f"…{str(s).split('-')[-1]}" for s in layer_sets]

    def layers_grid(path):
        labelled_grid(
            [[refs.get((style,))] + [by_layers.get((style, s)) for s in layer_sets] for style in styles],
            styles,
            ["style"] + headers,
            path,
            title=f"Textures by layer set, loss {loss0}, seed {seed} ({model})",
        )

    def losses_grid(path):
        labelled_grid(
            [[refs.get((style,))] + [by_loss.get((style, loss)) for loss in losses] for style in styles],
            styles,
            ["style"] + losses,
            path,
            title=f"Textures by loss, {layer_set_label(deepest)}, seed {seed} ({model})",
        )

    def curves(path):
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH_PX / FIGURE_DPI, 3.4))
        lines = _errorbar_lines(frame, "layers", "gram_dist_mean", "loss", layer_sets)
        _draw_errorbars(ax, lines, range(len(layer_sets)), line_styles(list(lines)), lambda x, o: x + 0.25 * o)
        ax.set_xticks(range(len(layer_sets)))
        ax.set_xticklabels(ticks)
        ax.set_xlabel("nested layer set (relu1_1 … the layer named)")
        ax.set_ylabel(recorded_label(frame, "gram_dist_mean"))
        ax.grid(alpha=0.3)
        ax.legend(title="optimised loss", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        fig.tight_layout(pad=0.4)
        _save(fig, path)

    spread = f"mean ± standard deviation over {_count(len(styles), 'style')} × {_count(len(seeds), 'seed')}"
    return [
        Figure(
            "texture_layers_grid.png",
            f"Texture synthesis (Gatys et al. 2015) with nested layer sets: each of {_count(len(styles), 'style')} "
            f"(rows; the style image first) synthesised from noise by the {loss0} loss at "
            f"{_listing(labels)} (columns, each headed by its deepest layer); seed {seed}; {model}.",
            layers_grid,
        ),
        Figure(
            "texture_losses_grid.png",
            f"Texture synthesis with each style loss ({_listing(losses)}; columns) at the deepest layer set "
            f"{layer_set_label(deepest)}, {_count(len(styles), 'style')} (rows; the style image first); "
            f"seed {seed}; {model}.",
            losses_grid,
        ),
        Figure(
            "texture_gram_vs_layers.png",
            f"Gram distance to the style image (mean over relu1_1…relu5_1) against the layer set optimised "
            f"({_listing(ticks)}), one line per optimised loss ({_listing(losses)}); {spread}. Every output is "
            f"graded by the same Gram metric whatever loss made it; {model}.",
            curves,
        ),
    ]


# -------------------------------------------------------------------------------------------- transfer
def transfer_figures(frame) -> list[Figure]:
    model = _model_text(frame)
    first = _first_seed(frame)
    seed = first["seed"].iloc[0]
    losses = unique(frame["loss"])
    pairs = unique(zip(first["content"], first["style"]))
    contents, refs = _lookup(first, ["content"], "baseline"), _lookup(first, ["style"], "reference")
    outputs = _lookup(first, ["content", "style", "loss"], "output")
    columns = ["content", "style"] + losses

    def grid(path):
        labelled_grid(
            [[contents.get((c,)), refs.get((s,))] + [outputs.get((c, s, loss)) for loss in losses] for c, s in pairs],
            [f"{c} × {s}" for c, s in pairs],
            columns,
            path,
            title=f"Style transfer by loss, seed {seed} ({model})",
        )

    return [
        Figure(
            "transfer_grid.png",
            f"Neural style transfer (Gatys et al. 2016): {_count(len(pairs), 'content × style pair')} (rows; "
            f"content and style images in the first two columns) with each style loss ({_listing(losses)}; "
            f"columns); seed {seed}; {model}.",
            grid,
        )
    ]
