from grokpath.logs import logged
from grokpath.stages import prepare_samples

with logged(snakemake.log[0]):
    prepare_samples(
        model=snakemake.wildcards.model,
        domain=snakemake.wildcards.domain,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        max_tokens=snakemake.params.max_tokens,
        too_long=snakemake.params.too_long,
        source_dir=snakemake.params.source_dir,
        checkpoint=snakemake.input.checkpoint,
        out_samples=snakemake.output.samples,
        out_validation=snakemake.output.validation,
        out_test=snakemake.output.test,
    )
