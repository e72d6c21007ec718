from grokpath.logs import logged
from grokpath.stages import instruction_tune

with logged(snakemake.log[0]):
    instruction_tune(
        model=snakemake.wildcards.model,
        step=snakemake.wildcards.step,
        family=snakemake.wildcards.family,
        checkpoint=snakemake.input.checkpoint,
        dataset=snakemake.input.dataset,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        dest=snakemake.output.model,
    )
