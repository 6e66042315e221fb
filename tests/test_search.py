"""stylediff.diffusion.knob_search (beam search) and the `stylediff search` verb."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from stylediff.cli import main
from stylediff.diffusion.knob_search import beam_search

from .conftest import search_argv

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "starry_night.jpg"


def test_beam_search_climbs_to_the_best_setting_within_budget():
    """style falls as the scale grows; fidelity is spent as it grows: the best within a budget of 1 is
    the largest scale whose fidelity is <= 1 (scale 8 here), reached by doubling from 1."""
    evaluate = lambda knobs: {"style": 1 / knobs["scale"], "fidelity": knobs["scale"] / 8}  # noqa: E731
    seen = beam_search(evaluate, {"scale": 1.0}, {"scale": 2.0}, rounds=6, beam=2, budget=1.0, progress=False)
    best = min(seen, key=lambda c: c.key(1.0))
    assert best.knobs["scale"] == 8.0 and best.fidelity <= 1.0
    assert any(c.fidelity > 1.0 for c in seen)  # it looked past the budget and ranked those last
    two = beam_search(
        lambda k: {"style": (math.log2(k["a"]) - 2) ** 2 + (math.log2(k["b"]) - 3) ** 2, "fidelity": 0.0},
        {"a": 1.0, "b": 1.0},
        {"a": 2.0, "b": 2.0},
        rounds=6,
        beam=2,
        budget=1.0,
        progress=False,
    )
    assert min(two, key=lambda c: c.key(1.0)).knobs == {"a": 4.0, "b": 8.0}


def test_beam_search_stops_a_knob_at_its_cap_and_tfg_starts_where_its_reference_does():
    """A knob that keeps improving is held at its cap (TFG's max_rho 8), never past it; TFG's search
    starts at searching.py's init values with the caps of its max_* arguments."""
    from stylediff.diffusion import METHODS

    seen = beam_search(
        lambda k: {"style": 1 / k["rho"], "fidelity": 0.0},
        {"rho": 0.25},
        {"rho": 2.0},
        rounds=8,
        beam=1,
        budget=1.0,
        progress=False,
        caps={"rho": 8.0},
    )
    assert max(c.knobs["rho"] for c in seen) == 8.0
    assert min(seen, key=lambda c: c.key(1.0)).knobs == {"rho": 8.0}
    tfg = METHODS["tfg"]
    assert tfg.search_start == {"scale": 1.0, "rho": 0.25, "mu": 0.25, "variance": 0.001}
    assert tfg.search_caps == {"rho": 8.0, "mu": 8.0, "variance": 1.0}
    assert set(tfg.search_caps) == set(tfg.search_factors)


def test_search_verb_writes_every_candidate_and_a_workflow_entry(tiny_ddpm_dir, tmp_path):
    out = tmp_path / "best.yaml"
    code = main(search_argv(tiny_ddpm_dir, out, "tfg", style=STYLE))
    assert code == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    assert len(table) == 4 and {"rho", "mu", "variance", "gram_dist_mean", "within_budget"} <= set(table.columns)
    (entry,) = yaml.safe_load(out.read_text())
    assert entry["name"] == "tfg" and len(entry["scales"]) == 1 and set(entry["knobs"]) == {"rho", "mu", "variance"}
