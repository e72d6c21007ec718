# Only when some domain has benchmarks.
if TASK_NAMES:

    rule assign_test_groups:
        input:
            evals=task_item_tables,
        output:
            "results/test_groups/{model}/{task}.parquet",
        log:
            "logs/assign_test_groups/{model}/{task}.log",
        benchmark:
            "benchmarks/assign_test_groups/{model}/{task}.tsv"
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            checkpoint_ids=model_checkpoint_ids,
            checkpoint_steps=model_checkpoint_steps,
            settings=config["test_groups"],
        script:
            "../scripts/assign_test_groups.py"

    rule match_groups:
        input:
            unpack(match_inputs),
        output:
            "results/matching/{model}/{task}.parquet",
        log:
            "logs/match_groups/{model}/{task}.log",
        benchmark:
            "benchmarks/match_groups/{model}/{task}.tsv"
        conda:
            "../../envs/grokpath.yaml"
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            checkpoint_ids=model_checkpoint_ids,
            checkpoint_steps=model_checkpoint_steps,
        script:
            "../scripts/match_groups.py"

    rule correlate:
        input:
            monitors=rules.aggregate_monitors.output[0],
            evals=eval_outputs(ITEMS),
        output:
            parquet="results/tables/correlations.parquet",
            csv=report(
                "results/tables/correlations.csv",
                caption="../report/correlations.rst",
                category="Correlations",
            ),
        log:
            "logs/correlate/correlations.log",
        benchmark:
            "benchmarks/correlate/correlations.tsv"
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            settings=config["correlation"],
            seed=config["seed"],
        script:
            "../scripts/correlate.py"
