# The guidance methods compared on one task: models x styles x losses x layer sets x methods x scales,
# the seeds of one setting sampled as one batch. One job per model, style, loss and layer set samples
# every method at each of its scales in one process (diffusers is imported and the model loaded once);
# the unguided samples (method unguided, scale 0) are the shared baseline of every method; per model, a
# reference set of unguided samples (other seeds) is the model's own distribution for the realism metric.


# One rule per group of jobs that write the same files after their head: a single group unless a method's
# scales differ by style group (`scales_by_group`); the first is `sample_methods`, the others
# `sample_methods_2`, ..., each limited to its heads.
SAMPLE_GROUPS = PLAN.job_groups("guidance_methods") or [None]
for index, heads in enumerate(SAMPLE_GROUPS, 1):

    rule:
        name:
            "sample_methods" if index == 1 else f"sample_methods_{index}"
        input:
            job_inputs("guidance_methods"),
        output:
            png=PLAN.job_outputs("guidance_methods", ".png", heads),
            sidecar=PLAN.job_outputs("guidance_methods", ".json", heads),
        wildcard_constraints:
            head="|".join(re.escape(head) for head in heads) if heads and len(SAMPLE_GROUPS) > 1 else "[A-Za-z0-9_-]+",
        params:
            runs=job_runs("guidance_methods"),
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/guidance_methods/{{head}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/guidance_methods/{{head}}.tsv"
        threads: THREADS
        resources:
            gpu=1,
        priority: PRIORITY["sampling"]
        shell:
            f"{THREAD_ENV} {STYLEDIFF} batch sample {{params.runs}} > {{log}} 2>&1"


rule reference_set:
    """The model's own unguided samples (seeds from 1000) that realism is measured against."""
    input:
        lambda wildcards: PLAN.reference_set_inputs("guidance_methods", wildcards.name),
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
    priority: PRIORITY["sampling"]
    shell:
        f"{THREAD_ENV} {STYLEDIFF} sample {{params.run}} > {{log}} 2>&1"
