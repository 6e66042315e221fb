"""Verbs that print what the package knows: ``layers`` (the layer names of VGG-19 or of another feature
network) and ``methods`` (the registered guidance methods). ``layers`` of a network that declares its layer
names (VGG-19) imports no torch."""

from __future__ import annotations

import argparse
import json


def run_layers(args) -> None:
    from ..networks import NETWORKS, load_network
    from ..workflow.experiments import DEFAULT_NETWORK

    name = args.network or DEFAULT_NETWORK
    # a network whose layer names are known without loading it needs no torch here
    print("\n".join(NETWORKS.lookup(name).layers or load_network(name, path=args.network_path).layers))


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
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        evals = row["evaluations"]
        cells = [
            row["name"],
            row["paper"],
            "yes" if row["differentiates_unet"] else "no",
            f"UNet {evals['unet_forward']}f+{evals['unet_backward']}b, "
            f"objective {evals['objective_forward']}f+{evals['objective_backward']}b",
            "–".join(f"{v:g}" for v in row["scale_range"]),
            ", ".join(f"{k}={v}" for k, v in row["defaults"].items()),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    notes = [f"- {row['name']}: {row['note']}" for row in rows if row.get("note")]
    if notes:
        print("\n" + "\n".join(notes))
    print(
        "\nhow each method's loss reads x̂0 (and its reference's):\n"
        + "\n".join(f"- {row['name']}: {row['clamp']}" for row in rows)
    )
    print(
        "\nOn latent models (Stable Diffusion, LDM) x̂0 is a latent: the objective is L(decode(x̂0)), one objective "
        "evaluation is a VAE decode plus the loss; with classifier-free guidance one UNet evaluation is one call on "
        "the doubled (CFG) batch."
    )
    print("\n".join(f"- {row['name']}: {row['latent']}" for row in rows if row.get("latent")))


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
    p.set_defaults(func=run_methods)
