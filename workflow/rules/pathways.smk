rule compute_pathways:
    input:
        routing="results/routing/{model}/{step}/{domain}.parquet",
        routers="results/routers/{model}/{step}.safetensors",
    output:
        "results/pathways/{model}/{step}/{domain}.parquet",
    log:
        "logs/compute_pathways/{model}/{step}/{domain}.log",
    benchmark:
        "benchmarks/compute_pathways/{model}/{step}/{domain}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        tau=config["tau"],
    script:
        "../scripts/compute_pathways.py"


rule all_pathways:
    input:
        per_checkpoint("results/pathways/{model}/{step}/{domain}.parquet"),
