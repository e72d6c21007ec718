from grokpath.logs import logged
from grokpath.stages import plot_layerwise_distance

with logged(snakemake.log[0], pandas=False):
    plot_layerwise_distance(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        distance_tables=list(snakemake.input.distance),
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
