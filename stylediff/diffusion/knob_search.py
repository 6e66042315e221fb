"""Hyperparameter search for a guidance method: TFG's beam search, generalised to any registered method.

TFG's: YWolfeee/Training-Free-Guidance ``searching.py`` ``BeamSearch``.

Start from one setting; each round, every member of the beam makes one child per searchable knob by
multiplying that knob by its factor (``GuidanceMethod.search_factors``: the scale ×2 for every method;
TFG's ρ ×2, μ ×2 and γ ×10 as in its scripts); all settings seen so far are ranked by the score and
the best ``beam`` are kept. The score is the style distance of the samples (lower is better) among
settings whose fidelity to the unguided samples stays within a budget (LPIPS to the same-seed
unguided sample at most ``budget``); a setting over budget ranks after every one within it. Every
candidate samples the same seeds and every random draw of a sampling call follows them
(:mod:`stylediff.core.seeding`), so candidates differ only in their knobs: common random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm


@dataclass
class Candidate:
    """One setting the search evaluated.

    Args:
        knobs: the method's knobs.
        style: the style distance of its samples (lower is better).
        fidelity: its distance to the same-seed unguided samples (compared with the budget).
        round: the round it was made in (0: the start).
        extra: whatever else ``evaluate`` returned.
    """

    knobs: dict[str, Any]
    style: float = math.inf
    fidelity: float = math.inf
    round: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self, budget: float) -> tuple[int, float]:
        """Sort key: within budget first, then the lower style distance.

        Args:
            budget: the largest fidelity distance within budget.

        Returns:
            ``(0 within budget else 1, style)``.
        """
        return (0 if self.fidelity <= budget else 1, self.style)


def beam_search(
    evaluate: Callable[[dict[str, Any]], dict[str, float]],
    start: dict[str, Any],
    factors: dict[str, float],
    rounds: int = 4,
    beam: int = 2,
    budget: float = 0.3,
    progress: bool = True,
    caps: dict[str, float] | None = None,
) -> list[Candidate]:
    """Every candidate evaluated, in evaluation order; the best is ``min(..., key=lambda c: c.key(budget))``.

    Args:
        evaluate: ``evaluate(knobs)`` returns ``{"style": …, "fidelity": …, …}`` (``style`` lower is better,
            ``fidelity`` compared with ``budget``).
        start: the first setting.
        factors: ``{knob: factor}``: each round, a member's child multiplies one knob by its factor.
        rounds: how many rounds.
        beam: how many settings each round keeps.
        budget: the largest fidelity distance within budget.
        progress: show a progress bar.
        caps: ``{knob: cap}``: a knob is never multiplied past its cap (TFG's ``max_*``).

    Returns:
        Every candidate evaluated (each setting once), in evaluation order.
    """
    caps = caps or {}
    seen: dict[tuple, Candidate] = {}
    bar = tqdm(total=1 + rounds * beam * len(factors), desc="search", disable=not progress, leave=False)

    def run(knobs: dict[str, Any], round_: int) -> Candidate:
        key = tuple(sorted((k, round(float(v), 12)) for k, v in knobs.items()))
        if key not in seen:
            result = evaluate(knobs)
            seen[key] = Candidate(
                knobs=dict(knobs),
                style=result["style"],
                fidelity=result["fidelity"],
                round=round_,
                extra={k: v for k, v in result.items() if k not in ("style", "fidelity")},
            )
            bar.set_postfix(style=f"{result['style']:.3g}", refresh=False)
        bar.update(1)
        return seen[key]

    members = [run(start, 0)]
    for round_ in range(1, rounds + 1):
        for member in list(members):
            for knob, factor in factors.items():
                run({**member.knobs, knob: min(member.knobs[knob] * factor, caps.get(knob, math.inf))}, round_)
        members = sorted(seen.values(), key=lambda c: c.key(budget))[:beam]
    bar.close()
    return list(seen.values())
