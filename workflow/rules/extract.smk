rule extract_routing:
    input:
        unpack(checkpoint_files(this_step)),
        samples=expand("results/samples/{{model}}/{domain}.parquet", domain=DOMAINS),
        validation=expand(
            "results/samples/{{model}}/{domain}.validation.parquet", domain=DOMAINS
        ),
    output:
        routing=expand(
            "results/routing/{{model}}/{{step}}/{domain}.parquet", domain=DOMAINS
        ),
        loss=expand("results/loss/{{model}}/{{step}}/{domain}.parquet", domain=DOMAINS),
        validation_loss=expand(
            "results/validation_loss/{{model}}/{{step}}/{domain}.parquet",
            domain=DOMAINS,
        ),
        routers="results/routers/{model}/{step}.safetensors",
    log:
        "logs/extract_routing/{model}/{step}.log",
    benchmark:
        "benchmarks/extract_routing/{model}/{step}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    threads: config["extraction"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=gpus(config["extraction"]["device"]),
    params:
        domains=DOMAINS,
        settings=config["extraction"],
        seed=config["seed"],
    script:
        "../scripts/extract_routing.py"


rule all_routing:
    input:
        per_checkpoint("results/routing/{model}/{step}/{domain}.parquet"),
