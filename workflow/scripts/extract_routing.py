from grokpath.logs import logged
from grokpath.stages import extract_routing


def by_domain(paths):
    return dict(zip(snakemake.params.domains, paths, strict=True))


with logged(snakemake.log[0], pandas=False):
    extract_routing(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        checkpoint=snakemake.input.checkpoint,
        sample_tables=by_domain(snakemake.input.samples),
        validation_tables=by_domain(snakemake.input.validation),
        routing_out=by_domain(snakemake.output.routing),
        loss_out=by_domain(snakemake.output.loss),
        validation_loss_out=by_domain(snakemake.output.validation_loss),
        routers_out=snakemake.output.routers,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
    )
