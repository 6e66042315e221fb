"""How the results page writes numbers: significant digits, mean ± std, an estimate with its interval,
a markdown table, and the one-line description of a grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .figures import unique
from .statistics import Interval


def label(column: str) -> str:
    from ..evaluation.metrics import column_label

    return column_label(column)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


def mean_std(values) -> str:
    values = values.astype(float).dropna()
    if len(values) == 0:
        return "–"
    if len(values) == 1:
        return fmt(values.iloc[0])
    return f"{fmt(values.mean())} ± {fmt(values.std(ddof=1))}"


def with_interval(interval: Interval | None, digits: int = 3, signed: bool = False) -> str:
    """ "0.52 [0.48, 0.57]" (95 % bootstrap interval); the bounds are left out when NaN."""
    if interval is None:
        return "–"
    sign = "+" if signed and interval.value > 0 else ""
    text = sign + fmt(interval.value, digits)
    if math.isnan(interval.low):
        return text
    return f"{text} [{fmt(interval.low, digits)}, {fmt(interval.high, digits)}]"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    import pandas as pd

    frame = pd.DataFrame([[str(cell) for cell in row] for row in rows], columns=list(header))
    return [frame.to_markdown(index=False, disable_numparse=True), ""]


def _count(frame, column: str) -> int:
    return frame[column].nunique() if column in frame else 0


def setup(frame, axis: str) -> str:
    parts = [f"{_count(frame, axis)} {axis}s × {_count(frame, 'seed')} seeds"]
    if "size" in frame:
        parts.append(f"{unique(frame['size'])[0]} px")
    if "steps" in frame:
        parts.append(f"{unique(frame['steps'])[0]} steps")
    if "model" in frame:
        parts.append(", ".join(unique(frame["model"].astype(str))))
    return ", ".join(parts)


FINDING = "**Finding.** "
"""The line after a section's heading that carries its one-sentence finding (the README's row)."""


def with_finding(lines: list[str], finding: str) -> list[str]:
    """The section's lines with its finding after the heading."""
    return lines[:2] + [FINDING + finding, ""] + lines[2:]
