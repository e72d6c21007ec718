from grokpath.logs import logged
from grokpath.stages import assign_memorization

with logged(snakemake.log[0], pandas=False):
    assign_memorization(
        model=snakemake.wildcards.model,
        domain=snakemake.wildcards.domain,
        checkpoint_ids=snakemake.params.checkpoint_ids,
        checkpoint_steps=snakemake.params.checkpoint_steps,
        loss_tables=list(snakemake.input.loss),
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
