rule pathway_distance:
    input:
        pathways="results/pathways/{model}/{step}/{domain}.parquet",
        groups="results/groups/{model}/{domain}.parquet",
    output:
        "results/distance/{model}/{step}/{domain}.parquet",
    log:
        "logs/pathway_distance/{model}/{step}/{domain}.log",
    benchmark:
        "benchmarks/pathway_distance/{model}/{step}/{domain}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        checkpoint_ids=model_checkpoint_ids,
        settings=config["distance"],
        seed=config["seed"],
    script:
        "../scripts/pathway_distance.py"


rule all_distance:
    input:
        per_checkpoint("results/distance/{model}/{step}/{domain}.parquet"),
