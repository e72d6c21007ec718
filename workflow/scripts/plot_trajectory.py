from grokpath.logs import logged
from grokpath.stages import plot_trajectory

with logged(snakemake.log[0], pandas=False):
    plot_trajectory(
        trajectory=snakemake.input.trajectory,
        summary=snakemake.input.summary,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
