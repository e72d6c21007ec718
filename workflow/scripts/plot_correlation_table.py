from grokpath.logs import logged
from grokpath.stages import plot_correlation_table

with logged(snakemake.log[0], pandas=False):
    plot_correlation_table(
        model=snakemake.wildcards.model,
        correlations=snakemake.input.correlations,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
