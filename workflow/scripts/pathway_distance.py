from grokpath.logs import logged
from grokpath.stages import pathway_distance

with logged(snakemake.log[0], pandas=False):
    pathway_distance(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        domain=snakemake.wildcards.domain,
        pathways_table=snakemake.input.pathways,
        groups_table=snakemake.input.groups,
        checkpoint_ids=snakemake.params.checkpoint_ids,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
