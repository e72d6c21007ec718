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
        settings=PAIR_SETTINGS,
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


rule ablate_memorization:
    input:
        loss=loss_tables,
        pathways=domain_pathway_tables,
        groups="results/groups/{model}/{domain}.parquet",
    output:
        "results/ablation/memorization/{model}/{domain}.parquet",
    log:
        "logs/ablate_memorization/{model}/{domain}.log",
    benchmark:
        "benchmarks/ablate_memorization/{model}/{domain}.tsv"
    conda:
        "../../envs/grokpath.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        checkpoint_ids=model_checkpoint_ids,
        eps_factors=config["ablation"]["eps_factors"],
        deltas=config["ablation"]["deltas"],
        settings=PAIR_SETTINGS,
        seed=config["seed"],
    script:
        "../scripts/ablate_memorization.py"


rule plot_memorization_ablation:
    input:
        ablation=model_memorization_ablations,
    output:
        png=report(
            "results/figures/{model}/{figure}_ablation.png",
            caption="../report/fig10_11.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/{figure}_ablation.pdf",
    log:
        "logs/plot_memorization_ablation/{model}/{figure}.log",
    wildcard_constraints:
        figure=_alternatives(ABLATION_FIGURES),
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        steps=steps_of,
        parameter=ablation_parameter,
    script:
        "../scripts/plot_memorization_ablation.py"
