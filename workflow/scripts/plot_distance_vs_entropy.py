from grokpath.logs import logged
from grokpath.stages import plot_distance_vs_entropy

with logged(snakemake.log[0], pandas=False):
    plot_distance_vs_entropy(
        table=snakemake.input[0],
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
