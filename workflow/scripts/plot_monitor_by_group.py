from grokpath.logs import logged
from grokpath.stages import plot_monitor_by_group

with logged(snakemake.log[0], pandas=False):
    plot_monitor_by_group(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        monitors_table=snakemake.input.monitors,
        monitor=snakemake.params.monitor,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
        level=snakemake.params.level,
    )
