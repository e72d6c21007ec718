rule download_checkpoint:
    input:
        checkpoint_input,
    output:
        checkpoint=directory("resources/checkpoints/{model}/{step}"),
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


rule release_checkpoint:
    input:
        checkpoint="resources/checkpoints/{model}/{step}",
        consumers=checkpoint_consumers,
    output:
        "resources/checkpoints/{model}/{step}.released",
    log:
        "logs/release_checkpoint/{model}/{step}.log",
    # before any new download: frees the disk the next checkpoint waits for
    priority: 100
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    script:
        "../scripts/release_checkpoint.py"


rule all_checkpoints:
    input:
        per_checkpoint("resources/checkpoints/{model}/{step}"),
