rule aggregate_monitors:
    input:
        distance=per_checkpoint("results/distance/{model}/{step}/{domain}.parquet"),
        pathways=per_checkpoint("results/pathways/{model}/{step}/{domain}.parquet"),
        loss=per_checkpoint("results/loss/{model}/{step}/{domain}.parquet"),
        validation_loss=per_checkpoint(
            "results/validation_loss/{model}/{step}/{domain}.parquet"
        ),
        groups=expand(
            "results/groups/{model}/{domain}.parquet", model=MODELS, domain=DOMAINS
        ),
    output:
        report(
            "results/tables/monitors.parquet",
            caption="../report/monitors.rst",
            category="Monitors",
        ),
    log:
        "logs/aggregate_monitors/monitors.log",
    benchmark:
        "benchmarks/aggregate_monitors/monitors.tsv"
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model_steps=model_steps(),
    script:
        "../scripts/aggregate_monitors.py"
