# Style-guided diffusion sampling: models x styles x losses x layer sets x windows x modes x normalisations
# x scales x seeds. One job per combination samples every guided scale (`stylediff batch`). Scale 0 is
# the unguided sample, a job of its own: the paired baseline (same model, seed, mode) of every guided
# one, shared by all normalisations. One image per run (--num-images 1); sampling is the GPU workload.


if BATCHES["guidance"]:  # some scale > 0

    rule sample:
        input:
            batch_inputs("guidance"),
        output:
            png=batch_outputs("guidance", ".png"),
            sidecar=batch_outputs("guidance", ".json"),
        params:
            command=RUN,
            runs=batch_commands("guidance", sample_command),
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
            "{params.command} batch {params.runs} > {log} 2>&1"


rule sample_unguided:
    input:
        lambda wildcards: run_inputs("guidance", [unguided_run(wildcards)]),
    output:
        png=f"{RESULTS}/guidance/{{head}}__{encode_axis('scale', 0)}__{{tail}}.png",
        sidecar=f"{RESULTS}/guidance/{{head}}__{encode_axis('scale', 0)}__{{tail}}.json",
    params:
        command=RUN,
        run=lambda wildcards: sample_command(unguided_run(wildcards), RUNS["guidance"][unguided_run(wildcards)]),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/guidance/{{head}}__{encode_axis('scale', 0)}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/guidance/{{head}}__{encode_axis('scale', 0)}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=1,
    shell:
        "{params.command} {params.run} > {log} 2>&1"
