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


rule cross_domain_distance:
    input:
        unpack(domain_pathways),
    output:
        "results/controls/cross_domain/{model}/{step}.parquet",
    log:
        "logs/cross_domain_distance/{model}/{step}.log",
    benchmark:
        "benchmarks/cross_domain_distance/{model}/{step}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        pairs=CROSS_DOMAINS,
        settings=PAIR_SETTINGS,
        seed=config["seed"],
    script:
        "../scripts/cross_domain_distance.py"


rule entropy_distance:
    input:
        unpack(last_checkpoint_pathways),
    output:
        "results/controls/entropy_distance/{model}.parquet",
    log:
        "logs/entropy_distance/{model}.log",
    benchmark:
        "benchmarks/entropy_distance/{model}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        step=last_checkpoint,
        level=config["distance"]["level"],
        partners=config["controls"]["entropy_partners"],
        seed=config["seed"],
    script:
        "../scripts/entropy_distance.py"
