from grokpath.logs import logged
from grokpath.stages import drop_contaminated

with logged(snakemake.log[0]):
    drop_contaminated(
        items_table=snakemake.input.evals,
        scores_table=snakemake.input.scores,
        out=snakemake.output[0],
    )
