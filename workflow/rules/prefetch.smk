# Everything the config needs from the network, for clusters whose compute nodes have none: run
# `snakemake prefetch` on a login node, then the rest with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1.
# Hub checkpoints go to the HF cache (download_checkpoint then links them from there); the hub
# datasets of the samples and instruction data are frozen by their own (local) rules; the
# benchmarks' datasets go to the datasets cache.


rule prefetch_checkpoint:
    output:
        "resources/prefetch/{model}/{step}.json",
    log:
        "logs/prefetch_checkpoint/{model}/{step}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        repo=model_repo,
        revision=checkpoint_revision,
    script:
        "../scripts/prefetch_checkpoint.py"


rule prefetch_benchmarks:
    output:
        "resources/prefetch/benchmarks.json",
    log:
        "logs/prefetch_benchmarks.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        tasks=sorted({t["task"] for t in EVAL_TASKS}),
    script:
        "../scripts/prefetch_benchmarks.py"


rule prefetch:
    input:
        prefetch_targets(),
