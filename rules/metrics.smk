# Metrics: one `stylediff metrics` job per experiment scores all of its runs (one *.metrics.json
# per run). Batching matters on CPU: torchmetrics + VGG-19 + two LPIPS networks take ~10 s to
# load, scoring one small image well under a second. CPU only: no gpu resource.

for experiment in EXPERIMENTS:

    rule:
        name:
            f"metrics_{experiment}"
        input:
            outputs=PLAN.outputs(experiment),
            sidecars=PLAN.outputs(experiment, ".json"),
            references=metrics_references(experiment),
            reference_sets=sorted(set(PLAN.realism_references(experiment))),
        output:
            PLAN.outputs(experiment, ".metrics.json"),
        params:
            args=metrics_args(experiment),
            kind=experiments.lookup(experiment).kind,
            options=f"--device cpu --weights {config['weights']} --pooling {config['pooling']} "
            f"--lpips {str(config.get('lpips', 'auto')).lower()}",
        conda:
            "../envs/stylediff.yaml"
        log:
            f"{RESULTS}/logs/metrics/{experiment}.log",
        benchmark:
            f"{RESULTS}/benchmarks/metrics/{experiment}.tsv"
        threads: THREADS
        priority: PRIORITY["metrics"]
        shell:
            f"{LPIPS_ENV} {THREAD_ENV} {STYLEDIFF} metrics --kind {{params.kind}} {{params.args}} "
            "{params.options} > {log} 2>&1"
