# Feature inversion: reconstruct each image from one VGG-19 layer (images x layers x poolings x seeds).
# One job per image, pooling and seed inverts every layer in one process.


rule invert:
    input:
        job_inputs("inversion"),
    output:
        png=PLAN.job_outputs("inversion", ".png"),
        sidecar=PLAN.job_outputs("inversion", ".json"),
    params:
        runs=job_runs("inversion"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/inversion/{{head}}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inversion/{{head}}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=gpu("inversion"),
    priority: PRIORITY["invert"]
    shell:
        f"{THREAD_ENV} {STYLEDIFF} batch invert {{params.runs}} > {{log}} 2>&1"
