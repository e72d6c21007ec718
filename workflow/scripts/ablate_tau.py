from grokpath.logs import logged
from grokpath.stages import ablate_tau

with logged(snakemake.log[0], pandas=False):
    ablate_tau(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        domain=snakemake.wildcards.domain,
        routing=snakemake.input.routing,
        groups_table=snakemake.input.groups,
        checkpoint_ids=snakemake.params.checkpoint_ids,
        taus=snakemake.params.taus,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
