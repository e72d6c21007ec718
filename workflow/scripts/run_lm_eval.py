from grokpath.logs import logged
from grokpath.stages import run_lm_eval


def by_task(paths):
    return dict(zip(snakemake.params.task_names, paths, strict=True))


with logged(snakemake.log[0]):
    run_lm_eval(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        checkpoint=snakemake.input.checkpoint,
        tasks=snakemake.params.tasks,
        test_sets={d: snakemake.input[d] for d in {t["domain"] for t in snakemake.params.tasks}},
        json_out=by_task(snakemake.output.results),
        items_out=by_task(snakemake.output.evals),
        cache=snakemake.params.cache,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        tuned={f: snakemake.input[f"tuned_{f}"] for f in snakemake.params.families} or None,
        family_of=snakemake.params.family_of,
    )
