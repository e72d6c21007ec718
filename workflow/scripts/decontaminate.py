from grokpath.logs import logged
from grokpath.stages import decontaminate

with logged(snakemake.log[0]):
    decontaminate(
        model=snakemake.wildcards.model,
        task=snakemake.wildcards.task,
        checkpoint=snakemake.input.checkpoint,
        items_table=snakemake.input.evals,
        settings=snakemake.params.settings,
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        out=snakemake.output[0],
    )
