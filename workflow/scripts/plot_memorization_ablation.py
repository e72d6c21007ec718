from grokpath.logs import logged
from grokpath.stages import plot_memorization_ablation

with logged(snakemake.log[0], pandas=False):
    plot_memorization_ablation(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        ablation_tables=list(snakemake.input.ablation),
        parameter=snakemake.params.parameter,
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
