from grokpath.logs import logged
from grokpath.stages import compute_pathways

with logged(snakemake.log[0], pandas=False):
    compute_pathways(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        domain=snakemake.wildcards.domain,
        routing=snakemake.input.routing,
        routers=snakemake.input.routers,
        tau=snakemake.params.tau,
        out=snakemake.output[0],
    )
