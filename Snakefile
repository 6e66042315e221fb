"""stylediff experiments: feature inversion, texture synthesis, style transfer, style-guided diffusion
sampling and the guidance methods compared, as grids of runs declared in config.yaml (validated
against schemas/config.schema.yaml), planned by stylediff.plan, scored, tabulated and drawn into report/.

    snakemake --cores 2                                          # quick preset, offline CPU
    snakemake --cores 4 --resources gpu=1 --config preset=full   # full preset (config/full.yaml)
    snakemake --report report/report.html                        # HTML report of figures and tables

See the README, "The experiment workflow".
"""

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


# A preset is config/<name>.yaml laid over config.yaml; Snakemake applies the command line's --config
# and --configfile values again after it, so they still win over the preset. A preset named on the
# command line must exist; a complete config (--configfile) may carry any label.
PRESETS = sorted(path.stem for path in Path(workflow.basedir, "config").glob("*.yaml"))
if config.get("preset", "quick") in PRESETS:

    configfile: str(Path(workflow.basedir, "config", f"{config['preset']}.yaml"))


elif "preset" in (getattr(workflow.config_settings, "config", None) or {}) and config["preset"] != "quick":
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


rule all:
    """Every table, summary and figure of the configured experiments."""
    default_target: True
    input:
        ALL_TARGETS,
