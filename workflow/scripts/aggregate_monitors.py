from grokpath.logs import logged
from grokpath.stages import aggregate_monitors

with logged(snakemake.log[0], pandas=False):
    aggregate_monitors(
        model_steps=snakemake.params.model_steps,
        distance_tables=list(snakemake.input.distance),
        pathway_tables=list(snakemake.input.pathways),
        loss_tables=list(snakemake.input.loss),
        validation_tables=list(snakemake.input.validation_loss),
        group_tables=list(snakemake.input.groups),
        out=snakemake.output[0],
    )
