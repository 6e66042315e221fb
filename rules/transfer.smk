# Neural style transfer (Gatys et al. 2016): contents x styles x losses x seeds.
# One job per content, style and seed runs every loss in one process.


rule transfer:
    input:
        job_inputs("transfer"),
    output:
        png=PLAN.job_outputs("transfer", ".png"),
        sidecar=PLAN.job_outputs("transfer", ".json"),
    params:
        runs=job_runs("transfer"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/transfer/{{head}}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/transfer/{{head}}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=gpu("transfer"),
    priority: PRIORITY["transfer"]
    shell:
        f"{THREAD_ENV} {STYLEDIFF} batch transfer {{params.runs}} > {{log}} 2>&1"
