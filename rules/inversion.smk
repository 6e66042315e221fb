# Feature inversion: reconstruct each image from one VGG-19 layer (images x layers x poolings x seeds).
# One job per image, pooling and seed inverts every layer (`stylediff batch`).


rule invert:
    input:
        batch_inputs("inversion"),
    output:
        png=batch_outputs("inversion", ".png"),
        sidecar=batch_outputs("inversion", ".json"),
    params:
        command=RUN,
        runs=batch_commands("inversion", invert_command),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/inversion/{{head}}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inversion/{{head}}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.command} batch {params.runs} > {log} 2>&1"
