from grokpath.logs import logged
from grokpath.stages import ablate_memorization

with logged(snakemake.log[0], pandas=False):
    ablate_memorization(
        model=snakemake.wildcards.model,
        domain=snakemake.wildcards.domain,
        checkpoint_ids=snakemake.params.checkpoint_ids,
        loss_tables=list(snakemake.input.loss),
        pathway_tables=list(snakemake.input.pathways),
        groups_table=snakemake.input.groups,
        eps_factors=snakemake.params.eps_factors,
        deltas=snakemake.params.deltas,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
