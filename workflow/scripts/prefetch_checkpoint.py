from grokpath.logs import logged
from grokpath.stages import prefetch_checkpoint

with logged(snakemake.log[0]):
    prefetch_checkpoint(
        repo=snakemake.params.repo,
        revision=snakemake.params.revision,
        out=snakemake.output[0],
    )
