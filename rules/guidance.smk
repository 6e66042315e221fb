# Style-guided diffusion sampling: models x styles x losses x layer sets x windows x modes (guidance
# methods) x normalisations x scales x seeds. One job per combination samples every guided scale in one
# process. Scale 0 is the unguided sample, a job of its own: the paired baseline (same model, seed,
# method) of every guided one, shared by all normalisations. Sampling is the GPU workload.


if PLAN.jobs("guidance"):  # some scale > 0

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
            f"{RESULTS}/logs/guidance/{{head}}__{{tail}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/guidance/{{head}}__{{tail}}.tsv"
        threads: THREADS
        resources:
            gpu=1,
        shell:
            f"{THREAD_ENV} {STYLEDIFF} batch sample {{params.runs}} > {{log}} 2>&1"


rule sample_unguided:
    input:
        job_inputs("guidance", solo=True),
    output:
        png=PLAN.job_outputs("guidance", ".png", solo=True),
        sidecar=PLAN.job_outputs("guidance", ".json", solo=True),
    params:
        runs=job_runs("guidance", solo=True),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/guidance/{{head}}__unguided__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/guidance/{{head}}__unguided__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=1,
    shell:
        f"{THREAD_ENV} {STYLEDIFF} batch sample {{params.runs}} > {{log}} 2>&1"
