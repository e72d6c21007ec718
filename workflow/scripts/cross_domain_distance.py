from grokpath.logs import logged
from grokpath.stages import cross_domain_distance

with logged(snakemake.log[0], pandas=False):
    cross_domain_distance(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        pathway_tables=dict(snakemake.input.items()),
        pairs=snakemake.params.pairs,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
