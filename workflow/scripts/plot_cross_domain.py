from grokpath.logs import logged
from grokpath.stages import plot_cross_domain

with logged(snakemake.log[0], pandas=False):
    plot_cross_domain(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        cross_tables=list(snakemake.input.cross),
        monitors_table=snakemake.input.monitors,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
