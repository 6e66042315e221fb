# Feature inversion: reconstruct each image from one VGG-19 layer (images x layers x poolings x seeds).


rule invert:
    input:
        image=run_image("inversion", "image"),
    output:
        png=f"{RESULTS}/inversion/{{run}}.png",
        sidecar=f"{RESULTS}/inversion/{{run}}.json",
    params:
        command=RUN,
        vgg=f"--device {config['device']} --weights {config['weights']}",
        pooling=run_value("inversion", "pooling"),
        layer=run_value("inversion", "layer"),
        seed=run_value("inversion", "seed"),
        section=settings("inversion"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/inversion/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inversion/{{run}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.command} invert --image {input.image} --layer {params.layer} "
        "--size {params.section[size]} --steps {params.section[steps]} "
        "--optimizer {params.section[optimizer]} --tv-weight {params.section[tv_weight]} "
        "--seed {params.seed} {params.vgg} --pooling {params.pooling} --no-progress --out {output.png} > {log} 2>&1"
