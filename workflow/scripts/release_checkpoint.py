from grokpath.logs import logged
from grokpath.stages import release_checkpoint

with logged(snakemake.log[0]):
    release_checkpoint(checkpoint=snakemake.input.checkpoint, out=snakemake.output[0])
