from grokpath.logs import logged
from grokpath.stages import plot_tau_ablation

with logged(snakemake.log[0], pandas=False):
    plot_tau_ablation(
        model=snakemake.wildcards.model,
        steps=snakemake.params.steps,
        ablation_tables=list(snakemake.input.ablation),
        png=snakemake.output.png,
        pdf=snakemake.output.pdf,
    )
