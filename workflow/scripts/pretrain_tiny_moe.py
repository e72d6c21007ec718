from grokpath.logs import logged
from grokpath.stages import pretrain_tiny_moe

with logged(snakemake.log[0]):
    pretrain_tiny_moe(
        model=snakemake.wildcards.model,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        checkpoints_dir=snakemake.output.checkpoints,
        data_dir=snakemake.output.data,
        trajectory=snakemake.output.trajectory,
        summary=snakemake.output.summary,
        live=snakemake.output.live,
    )
