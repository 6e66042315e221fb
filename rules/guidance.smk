# Style-guided diffusion sampling: models x styles x losses x layer sets x windows x methods (guidance
# methods with a gradient normalisation) x normalisations x scales x seeds. One job per model, style, loss,
# layer set and window samples every method, normalisation and scale in one process (diffusers is imported and the model loaded
# once); each setting's seeds are one batch. Scale 0 is the unguided sample: the paired baseline (same
# model, seed, method) of every guided one, shared by all normalisations. Sampling is the GPU workload.


rule sample:
    input:
        job_inputs("guidance"),
    output:
        png=PLAN.job_outputs("guidance", ".png"),
        sidecar=PLAN.job_outputs("guidance", ".json"),
    params:
        runs=job_runs("guidance"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/guidance/{{head}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/guidance/{{head}}.tsv"
    threads: THREADS
    resources:
        gpu=1,
    priority: PRIORITY["sampling"]
    shell:
        f"{THREAD_ENV} {STYLEDIFF} batch sample {{params.runs}} > {{log}} 2>&1"
