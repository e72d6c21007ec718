from grokpath.logs import logged
from grokpath.stages import prefetch_benchmarks

with logged(snakemake.log[0]):
    prefetch_benchmarks(tasks=snakemake.params.tasks, out=snakemake.output[0])
