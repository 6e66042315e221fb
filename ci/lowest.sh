#!/usr/bin/env bash
# The fast tests against the lowest versions of torch, torchvision, diffusers and snakemake that
# pyproject.toml declares (read from its `>=` bounds, core or extras, pinned with `==`), in a
# throw-away venv under /tmp, so that the lower bounds are tested rather than guessed. The other
# dependencies resolve as for a user. Run by .ci/run; alone: bash ci/lowest.sh [pytest args]. Costs about 3 GB of downloads (torch's CUDA
# build from PyPI) when pip's cache is cold.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(mktemp -d /tmp/stylediff-lowest.XXXXXX)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"

python - > "$venv/lowest.txt" <<'EOF'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
for name in ("torch", "torchvision", "diffusers", "snakemake"):
    spec = next(dep for dep in deps if re.match(name + r"\s*[<>=!~]", dep))
    print(name + "==" + re.search(r">=\s*([0-9][0-9.]*)", spec).group(1))
EOF
echo "== lowest declared versions: $(tr '\n' ' ' < "$venv/lowest.txt")"
start=$(date +%s)
pip install --quiet --disable-pip-version-check -c "$venv/lowest.txt" -e ".[test]"
echo "== installed in $(( $(date +%s) - start )) s: $(pip list 2>/dev/null | grep -Ei '^(torch|torchvision|diffusers|snakemake) ' | tr -s ' ' | tr '\n' ' ')"
pip check

# The rules' `stylediff` is this venv's (PATH), as are the tests' Python and Snakemake.
start=$(date +%s)
python -m pytest -q -m "not slow and not slurm and not network" -p no:cacheprovider "$@"
echo "== fast tests with the lowest versions passed in $(( $(date +%s) - start )) s"
