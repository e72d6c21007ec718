from grokpath.logs import logged
from grokpath.stages import plot_live_monitors

with logged(snakemake.log[0], pandas=False):
    plot_live_monitors(
        live=snakemake.input.live,
        trajectory=snakemake.input.trajectory,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
