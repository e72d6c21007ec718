from grokpath.logs import logged
from grokpath.stages import match_groups

with logged(snakemake.log[0], pandas=False):
    match_groups(
        model=snakemake.wildcards.model,
        task=snakemake.wildcards.task,
        train_groups_table=snakemake.input.train_groups,
        samples_table=snakemake.input.samples,
        test_groups_table=snakemake.input.test_groups,
        items_table=snakemake.input.evals,
        checkpoint_ids=snakemake.params.checkpoint_ids,
        checkpoint_steps=snakemake.params.checkpoint_steps,
        out=snakemake.output[0],
    )
