# The plan of each experiment as a table, aggregation (tables, markdown summaries) and figures,
# registered with report() so that `snakemake --report report/report.html` collects them. CPU only.


rule plan:
    """The experiment's runs (one row per run, a column per axis): what the tables join on."""
    output:
        f"{RESULTS}/plan/{{experiment}}.csv",
    params:
        config=lambda wildcards: plan_config(wildcards.experiment),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/plan/{{experiment}}.log",
    shell:
        f"{STYLEDIFF} plan --experiment {{wildcards.experiment}} --config-json {{params.config}} "
        "--out {output} > {log} 2>&1"


rule aggregate:
    input:
        plan=f"{RESULTS}/plan/{{experiment}}.csv",
        metrics=lambda wildcards: PLAN.outputs(wildcards.experiment, ".metrics.json"),
    output:
        table=report(
            f"{RESULTS}/tables/{{experiment}}.csv",
            caption="../report/captions/table.rst",
            category="Tables",
        ),
        sidecar=f"{RESULTS}/tables/{{experiment}}.json",
        summary=f"{REPORT}/{{experiment}}_summary.md",
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    shell:
        f"{STYLEDIFF} aggregate --experiment {{wildcards.experiment}} --plan {{input.plan}} "
        "--metrics {input.metrics} --out {output.table} --summary {output.summary} > {log} 2>&1"


for experiment in EXPERIMENTS:

    rule:
        name:
            f"figures_{experiment}"
        input:
            table=f"{RESULTS}/tables/{experiment}.csv",
            sidecar=f"{RESULTS}/tables/{experiment}.json",
            images=PLAN.outputs(experiment) + metrics_references(experiment),
        output:
            figure_outputs(experiment) + caption_outputs(experiment),
        params:
            experiment=experiment,
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/figures/{experiment}.log",
        shell:
            f"{STYLEDIFF} figures --experiment {{params.experiment}} --table {{input.table}} "
            f"--out-dir {REPORT} > {{log}} 2>&1"


if config.get("findings"):

    rule findings:
        """The claims as statistics from every table: REPORT/findings.md (figure links relative to it)."""
        input:
            tables=[f"{RESULTS}/tables/{experiment}.csv" for experiment in EXPERIMENTS],
            figures=[f"{REPORT}/{name}" for experiment in EXPERIMENTS for name in PLAN.figures(experiment)],
        output:
            f"{REPORT}/findings.md",
        params:
            tables=" ".join(f"{experiment}={RESULTS}/tables/{experiment}.csv" for experiment in EXPERIMENTS),
            preset=config["preset"],
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/findings.log",
        shell:
            f"{STYLEDIFF} findings --table {{params.tables}} --out {{output}} --preset {{params.preset}} "
            "> {log} 2>&1"


rule publish:
    """The one step that writes tracked files, run on purpose (`snakemake publish --cores 2`): copies the
    summaries and figures into PUBLISH (report/ for the quick preset); with `readme: true`, also writes
    docs/results.md and splices the results into README.md between its markers. No declared output: the
    target is always run when named, and never by the default target."""
    input:
        files=REPORT_FILES,
        tables=[f"{RESULTS}/tables/{experiment}.csv" for experiment in EXPERIMENTS],
    params:
        findings=(" --table " + " ".join(f"{experiment}={RESULTS}/tables/{experiment}.csv" for experiment in EXPERIMENTS)
                  + f" --page docs/results.md --readme README.md --preset {config['preset']}"
                  + " --captions-in README.md docs/index.md")
        if config.get("readme") else "",
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/publish.log",
    shell:
        f"{STYLEDIFF} publish --files {{input.files}} --to {PUBLISH}{{params.findings}} > {{log}} 2>&1"
