from grokpath.logs import logged
from grokpath.stages import entropy_distance

with logged(snakemake.log[0], pandas=False):
    entropy_distance(
        model=snakemake.wildcards.model,
        step=snakemake.params.step,
        pathway_tables=list(snakemake.input),
        level=snakemake.params.level,
        partners=snakemake.params.partners,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
