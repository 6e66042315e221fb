# Texture synthesis (Gatys et al. 2015): styles x nested layer sets x losses x seeds.


rule texture:
    input:
        style=run_image("texture", "style"),
    output:
        png=f"{RESULTS}/texture/{{run}}.png",
        sidecar=f"{RESULTS}/texture/{{run}}.json",
    params:
        command=RUN,
        vgg=VGG,
        layers=run_layers("texture"),
        loss=run_value("texture", "loss"),
        seed=run_value("texture", "seed"),
        section=settings("texture"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/texture/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/texture/{{run}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.command} texture --style {input.style} --layers {params.layers} --loss {params.loss} "
        "--size {params.section[size]} --steps {params.section[steps]} "
        "--optimizer {params.section[optimizer]} "
        "--seed {params.seed} {params.vgg} --no-progress --out {output.png} > {log} 2>&1"
