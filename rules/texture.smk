# Texture synthesis (Gatys et al. 2015): styles x nested layer sets x losses x seeds.
# One job per style and seed synthesises every layer set with every loss in one process (VGG-19 is
# loaded once; at the quick preset's 48 px a synthesis takes about as long as a process start-up).


rule texture:
    input:
        job_inputs("texture"),
    output:
        png=PLAN.job_outputs("texture", ".png"),
        sidecar=PLAN.job_outputs("texture", ".json"),
    params:
        runs=job_runs("texture"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/texture/{{head}}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/texture/{{head}}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=gpu("texture"),
    priority: PRIORITY["texture"]
    shell:
        f"{THREAD_ENV} {STYLEDIFF} batch texture {{params.runs}} > {{log}} 2>&1"
