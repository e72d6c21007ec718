# grokpath: monitor memorization-to-generalization in MoE pretraining checkpoints (arXiv 2506.21551).
#
# What each stage writes ({model}: config alias, {step}: checkpoint id, {domain}: domain name):
#   resources/pretrain/{model}/              the embedded tiny MoE series (source "pretrain")
#   resources/checkpoints/{model}/{step}/    checkpoint folder + manifest.json (sizes, sha256);
#                                            weights released after use in disk-bounded mode
#   resources/prefetch/                      what `snakemake prefetch` fetched (hub commits, benchmarks)
#   results/pretrain/{model}/                its training trajectory and grokking summary
#   results/samples/{model}/{domain}.*       frozen samples, validation texts, test set
#   results/routing/{model}/{step}/          token-averaged routing weights per (sample, layer)
#   results/loss/ and results/validation_loss/{model}/{step}/   per-sample mean token NLL
#   results/routers/{model}/{step}.safetensors                  router weight matrices
#   results/groups/{model}/{domain}.parquet  memorization step t* per sample
#   results/pathways/{model}/{step}/         pathway strings and consistency per sample
#   results/distance/{model}/{step}/         mean pathway distance per group (and per layer)
#   results/tables/monitors.parquet          every monitor per (model, step, domain, group)
#   results/evals/{model}/{step}/{task}.*    lm-eval results and per-item correctness
#   results/decontamination/{model}/{task}.parquet   Min-K%++ score per item (optional; the
#                                            kept items' tables are under results/evals_clean/)
#   results/test_groups/{model}/{task}.parquet   t# per test item
#   results/matching/{model}/{task}.parquet      memorization groups paired with test groups
#   results/tables/correlations.{csv,parquet}    accuracy vs each monitor (Table 1)
#   results/figures/{model}/                     the paper's figures, PNG and PDF
# Logs and benchmarks mirror these paths under logs/ and benchmarks/.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another config: Snakemake would merge the two
# and silently add the tiny series and its domains to every other run. `--config key=value` alone
# overrides keys of the default (Snakemake applies it on top of this file).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/checkpoints.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/memorization.smk"
include: "workflow/rules/pathways.smk"
include: "workflow/rules/distance.smk"
include: "workflow/rules/monitors.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/decontamination.smk"
include: "workflow/rules/testgroups.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/prefetch.smk"


rule all:
    input:
        rules.aggregate_monitors.output,
        pretrain_summaries(),
        eval_outputs("results/evals/{model}/{step}/{task}.json"),
        per_model_task("results/matching/{model}/{task}.parquet"),
        ["results/tables/correlations.csv"] if TASK_NAMES else [],
        figure_outputs(),
        checkpoint_releases(),
