from grokpath.logs import logged
from grokpath.stages import download_checkpoint

with logged(snakemake.log[0]):
    download_checkpoint(
        source=snakemake.params.source,
        origin=snakemake.params.origin,
        revision=snakemake.params.revision,
        dest=snakemake.output.checkpoint,
        keep_cache=snakemake.params.keep_cache,
    )
