# Aggregation (tables, markdown summaries) and figures, registered with report() so that
# `snakemake --report report/report.html` collects them. CPU only and cheap.


rule aggregate:
    input:
        lambda wildcards: outputs(wildcards.experiment, ".metrics.json"),
    output:
        table=report(
            f"{RESULTS}/tables/{{experiment}}.csv",
            caption="../report/captions/table.rst",
            category="Tables",
        ),
        summary=f"{REPORT}/{{experiment}}_summary.md",
    params:
        command=STYLEDIFF,
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    shell:
        "{params.command} aggregate --experiment {wildcards.experiment} --metrics {input} "
        "--out {output.table} --summary {output.summary} > {log} 2>&1"


for experiment in EXPERIMENTS:

    rule:
        name:
            f"figures_{experiment}"
        input:
            table=f"{RESULTS}/tables/{experiment}.csv",
            images=figure_inputs(experiment),
        output:
            figure_outputs(experiment),
        params:
            command=STYLEDIFF,
            experiment=experiment,
            report=lambda wildcards, output: Path(output[0]).parent,
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/figures/{experiment}.log",
        shell:
            "{params.command} figures --experiment {params.experiment} --table {input.table} "
            "--out-dir {params.report} > {log} 2>&1"


if config.get("findings"):

    rule findings:
        """The claims as statistics from every table: REPORT/results.md (and the README's Results)."""
        input:
            tables=[f"{RESULTS}/tables/{experiment}.csv" for experiment in EXPERIMENTS],
            figures=[f"{REPORT}/{name}" for experiment in EXPERIMENTS for name in experiment_figures(experiment)],
        output:
            f"{REPORT}/results.md",
        params:
            command=STYLEDIFF,
            tables=" ".join(f"{experiment}={RESULTS}/tables/{experiment}.csv" for experiment in EXPERIMENTS),
            readme="--readme README.md" if config.get("readme") else "",
            preset=config["preset"],
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/findings.log",
        shell:
            "{params.command} findings --table {params.tables} --out {output} {params.readme} "
            "--preset {params.preset} > {log} 2>&1"
