# The guidance methods compared on one task: models x styles x losses x layer sets x methods x scales,
# the seeds of one setting sampled as one batch. One rule per method (each has its own scales), one job
# per combination of the other axes samples all its scales; the unguided samples (scale 0, rule methods_unguided)
# are shared by every method; per model, a reference set of unguided samples (other
# seeds) is the model's own distribution for the realism metric.


for method, solo in PLAN.rule_variants("guidance_methods"):

    rule:
        name:
            f"methods_{method}"
        input:
            job_inputs("guidance_methods", solo, method),
        output:
            png=PLAN.job_outputs("guidance_methods", ".png", solo, method),
            sidecar=PLAN.job_outputs("guidance_methods", ".json", solo, method),
        params:
            runs=job_runs("guidance_methods", solo, method),
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/guidance_methods/{{head}}__{method}.log",
        benchmark:
            f"{RESULTS}/benchmarks/guidance_methods/{{head}}__{method}.tsv"
        threads: THREADS
        resources:
            gpu=1,
        shell:
            f"{THREAD_ENV} {STYLEDIFF} batch sample {{params.runs}} > {{log}} 2>&1"


rule reference_set:
    """The model's own unguided samples (seeds from 1000) that realism is measured against."""
    input:
        lambda wildcards: [model for model in [PLAN.reference_sets("guidance_methods")[wildcards.name]["model"]]
                           if Path(model).is_dir()],
    output:
        grid=f"{RESULTS}/guidance_methods/reference/{{name}}.png",
        sidecar=f"{RESULTS}/guidance_methods/reference/{{name}}.json",
    params:
        run=lambda wildcards: PLAN.reference_set_command("guidance_methods", wildcards.name),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/guidance_methods/reference_{{name}}.log",
    threads: THREADS
    resources:
        gpu=1,
    shell:
        f"{THREAD_ENV} {STYLEDIFF} sample {{params.run}} > {{log}} 2>&1"
