from grokpath.logs import logged
from grokpath.stages import assign_test_groups

with logged(snakemake.log[0], pandas=False):
    assign_test_groups(
        model=snakemake.wildcards.model,
        task=snakemake.wildcards.task,
        checkpoint_ids=snakemake.params.checkpoint_ids,
        checkpoint_steps=snakemake.params.checkpoint_steps,
        item_tables=list(snakemake.input.evals),
        settings=snakemake.params.settings,
        out=snakemake.output[0],
    )
