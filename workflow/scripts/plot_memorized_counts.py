from grokpath.logs import logged
from grokpath.stages import plot_memorized_counts

with logged(snakemake.log[0], pandas=False):
    plot_memorized_counts(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        group_tables=list(snakemake.input.groups),
        item_tables=list(snakemake.input.evals),
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
