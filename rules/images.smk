# Input images: skimage:NAME entries of the config are written as PNGs (no download needed).


rule image:
    """Write a scikit-image bundled image (skimage:NAME in the config) as a PNG."""
    output:
        f"{RESULTS}/images/{{name}}.png",
    params:
        command=DATASETS,
    conda:
        "../envs/stylediff.yaml"
    log:
        f"{RESULTS}/logs/images/{{name}}.log",
    priority: PRIORITY["image"]
    shell:
        "{params.command} skimage:{wildcards.name} {output} > {log} 2>&1"
