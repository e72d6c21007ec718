rule prepare_samples:
    input:
        unpack(checkpoint_files(first_step)),
        source=domain_source_input,
    output:
        samples="results/samples/{model}/{domain}.parquet",
        validation="results/samples/{model}/{domain}.validation.parquet",
        test="results/samples/{model}/{domain}.test.jsonl",
    log:
        "logs/prepare_samples/{model}/{domain}.log",
    benchmark:
        "benchmarks/prepare_samples/{model}/{domain}.tsv"
    # Hub datasets are streamed: run where the network is (and by `snakemake prefetch`).
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        settings=domain_settings,
        source_dir=domain_source_dir,
        seed=config["seed"],
        max_tokens=config["extraction"]["max_tokens"],
        too_long=config["extraction"]["too_long"],
    script:
        "../scripts/prepare_samples.py"


rule all_samples:
    input:
        expand("results/samples/{model}/{domain}.parquet", model=MODELS, domain=DOMAINS),
