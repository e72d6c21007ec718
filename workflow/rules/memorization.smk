rule assign_memorization:
    input:
        loss=loss_tables,
    output:
        "results/groups/{model}/{domain}.parquet",
    log:
        "logs/assign_memorization/{model}/{domain}.log",
    benchmark:
        "benchmarks/assign_memorization/{model}/{domain}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        checkpoint_ids=model_checkpoint_ids,
        checkpoint_steps=model_checkpoint_steps,
        settings=config["memorization"],
        seed=config["seed"],
    script:
        "../scripts/assign_memorization.py"


rule all_groups:
    input:
        expand("results/groups/{model}/{domain}.parquet", model=MODELS, domain=DOMAINS),
