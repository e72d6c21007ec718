rule pretrain_tiny_moe:
    output:
        checkpoints=directory("resources/pretrain/{model}/checkpoints"),
        data=directory("resources/pretrain/{model}/data"),
        trajectory="results/pretrain/{model}/trajectory.parquet",
        live="results/pretrain/{model}/live_monitors.parquet",
        summary=report(
            "results/pretrain/{model}/grokking.json",
            caption="../report/grokking.rst",
            category="Pretraining",
        ),
    log:
        "logs/pretrain_tiny_moe/{model}.log",
    benchmark:
        "benchmarks/pretrain_tiny_moe/{model}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    threads: pretrain_threads
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=pretrain_settings,
        seed=config["seed"],
    script:
        "../scripts/pretrain_tiny_moe.py"


rule all_pretrain:
    input:
        pretrain_summaries(),
