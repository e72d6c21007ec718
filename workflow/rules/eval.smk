# Only when some domain has benchmarks: the rule has one output per task.
if TASK_NAMES:

    rule run_lm_eval:
        input:
            unpack(eval_inputs),
        output:
            results=expand(
                "results/evals/{{model}}/{{step}}/{task}.json", task=TASK_NAMES
            ),
            evals=expand(
                "results/evals/{{model}}/{{step}}/{task}.samples.parquet",
                task=TASK_NAMES,
            ),
        log:
            "logs/run_lm_eval/{model}/{step}.log",
        benchmark:
            "benchmarks/run_lm_eval/{model}/{step}.tsv"
        conda:
            "../../envs/grokpath.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=120,
            gpu=gpus(config["evaluation"]["device"]),
        params:
            tasks=EVAL_TASKS,
            task_names=TASK_NAMES,
            cache="results/evals/{model}/{step}/lm_eval_cache",
            families=TUNED_FAMILIES,
            family_of=FAMILY_OF,
            settings=config["evaluation"],
            seed=config["seed"],
        script:
            "../scripts/run_lm_eval.py"

    rule all_evals:
        input:
            eval_outputs("results/evals/{model}/{step}/{task}.json"),


if TUNED_FAMILIES:

    rule prepare_instructions:
        output:
            "resources/instruct/{family}.jsonl",
        log:
            "logs/prepare_instructions/{family}.log",
        benchmark:
            "benchmarks/prepare_instructions/{family}.tsv"
        wildcard_constraints:
            family="|".join(
                f for f in TUNED_FAMILIES if isinstance(TUNE["datasets"][f], dict)
            )
            or "$^",
        localrule: True
        conda:
            "../../envs/grokpath.yaml"
        params:
            source=instruction_source,
        script:
            "../scripts/prepare_instructions.py"

    rule instruction_tune:
        input:
            unpack(checkpoint_files(this_step)),
            dataset=tune_dataset,
        output:
            model=disk_bounded("resources/tuned/{model}/{step}/{family}"),
        log:
            "logs/instruction_tune/{model}/{step}/{family}.log",
        benchmark:
            "benchmarks/instruction_tune/{model}/{step}/{family}.tsv"
        conda:
            "../../envs/grokpath.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=gpus(config["instruction_tune"]["device"]),
        params:
            settings=TUNE_SETTINGS,
            seed=config["seed"],
        script:
            "../scripts/instruction_tune.py"
