from grokpath.logs import logged
from grokpath.stages import prepare_instructions

with logged(snakemake.log[0]):
    prepare_instructions(
        family=snakemake.wildcards.family,
        source=snakemake.params.source,
        out=snakemake.output[0],
    )
