# Metrics: one `stylediff metrics` job per experiment scores all of its runs (one *.metrics.json
# per run). Batching matters on CPU: torchmetrics + VGG-19 + two LPIPS networks take ~10 s to
# load, scoring one small image well under a second. CPU only: no gpu resource.

for experiment in EXPERIMENTS:

    rule:
        name:
            f"metrics_{experiment}"
        input:
            outputs=outputs(experiment),
            sidecars=outputs(experiment, ".json"),
            references=metrics_inputs(experiment),
        output:
            outputs(experiment, ".metrics.json"),
        params:
            command=metrics_command(experiment),
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/metrics/{experiment}.log",
        benchmark:
            f"{RESULTS}/benchmarks/metrics/{experiment}.tsv"
        threads: THREADS
        shell:
            "{params.command} > {log} 2>&1"
