# Style-guided diffusion sampling: models x styles x losses x layer sets x windows x modes x normalisations
# x scales x seeds. Scale 0 is the unguided sample: the paired baseline (same model, seed, mode) of every
# guided one, shared by all normalisations.
# One image per job (--num-images 1). Sampling is the GPU workload: gpu=1 in every preset.


rule sample:
    input:
        style=run_image("guidance", "style"),
        model=run_model,
    output:
        png=f"{RESULTS}/guidance/{{run}}.png",
        sidecar=f"{RESULTS}/guidance/{{run}}.json",
    params:
        command=RUN,
        vgg=VGG,
        model=run_value("guidance", "model"),
        loss=run_value("guidance", "loss"),
        layers=run_layers("guidance"),
        mode=run_value("guidance", "mode"),
        normalization=run_value("guidance", "normalization"),
        scale=run_value("guidance", "scale"),
        seed=run_value("guidance", "seed"),
        window=lambda wildcards: ",".join(str(float(w)) for w in RUNS["guidance"][wildcards.run]["window"]),
        section=settings("guidance"),
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/guidance/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/guidance/{{run}}.tsv"
    threads: THREADS
    resources:
        gpu=1,
    shell:
        "{params.command} sample --model {params.model} --style {input.style} --scale {params.scale} "
        "--mode {params.mode} --normalize {params.normalization} --loss {params.loss} --layers {params.layers} "
        "--scheduler {params.section[scheduler]} --steps {params.section[steps]} --eta {params.section[eta]} "
        "--window {params.window} --recurrence {params.section[recurrence]} "
        "--seed {params.seed} --num-images 1 {params.vgg} --no-progress --out {output.png} > {log} 2>&1"
