rule download_checkpoint:
    input:
        checkpoint_input,
    output:
        checkpoint=disk_bounded("resources/checkpoints/{model}/{step}"),
    log:
        "logs/download_checkpoint/{model}/{step}.log",
    benchmark:
        "benchmarks/download_checkpoint/{model}/{step}.tsv"
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    resources:
        mem_mb=500,
        runtime=60,
    params:
        source=checkpoint_source,
        origin=checkpoint_origin,
        revision=checkpoint_revision,
        keep_cache=KEEP_CHECKPOINTS,
    script:
        "../scripts/download_checkpoint.py"


rule all_checkpoints:
    input:
        per_checkpoint("resources/checkpoints/{model}/{step}"),
