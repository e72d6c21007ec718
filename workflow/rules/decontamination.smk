# Optional (decontamination.enabled): Min-K%++ scores of every benchmark item under one checkpoint;
# the highest-scoring share is left out of the per-item tables every later stage reads.
if TASK_NAMES and DECON["enabled"]:

    rule decontaminate:
        input:
            unpack(checkpoint_files(decontamination_step)),
            evals=decontamination_items,
        output:
            "results/decontamination/{model}/{task}.parquet",
        log:
            "logs/decontaminate/{model}/{task}.log",
        benchmark:
            "benchmarks/decontaminate/{model}/{task}.tsv"
        conda:
            "../../envs/grokpath.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
            gpu=gpus(config["extraction"]["device"]),
        params:
            settings=DECON,
            device=config["extraction"]["device"],
            dtype=config["extraction"]["dtype"],
        script:
            "../scripts/decontaminate.py"

    rule drop_contaminated:
        input:
            evals="results/evals/{model}/{step}/{task}.samples.parquet",
            scores="results/decontamination/{model}/{task}.parquet",
        output:
            "results/evals_clean/{model}/{step}/{task}.samples.parquet",
        log:
            "logs/drop_contaminated/{model}/{step}/{task}.log",
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        script:
            "../scripts/drop_contaminated.py"
