"""Verbs that print what the package knows: ``layers`` (the layer names of VGG-19 or of another feature
network) and ``methods`` (the registered guidance methods). ``layers`` of a network that declares its layer
names (VGG-19) imports no torch."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
import unicodedata


def run_layers(args) -> None:
    from ..networks import NETWORKS, load_network
    from ..workflow.experiments import DEFAULT_NETWORK

    name = args.network or DEFAULT_NETWORK
    # a network whose layer names are known without loading it needs no torch here
    print("\n".join(NETWORKS.lookup(name).layers or load_network(name, path=args.network_path).layers))


def pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` columns on screen: combining marks (the hat of x̂0) take none."""
    return text + " " * (width - sum(not unicodedata.combining(c) for c in text))


def text_table(header: list[str], rows: list[list[str]], width: int, gap: int = 2) -> str:
    """``rows`` as a plain-text table about ``width`` characters wide: columns aligned, a cell wrapped
    inside its column. A column gets its longest word (up to 24 characters) and a share of the rest of
    the width in proportion to how much more its longest cell needs."""
    natural = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    least = [
        min(n, 24, max(len(word) for cell in column for word in cell.split() or [""]))
        for n, column in zip(natural, zip(header, *rows))
    ]
    while sum(least) + gap * (len(natural) - 1) > width and max(least) > 1:  # narrow terminal: long words break
        least[least.index(max(least))] -= 1
    spare = width - gap * (len(natural) - 1) - sum(least)
    want = sum(natural) - sum(least)
    if want <= spare:
        widths = natural
    else:
        widths = [low + max(0, spare) * (n - low) // want for n, low in zip(natural, least)]
    wraps = any(len(cell) > w for row in rows for cell, w in zip(row, widths))
    lines = []
    for i, cells in enumerate([header, *rows]):
        wrapped = [textwrap.wrap(cell, w) or [""] for cell, w in zip(cells, widths)]
        for k in range(max(map(len, wrapped))):
            parts = [pad(column[k] if k < len(column) else "", w) for column, w in zip(wrapped, widths)]
            lines.append((" " * gap).join(parts).rstrip())
        if i == 0:
            lines.append((" " * gap).join("-" * w for w in widths))
        elif wraps and i < len(rows):
            lines.append("")  # a blank line between rows whose cells run over several lines
    return "\n".join(lines)


def run_methods(args) -> None:
    from ..diffusion.methods import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    header = [
        "name",
        "paper",
        "gradient through the UNet",
        "evaluations per guided step",
        "scale range",
        "knobs (defaults)",
    ]
    table = []
    for row in rows:
        evals = row["evaluations"]
        table.append(
            [
                row["name"],
                row["paper"],
                "yes" if row["differentiates_unet"] else "no",
                f"UNet {evals['unet_forward']}f+{evals['unet_backward']}b, "
                f"objective {evals['objective_forward']}f+{evals['objective_backward']}b",
                "–".join(f"{v:g}" for v in row["scale_range"]),
                ", ".join(f"{k}={v}" for k, v in row["defaults"].items()),
            ]
        )
    notes = [f"{row['name']}: {row['note']}" for row in rows if row.get("note")]
    clamps = [f"{row['name']}: {row['clamp']}" for row in rows]
    latent = (
        "On latent models (Stable Diffusion, LDM) x̂0 is a latent: the objective is L(decode(x̂0)), one objective "
        "evaluation is a VAE decode plus the loss; with classifier-free guidance one UNet evaluation is one call on "
        "the doubled (CFG) batch."
    )
    latents = [f"{row['name']}: {row['latent']}" for row in rows if row.get("latent")]
    if args.markdown:
        print("| " + " | ".join(header) + " |\n" + "|" + "---|" * len(header))
        print("\n".join("| " + " | ".join(cells) + " |" for cells in table))
        bullets = lambda items: "\n".join(f"- {item}" for item in items)  # noqa: E731
    else:
        width = shutil.get_terminal_size((100, 24)).columns - 1  # the last column would wrap in some terminals
        print(text_table(header, table, width))

        def bullets(items):
            return "\n".join(textwrap.fill(item, width, initial_indent="- ", subsequent_indent="  ") for item in items)

        latent = textwrap.fill(latent, width)
    if notes:
        print("\n" + bullets(notes))
    print("\nhow each method's loss reads x̂0 (and its reference's):\n" + bullets(clamps))
    print("\n" + latent)
    print(bullets(latents))


def register(sub: argparse._SubParsersAction) -> None:
    from .args import add_registered

    p = sub.add_parser("layers", help="list the layer names of VGG-19 (or of --network)")
    add_registered(p, "--network", "network", "a feature network: %(choices)s", default=None)
    p.add_argument("--network-path", default=None, help="local weights of --network")
    p.set_defaults(func=run_layers)
    p = sub.add_parser(
        "methods",
        help="list the guidance methods: paper, cost, knobs, scales",
        description="The registered guidance methods: paper, whether the gradient goes "
        "through the UNet, network evaluations per step, knobs with their "
        "defaults, and the measured scale range.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (default: aligned plain text)")
    p.set_defaults(func=run_methods)
