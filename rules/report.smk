# Aggregation (tables, markdown summaries) and figures, registered with report() so that
# `snakemake --report report/report.html` collects them. CPU only and cheap.


rule aggregate:
    input:
        lambda wildcards: outputs(wildcards.experiment, ".metrics.json"),
    output:
        table=report(
            "results/tables/{experiment}.csv",
            caption="../report/captions/table.rst",
            category="Tables",
        ),
        summary="report/{experiment}_summary.md",
    params:
        command=STYLEDIFF,
    conda:
        "../envs/stylediff.yaml"
    log:
        "results/logs/aggregate/{experiment}.log",
    shell:
        "{params.command} aggregate --experiment {wildcards.experiment} --metrics {input} "
        "--out {output.table} --summary {output.summary} > {log} 2>&1"


for experiment in EXPERIMENTS:

    rule:
        name:
            f"figures_{experiment}"
        input:
            table=f"results/tables/{experiment}.csv",
            images=figure_inputs(experiment),
        output:
            figure_outputs(experiment),
        params:
            command=STYLEDIFF,
            experiment=experiment,
        conda:
            "../envs/stylediff.yaml"
        log:
            f"results/logs/figures/{experiment}.log",
        shell:
            "{params.command} figures --experiment {params.experiment} --table {input.table} "
            "--out-dir report > {log} 2>&1"
