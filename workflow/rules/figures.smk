rule plot_trajectory:
    input:
        trajectory="results/pretrain/{model}/trajectory.parquet",
        summary="results/pretrain/{model}/grokking.json",
    output:
        png=report(
            "results/figures/{model}/pretrain_trajectory.png",
            caption="../report/trajectory.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/pretrain_trajectory.pdf",
    log:
        "logs/plot_trajectory/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    script:
        "../scripts/plot_trajectory.py"


rule plot_live_monitors:
    input:
        live="results/pretrain/{model}/live_monitors.parquet",
        trajectory="results/pretrain/{model}/trajectory.parquet",
    output:
        png=report(
            "results/figures/{model}/live_monitors.png",
            caption="../report/live_monitors.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/live_monitors.pdf",
    log:
        "logs/plot_live_monitors/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    script:
        "../scripts/plot_live_monitors.py"


rule plot_distance_groups:
    input:
        monitors=rules.aggregate_monitors.output[0],
    output:
        png=report(
            "results/figures/{model}/fig4_distance_groups.png",
            caption="../report/fig4.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/fig4_distance_groups.pdf",
    log:
        "logs/plot_distance_groups/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        steps=steps_of,
        monitor="pathway_distance",
        level=config["distance"]["level"],
    script:
        "../scripts/plot_monitor_by_group.py"


rule plot_consistency_groups:
    input:
        monitors=rules.aggregate_monitors.output[0],
    output:
        png=report(
            "results/figures/{model}/fig6_consistency_groups.png",
            caption="../report/fig6.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/fig6_consistency_groups.pdf",
    log:
        "logs/plot_consistency_groups/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        steps=steps_of,
        monitor="pathway_consistency",
        level=config["distance"]["level"],
    script:
        "../scripts/plot_monitor_by_group.py"


rule plot_layerwise_distance:
    input:
        distance=model_distances,
    output:
        png=report(
            "results/figures/{model}/fig5_layerwise_distance.png",
            caption="../report/fig5.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/fig5_layerwise_distance.pdf",
    log:
        "logs/plot_layerwise_distance/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        steps=steps_of,
    script:
        "../scripts/plot_layerwise_distance.py"


if TASK_NAMES:

    rule plot_memorized_counts:
        input:
            groups=model_groups,
            evals=model_items,
        output:
            png=report(
                "results/figures/{model}/fig1_memorized_counts.png",
                caption="../report/fig1.rst",
                category="Figures",
            ),
            pdf="results/figures/{model}/fig1_memorized_counts.pdf",
        log:
            "logs/plot_memorized_counts/{model}.log",
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        params:
            steps=steps_of,
        script:
            "../scripts/plot_memorized_counts.py"

    rule plot_local_grokking:
        input:
            matches=model_matches,
            test_groups=model_test_groups,
            evals=model_items,
            monitors=rules.aggregate_monitors.output[0],
        output:
            png=report(
                "results/figures/{model}/fig2_local_grokking.png",
                caption="../report/fig2.rst",
                category="Figures",
            ),
            pdf="results/figures/{model}/fig2_local_grokking.pdf",
        log:
            "logs/plot_local_grokking/{model}.log",
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        params:
            steps=steps_of,
        script:
            "../scripts/plot_local_grokking.py"

    rule plot_accuracy_vs_monitors:
        input:
            monitors=rules.aggregate_monitors.output[0],
            evals=model_items,
        output:
            png=report(
                "results/figures/{model}/fig7_accuracy_vs_monitors.png",
                caption="../report/fig7.rst",
                category="Figures",
            ),
            pdf="results/figures/{model}/fig7_accuracy_vs_monitors.pdf",
        log:
            "logs/plot_accuracy_vs_monitors/{model}.log",
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        params:
            steps=steps_of,
            moving_average=config["correlation"]["moving_average"],
            level=config["distance"]["level"],
        script:
            "../scripts/plot_accuracy_vs_monitors.py"

    rule plot_correlation_table:
        input:
            correlations=rules.correlate.output.parquet,
        output:
            png=report(
                "results/figures/{model}/table1_correlations.png",
                caption="../report/table1.rst",
                category="Figures",
            ),
            pdf="results/figures/{model}/table1_correlations.pdf",
        log:
            "logs/plot_correlation_table/{model}.log",
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        script:
            "../scripts/plot_correlation_table.py"


rule all_figures:
    input:
        figure_outputs(),


rule plot_cross_domain:
    input:
        cross=model_cross_domain,
        monitors=rules.aggregate_monitors.output[0],
    output:
        png=report(
            "results/figures/{model}/fig12_cross_domain.png",
            caption="../report/fig12.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/fig12_cross_domain.pdf",
    log:
        "logs/plot_cross_domain/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    params:
        steps=steps_of,
    script:
        "../scripts/plot_cross_domain.py"


rule plot_distance_vs_entropy:
    input:
        rules.entropy_distance.output[0],
    output:
        png=report(
            "results/figures/{model}/fig13_distance_vs_entropy.png",
            caption="../report/fig13.rst",
            category="Figures",
        ),
        pdf="results/figures/{model}/fig13_distance_vs_entropy.pdf",
    log:
        "logs/plot_distance_vs_entropy/{model}.log",
    localrule: True
    conda:
        "../../envs/grokpath.yaml"
    script:
        "../scripts/plot_distance_vs_entropy.py"
