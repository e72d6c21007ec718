rule ablate_tau:
    input:
        routing="results/routing/{model}/{step}/{domain}.parquet",
        groups="results/groups/{model}/{domain}.parquet",
    output:
        "results/ablation/tau/{model}/{step}/{domain}.parquet",
    log:
        "logs/ablate_tau/{model}/{step}/{domain}.log",
    benchmark:
        "benchmarks/ablate_tau/{model}/{step}/{domain}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        checkpoint_ids=model_checkpoint_ids,
        taus=config["ablation"]["taus"],
        settings=config["distance"],
        seed=config["seed"],
    script:
        "../scripts/ablate_tau.py"


rule plot_tau_ablation:
    input:
        ablation=model_ablations,
    output:
        png=report(
            "results/figures/{model}/fig9_tau_ablation.png",
            caption="../report/fig9.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/fig9_tau_ablation.pdf",
    log:
        "logs/plot_tau_ablation/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        steps=steps_of,
    script:
        "../scripts/plot_tau_ablation.py"
