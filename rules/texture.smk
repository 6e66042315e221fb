# Texture synthesis (Gatys et al. 2015): styles x nested layer sets x losses x seeds.
# One job per style, loss and seed synthesises every layer set (`stylediff batch`).


rule texture:
    input:
        batch_inputs("texture"),
    output:
        png=batch_outputs("texture", ".png"),
        sidecar=batch_outputs("texture", ".json"),
    params:
        command=RUN,
        runs=batch_commands("texture", texture_command),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/texture/{{head}}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/texture/{{head}}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.command} batch {params.runs} > {log} 2>&1"
