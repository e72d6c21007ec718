from grokpath.config import pretrain_domain_sizes
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
        # read from the config, not a param: a changed n_samples must not retrain the series
        sizes=pretrain_domain_sizes(snakemake.config),
    )
