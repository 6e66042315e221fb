"""stylediff experiments: feature inversion, texture synthesis, style transfer, style-guided diffusion
sampling and the guidance methods compared, as grids of runs declared in config.yaml (validated
against schemas/config.schema.yaml), planned by stylediff.workflow.plan, scored, tabulated and drawn. A run
writes only under its results folder (results/ for the quick preset): runs, tables, logs, and the
figures, summaries and findings under results/report/. Publishing them into the committed report/,
docs/results.md and the README is a separate, explicit target.

    snakemake --cores 2                                          # quick preset, offline CPU
    snakemake --cores 4 --resources gpu=1 --config preset=full   # full preset (config/full.yaml)
    snakemake --report results/report.html                       # HTML report of figures and tables
    snakemake publish --cores 2                                  # copy the figures into report/ (tracked)

See docs/workflow/index.md.
"""

from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("8.2")


configfile: "config.yaml"


# A preset is config/<name>.yaml laid over config.yaml by Snakemake's own `configfile:` (the command
# line's --config and --configfile values are applied again after it, so they still win). A preset
# name that has no file is an error when it is all that differs from config.yaml (a typo such as
# `--config preset=ful`); a complete config passed with --configfile may carry any label.
PRESETS = sorted(path.stem for path in Path(workflow.basedir, "config").glob("*.yaml"))
if config["preset"] in PRESETS:

    configfile: str(Path(workflow.basedir, "config", f"{config['preset']}.yaml"))


elif config["preset"] != "quick" and {**config, "preset": "quick"} == yaml.safe_load(
    Path(workflow.basedir, "config.yaml").read_text()
):
    raise WorkflowError(f"config: unknown preset {config['preset']!r}; valid presets: "
                        f"{', '.join(['quick'] + PRESETS)} (or pass a complete config with --configfile)")


include: "rules/common.smk"
include: "rules/images.smk"


for experiment in EXPERIMENTS:

    include: f"rules/{experiment}.smk"


include: "rules/metrics.smk"
include: "rules/report.smk"


localrules:
    all,
    image,
    plan,
    aggregate,
    publish,


rule all:
    """Every table, summary and figure of the configured experiments."""
    default_target: True
    input:
        ALL_TARGETS,
