from grokpath.logs import logged
from grokpath.stages import plot_accuracy_vs_monitors

with logged(snakemake.log[0], pandas=False):
    plot_accuracy_vs_monitors(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        monitors_table=snakemake.input.monitors,
        item_tables=list(snakemake.input.evals),
        moving_average=snakemake.params.moving_average,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
        level=snakemake.params.level,
    )
