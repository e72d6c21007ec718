# Helper functions only (no rules): config validation, wildcard constraints, input functions.
import mimetypes
import re
from pathlib import Path

from grokpath.checkpoints import content_files
from grokpath.config import check_local_checkpoints, validate_config
from grokpath.evaluation import LOCAL_KINDS as LOCAL_TASK_KINDS

validate_config(config)
# local checkpoint folders, relative to the working directory as inputs are
check_local_checkpoints(config)

# `snakemake --report` embeds the monitors table as a download of its own type, not as text/plain
# (the type it assumes for a suffix Python's mimetypes does not know)
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")

MODELS = config["models"]
DOMAINS = list(config["domains"])
PRETRAIN_MODELS = [m for m, spec in MODELS.items() if spec["source"] == "pretrain"]
HUB_MODELS = [m for m, spec in MODELS.items() if spec["source"] == "hf"]
KEEP_CHECKPOINTS = config["keep_checkpoints"]
# The distance settings of the controls and the ablations: not `layerwise`, whose change must
# not rerun them.
PAIR_SETTINGS = {k: config["distance"][k] for k in ("level", "max_pairs")}


def gpus(device):
    """The `gpu` resource of a job whose model runs on `device`: 1 on CUDA, so that the SLURM
    plugin asks for one (`sbatch --gpus=1`) and `--resources gpu=N` caps the jobs sharing N GPUs
    on one machine; 0 (nothing asked) on the CPU."""
    return 1 if device.startswith("cuda") else 0


# The cross-domain control's domain pairs (Fig. 12): as configured, or every pair of domains.
CROSS_DOMAINS = (
    [list(p) for p in config["controls"]["cross_domains"]]
    if config["controls"]["cross_domains"] is not None
    else [[a, b] for i, a in enumerate(DOMAINS) for b in DOMAINS[i + 1 :]]
)


def _alternatives(values):
    return "|".join(re.escape(v) for v in sorted(set(values)))


wildcard_constraints:
    model=_alternatives(MODELS),
    step=_alternatives(c["id"] for m in MODELS.values() for c in m["checkpoints"]),
    domain=_alternatives(DOMAINS),
    task=_alternatives(
        t["name"] for d in config["domains"].values() for t in d["tasks"]
    )
    or "$^",


def checkpoint_ids(model):
    return [c["id"] for c in MODELS[model]["checkpoints"]]


def _checkpoint(model, step):
    return next(c for c in MODELS[model]["checkpoints"] if c["id"] == step)


def model_steps():
    """{model: {checkpoint id: training step}} for every configured series."""
    return {
        m: {c["id"]: c["step"] for c in spec["checkpoints"]}
        for m, spec in MODELS.items()
    }


def pretrain_summaries():
    return expand("results/pretrain/{model}/grokking.json", model=PRETRAIN_MODELS)


# ----- pretrain_tiny_moe
def pretrain_settings(wildcards):
    return MODELS[wildcards.model]["pretrain"]


def pretrain_threads(wildcards):
    return MODELS[wildcards.model]["pretrain"]["threads"]


# ----- download_checkpoint
def disk_bounded(path):
    """A tuned model folder: deleted after its one consumer (run_lm_eval) in disk-bounded mode."""
    return directory(path) if KEEP_CHECKPOINTS else temp(directory(path))


def checkpoint_files(step_of):
    """Input function: the checkpoint folder a stage reads.

    Not ancient: a checkpoint fetched again (a local folder whose weights changed, a retrained
    series) reruns every stage that read it. Its time is its .snakemake_timestamp, which only
    download_checkpoint sets: in disk-bounded mode, releasing the weights after the last stage
    that reads them (release_checkpoint) and fetching them back for a stage added later leave it
    as it is, so the stages that had finished do not rerun.
    """

    def inputs(wildcards):
        return {
            "checkpoint": f"resources/checkpoints/{wildcards.model}/{step_of(wildcards)}"
        }

    return inputs


def this_step(wildcards):
    return wildcards.step


def checkpoint_input(wildcards):
    """The pretraining run or the local folder (nothing for the hub: never contacted while
    planning); in disk-bounded mode also the release of the checkpoint `checkpoints_on_disk`
    places earlier, so that at most that many hold their weights at once."""
    spec = MODELS[wildcards.model]
    inputs = []
    if spec["source"] == "pretrain":
        inputs.append(f"resources/pretrain/{wildcards.model}/checkpoints")
    elif spec["source"] == "local":
        # its files, not the folder: a file written over in place (save_pretrained into the same
        # folder) changes the file's time, not the folder's
        folder = Path(_checkpoint(wildcards.model, wildcards.step)["path"])
        inputs += [str(f) for f in content_files(folder)]
    ids = checkpoint_ids(wildcards.model)
    earlier = ids.index(wildcards.step) - config["checkpoints_on_disk"]
    if not KEEP_CHECKPOINTS and earlier >= 0:
        # ancient: a later re-release (after a stage added) must not refetch this one
        inputs.append(
            ancient(f"resources/checkpoints/{wildcards.model}/{ids[earlier]}.released")
        )
    return inputs


def checkpoint_consumers(wildcards):
    """Everything that reads a checkpoint's weights: its release waits for all of it."""
    m, s = wildcards.model, wildcards.step
    out = [f"results/routers/{m}/{s}.safetensors"]
    out += [f"results/evals/{m}/{s}/{t}.json" for t in TASK_NAMES]
    if DECON["enabled"] and s == decontamination_step(wildcards):
        out += [f"results/decontamination/{m}/{t}.parquet" for t in TASK_NAMES]
    return out


def checkpoint_releases():
    """The release markers `all` asks for in disk-bounded mode."""
    return (
        []
        if KEEP_CHECKPOINTS
        else per_model_checkpoint("resources/checkpoints/{model}/{step}.released")
    )


def per_model_checkpoint(pattern):
    return [pattern.format(model=m, step=s) for m in MODELS for s in checkpoint_ids(m)]


def checkpoint_origin(wildcards):
    """Folder (pretrain, local) or hub repository (hf) the checkpoint comes from."""
    spec = MODELS[wildcards.model]
    ckpt = _checkpoint(wildcards.model, wildcards.step)
    if spec["source"] == "pretrain":
        return (
            f"resources/pretrain/{wildcards.model}/checkpoints/step{ckpt['step']:06d}"
        )
    return ckpt["path"] if spec["source"] == "local" else spec["repo"]


def checkpoint_revision(wildcards):
    ckpt = _checkpoint(wildcards.model, wildcards.step)
    return ckpt.get("revision", str(ckpt["step"]))


def checkpoint_source(wildcards):
    return MODELS[wildcards.model]["source"]


def model_repo(wildcards):
    return MODELS[wildcards.model]["repo"]


# ----- prepare_samples
def first_step(wildcards):
    return checkpoint_ids(wildcards.model)[0]


def pretrain_data(model):
    """The generated data a model is monitored on: its own if the workflow trained it, else the
    first pretrain series' (a hub or local model monitored on the embedded domains)."""
    series = model if model in PRETRAIN_MODELS else PRETRAIN_MODELS[0]
    return f"resources/pretrain/{series}/data"


def domain_source_input(wildcards):
    """The model's generated data (`pretrain_data`), or the domain's own local files."""
    dom = config["domains"][wildcards.domain]
    if dom["source"] == "pretrain":
        return pretrain_data(wildcards.model)
    paths = [
        dom[k] for k in ("samples_path", "validation_path", "test_path") if k in dom
    ]
    return paths


def domain_source_dir(wildcards):
    dom = config["domains"][wildcards.domain]
    return pretrain_data(wildcards.model) if dom["source"] == "pretrain" else None


def domain_settings(wildcards):
    """The domain's sample settings; not its benchmarks, whose changes must not rerun it."""
    return {
        k: v for k, v in config["domains"][wildcards.domain].items() if k != "tasks"
    }


# ----- assign_memorization and pathway_distance
def loss_tables(wildcards):
    return expand(
        "results/loss/{model}/{step}/{domain}.parquet",
        model=wildcards.model,
        step=checkpoint_ids(wildcards.model),
        domain=wildcards.domain,
    )


def model_checkpoint_ids(wildcards):
    return checkpoint_ids(wildcards.model)


def model_checkpoint_steps(wildcards):
    return [c["step"] for c in MODELS[wildcards.model]["checkpoints"]]


# ----- aggregate_monitors
def per_checkpoint(pattern):
    """`pattern` expanded over every (model, checkpoint, domain) of the config."""
    return [
        pattern.format(model=m, step=s, domain=d)
        for m in MODELS
        for s in checkpoint_ids(m)
        for d in DOMAINS
    ]


# ----- run_lm_eval
EVAL_TASKS = [
    {**task, "domain": domain}
    for domain, spec in config["domains"].items()
    for task in spec["tasks"]
]
TASK_NAMES = [t["name"] for t in EVAL_TASKS]


def eval_test_sets(wildcards):
    """The test set of every domain that has a benchmark."""
    return {
        d: f"results/samples/{wildcards.model}/{d}.test.jsonl"
        for d in sorted({t["domain"] for t in EVAL_TASKS})
    }


def eval_outputs(pattern):
    """`pattern` over every (model, checkpoint, task)."""
    return [
        pattern.format(model=m, step=s, task=t)
        for m in MODELS
        for s in checkpoint_ids(m)
        for t in TASK_NAMES
    ]


# ----- instruction_tune (optional)
TUNE = config["instruction_tune"]
FAMILY_OF = {d: TUNE["family"].get(d, d) for d in DOMAINS}
TUNED_FAMILIES = (
    sorted({FAMILY_OF[t["domain"]] for t in EVAL_TASKS}) if TUNE["enabled"] else []
)
# What the tuning itself reads: a family's data comes in as a file, so editing the datasets or
# the family map must not rerun (hours of GPU time) the families it leaves unchanged.
TUNE_SETTINGS = {
    k: v for k, v in TUNE.items() if k not in ("enabled", "family", "datasets")
}


def tune_dataset(wildcards):
    """A JSONL path as given, or the file prepare_instructions makes from a hub dataset."""
    spec = TUNE["datasets"][wildcards.family]
    return (
        spec
        if isinstance(spec, str)
        else f"resources/instruct/{wildcards.family}.jsonl"
    )


def instruction_source(wildcards):
    return TUNE["datasets"][wildcards.family]


def tuned_models(wildcards):
    return {
        f"tuned_{f}": f"resources/tuned/{wildcards.model}/{wildcards.step}/{f}"
        for f in TUNED_FAMILIES
    }


def eval_inputs(wildcards):
    return {
        **checkpoint_files(this_step)(wildcards),
        **eval_test_sets(wildcards),
        **tuned_models(wildcards),
    }


# ----- assign_test_groups, match_groups, correlate
def task_domain(wildcards):
    return next(t["domain"] for t in EVAL_TASKS if t["name"] == wildcards.task)


# Per-item tables downstream stages read: decontamination leaves its dropped items out of them.
DECON = config["decontamination"]
ITEMS = (
    "results/evals_clean/{model}/{step}/{task}.samples.parquet"
    if DECON["enabled"]
    else "results/evals/{model}/{step}/{task}.samples.parquet"
)


def decontamination_step(wildcards):
    return DECON["checkpoint"] or checkpoint_ids(wildcards.model)[-1]


def decontamination_items(wildcards):
    """The scoring checkpoint's per-item table: its prompts and targets are scored."""
    step = DECON["checkpoint"] or checkpoint_ids(wildcards.model)[-1]
    return f"results/evals/{wildcards.model}/{step}/{wildcards.task}.samples.parquet"


def task_item_tables(wildcards):
    return expand(
        ITEMS,
        model=wildcards.model,
        step=checkpoint_ids(wildcards.model),
        task=wildcards.task,
    )


def match_inputs(wildcards):
    domain = task_domain(wildcards)
    return {
        "train_groups": f"results/groups/{wildcards.model}/{domain}.parquet",
        "samples": f"results/samples/{wildcards.model}/{domain}.parquet",
        "test_groups": f"results/test_groups/{wildcards.model}/{wildcards.task}.parquet",
        # any checkpoint's items carry the prompts; the last one's exists in every config
        "evals": ITEMS.format(
            model=wildcards.model,
            step=checkpoint_ids(wildcards.model)[-1],
            task=wildcards.task,
        ),
    }


def per_model_task(pattern):
    return [pattern.format(model=m, task=t) for m in MODELS for t in TASK_NAMES]


# ----- figures (one model each)
def steps_of(wildcards):
    return model_steps()[wildcards.model]


def model_items(wildcards):
    return [
        ITEMS.format(model=wildcards.model, step=s, task=t)
        for s in checkpoint_ids(wildcards.model)
        for t in TASK_NAMES
    ]


def model_groups(wildcards):
    return expand(
        "results/groups/{model}/{domain}.parquet", model=wildcards.model, domain=DOMAINS
    )


def model_distances(wildcards):
    return [
        f"results/distance/{wildcards.model}/{s}/{d}.parquet"
        for s in checkpoint_ids(wildcards.model)
        for d in DOMAINS
    ]


def model_matches(wildcards):
    return expand(
        "results/matching/{model}/{task}.parquet",
        model=wildcards.model,
        task=TASK_NAMES,
    )


def model_test_groups(wildcards):
    return expand(
        "results/test_groups/{model}/{task}.parquet",
        model=wildcards.model,
        task=TASK_NAMES,
    )


# Figures that need only the training-data monitors, and those that also need benchmarks.
# Fig 5 plots the per-layer distances, which `distance.layerwise: false` does not compute.
MONITOR_FIGURES = [
    "fig4_distance_groups",
    *(["fig5_layerwise_distance"] if config["distance"]["layerwise"] else []),
    "fig6_consistency_groups",
    "fig13_distance_vs_entropy",
]
BENCHMARK_FIGURES = [
    "fig1_memorized_counts",
    "fig2_local_grokking",
    "fig7_accuracy_vs_monitors",
    "table1_correlations",
]


def figure_outputs():
    names = MONITOR_FIGURES + (BENCHMARK_FIGURES if TASK_NAMES else [])
    if config["ablation"]["taus"]:
        names.append("fig9_tau_ablation")
    if config["ablation"]["eps_factors"]:
        names.append("fig10_eps_ablation")
    if config["ablation"]["deltas"]:
        names.append("fig11_delta_ablation")
    if CROSS_DOMAINS:
        names.append("fig12_cross_domain")
    out = [
        f"results/figures/{m}/{f}.{ext}"
        for m in MODELS
        for f in names
        for ext in ("png", "pdf")
    ]
    out += [
        f"results/figures/{m}/{f}.{ext}"
        for m in PRETRAIN_MODELS
        for f in ("pretrain_trajectory", "live_monitors")
        for ext in ("png", "pdf")
    ]
    return out


def domain_pathways(wildcards):
    """{domain: pathways table} of one checkpoint, for the domains the cross pairs name."""
    names = sorted({d for pair in CROSS_DOMAINS for d in pair})
    return {
        d: f"results/pathways/{wildcards.model}/{wildcards.step}/{d}.parquet"
        for d in names
    }


def last_checkpoint(wildcards):
    return checkpoint_ids(wildcards.model)[-1]


def last_checkpoint_pathways(wildcards):
    step = last_checkpoint(wildcards)
    return [f"results/pathways/{wildcards.model}/{step}/{d}.parquet" for d in DOMAINS]


def domain_pathway_tables(wildcards):
    return [
        f"results/pathways/{wildcards.model}/{s}/{wildcards.domain}.parquet"
        for s in checkpoint_ids(wildcards.model)
    ]


def model_memorization_ablations(wildcards):
    return [
        f"results/ablation/memorization/{wildcards.model}/{d}.parquet" for d in DOMAINS
    ]


def model_cross_domain(wildcards):
    return [
        f"results/controls/cross_domain/{wildcards.model}/{s}.parquet"
        for s in checkpoint_ids(wildcards.model)
    ]


def model_ablations(wildcards):
    return [
        f"results/ablation/tau/{wildcards.model}/{s}/{d}.parquet"
        for s in checkpoint_ids(wildcards.model)
        for d in DOMAINS
    ]


# ----- prefetch
def prefetch_targets():
    """What `snakemake prefetch` brings onto the machine (see prefetch.smk)."""
    hub = [
        f"resources/prefetch/{m}/{s}.json"
        for m in HUB_MODELS
        for s in checkpoint_ids(m)
    ]
    hub_domains = [d for d, spec in config["domains"].items() if spec["source"] == "hf"]
    samples = expand(
        "results/samples/{model}/{domain}.parquet", model=MODELS, domain=hub_domains
    )
    instructions = [
        f"resources/instruct/{f}.jsonl"
        for f in TUNED_FAMILIES
        if isinstance(TUNE["datasets"][f], dict)
    ]
    benchmarks = (
        ["resources/prefetch/benchmarks.json"]
        if any(t["task"] not in LOCAL_TASK_KINDS for t in EVAL_TASKS)
        else []
    )
    return hub + samples + instructions + benchmarks


# ----- plot_memorization_ablation
# Figs 10 and 11 plot the same ablation tables against eps and against delta: the figure's name
# picks the parameter.
ABLATION_FIGURES = {"fig10_eps": "eps", "fig11_delta": "delta"}


def ablation_parameter(wildcards):
    return ABLATION_FIGURES[wildcards.figure]
