"""stylediff experiments: feature inversion, texture synthesis, style transfer and style-guided
diffusion sampling, as grids of runs declared in config.yaml (validated against
schemas/config.schema.yaml), scored, tabulated and drawn into report/.

    snakemake --cores 2                                          # quick preset, offline CPU
    snakemake --cores 4 --resources gpu=1 --config preset=full   # full preset (config/full.yaml)
    snakemake --report report/report.html                        # HTML report of figures and tables

See the README, "The experiment workflow".
"""

from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/images.smk"


if "inversion" in EXPERIMENTS:

    include: "rules/inversion.smk"


if "texture" in EXPERIMENTS:

    include: "rules/texture.smk"


if "transfer" in EXPERIMENTS:

    include: "rules/transfer.smk"


if "guidance" in EXPERIMENTS:

    include: "rules/guidance.smk"


include: "rules/metrics.smk"
include: "rules/report.smk"


localrules:
    all,
    image,
    aggregate,


rule all:
    """Every table, summary and figure of the configured experiments."""
    default_target: True
    input:
        ALL_TARGETS,
