from grokpath.logs import logged
from grokpath.stages import correlate

with logged(snakemake.log[0], pandas=False):
    correlate(
        monitors_table=snakemake.input.monitors,
        item_tables=list(snakemake.input.evals),
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        out_parquet=snakemake.output.parquet,
        out_csv=snakemake.output.csv,
    )
