# Neural style transfer (Gatys et al. 2016): contents x styles x losses x seeds.
# One job per content, style and seed runs every loss (`stylediff batch`).


rule transfer:
    input:
        batch_inputs("transfer"),
    output:
        png=batch_outputs("transfer", ".png"),
        sidecar=batch_outputs("transfer", ".json"),
    params:
        command=RUN,
        runs=batch_commands("transfer", transfer_command),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/transfer/{{head}}__{{tail}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/transfer/{{head}}__{{tail}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.command} batch {params.runs} > {log} 2>&1"
