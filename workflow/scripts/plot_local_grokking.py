from grokpath.logs import logged
from grokpath.stages import plot_local_grokking

with logged(snakemake.log[0], pandas=False):
    plot_local_grokking(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        match_tables=list(snakemake.input.matches),
        test_group_tables=list(snakemake.input.test_groups),
        item_tables=list(snakemake.input.evals),
        monitors_table=snakemake.input.monitors,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
