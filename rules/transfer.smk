# Neural style transfer (Gatys et al. 2016): contents x styles x losses x seeds.


rule transfer:
    input:
        content=run_image("transfer", "content"),
        style=run_image("transfer", "style"),
    output:
        png=f"{RESULTS}/transfer/{{run}}.png",
        sidecar=f"{RESULTS}/transfer/{{run}}.json",
    params:
        command=RUN,
        vgg=VGG,
        layers=lambda wildcards: ",".join(config["transfer"]["layers"]),
        loss=run_value("transfer", "loss"),
        seed=run_value("transfer", "seed"),
        section=settings("transfer"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/transfer/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/transfer/{{run}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.command} transfer --content {input.content} --style {input.style} "
        "--layers {params.layers} --loss {params.loss} --content-layer {params.section[content_layer]} "
        "--style-weight {params.section[style_weight]} "
        "--size {params.section[size]} --steps {params.section[steps]} "
        "--optimizer {params.section[optimizer]} "
        "--seed {params.seed} {params.vgg} --no-progress --out {output.png} > {log} 2>&1"
