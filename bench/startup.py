"""Start-up of the CLI: wall time of fresh processes, as a user waits for them.

Each command runs ``--repeats`` times in a fresh process, the commands interleaved; prints the range
and median per command. ``stylediff layers`` and ``stylediff --help`` import no torch; a 1-step 32-px
texture shows how long after ``import torch`` the first optimisation step comes.

    python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "data" / "styles" / "starry_night.jpg"


def commands(out: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "stylediff"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "stylediff layers": cli + ["layers"],
        "stylediff --help": cli + ["--help"],
        "stylediff texture (1 step, 32 px)": cli
        + [
            "texture",
            "--style",
            str(STYLE),
            "--size",
            "32",
            "--steps",
            "1",
            "--layers",
            "relu1_1,relu2_1",
            "--no-progress",
            "--out",
            str(out / "t.png"),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env_note = "PYTHONPATH decides which checkout `python -m stylediff` imports"
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.repeats):
            for name, cmd in cmds.items():
                start = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    print("| command | min–max s | median s |\n|---|---|---|")
    for name, values in times.items():
        print(f"| `{name}` | {min(values):.2f}–{max(values):.2f} | {statistics.median(values):.2f} |")
    print(f"({args.repeats} repeats, interleaved; {env_note})")


if __name__ == "__main__":
    main()
