import copy
from pathlib import Path

import pytest
import yaml

from grokpath.config import ConfigError, check_local_checkpoints, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _base():
    return yaml.safe_load((ROOT / "config" / "test.yaml").read_text())


@pytest.mark.parametrize("path", ["config.yaml", "config/test.yaml"])
def test_shipped_configs_are_valid(path):
    cfg = load_config(ROOT / path)
    assert cfg["tau"] == 0.7
    assert cfg["distance"]["level"] == "char"


def test_defaults_are_filled_in_nested():
    cfg = validate_config(
        {"models": {"m": {"source": "pretrain", "checkpoints": [{"id": "s0", "step": 0}]}}, "domains": {"math": {}}}
    )
    assert cfg["extraction"]["routing"] == "full"
    assert cfg["models"]["m"]["pretrain"]["model"]["num_experts"] == 8
    assert cfg["domains"]["math"]["source"] == "pretrain"
    assert cfg["memorization"]["delta"] == 0.05


def _mutate(path, value):
    cfg = _base()
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


_DELETE = object()
CKPTS = ("models", "tiny", "checkpoints")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("colour",), "red", r"config key \(top level\): unknown key\(s\) \['colour'\]"),
        (("tau",), 1.5, r"config key tau: 1.5 is invalid"),
        (("tau",), 0, r"config key tau: 0 is invalid"),
        (("tau",), "high", r"config key tau: 'high' is invalid"),
        ((*CKPTS,), [], r"config key models.tiny.checkpoints: \[\] is invalid"),
        ((*CKPTS,), [{"id": "a", "step": 10}, {"id": "a", "step": 20}], r"duplicate checkpoint id\(s\) \['a'\]"),
        ((*CKPTS,), [{"id": "a/b", "step": 10}], r"config key models.tiny.checkpoints.0.id: 'a/b' is invalid"),
        ((*CKPTS,), [{"id": "a", "step": 20}, {"id": "b", "step": 10}], r"must be strictly increasing"),
        ((*CKPTS,), [{"id": "a", "step": 15}], r"steps \[15\] are not saved by the pretraining run"),
        (
            ("distance", "level"),
            "bytes",
            r"config key distance.level: 'bytes' is not allowed; allowed: \['char', 'token'\]",
        ),
        (("extraction", "routing"), "sparse", r"config key extraction.routing: 'sparse' is not allowed"),
        (("domains", "chemistry"), {}, r"'pretrain' generates only"),
        (("domains", "math", "source"), "jsonl", r"config key domains.math.samples_path: required"),
        (("models", "tiny", "source"), "hub", r"config key models.tiny.source: 'hub' is not allowed"),
        (("memorization", "eps"), {"physics": 1.0}, r"config key memorization.eps: \['physics'\] are not domains"),
        (("extraction", "batch_size"), 0, r"config key extraction.batch_size: 0 is invalid"),
        (("models", "tiny", "pretrain", "model", "top_k"), 9, r"top_k: 9 exceeds num_experts=4"),
        (("domains",), {}, r"config key domains: \{\} is invalid"),
        (("models",), _DELETE, r"'models' is a required property"),
        (("domains", "math", "n_samples"), 0, r"config key domains.math.n_samples: 0 is invalid"),
        (("extraction", "threads"), 0, r"config key extraction.threads: 0 is invalid"),
        # more than the series' generated data holds: refused at the start, not in the pretraining job
        (
            ("domains", "math", "n_samples"),
            10**6,
            r"config key domains.math.n_samples: 1000000, but the math data of models.tiny.pretrain.data has only "
            r"\d+ training texts; allowed: at most \d+",
        ),
        (
            ("domains", "code", "n_validation"),
            10**4,
            r"domains.code.n_validation: 10000, .* only \d+ validation texts.*\(models.tiny.pretrain.data.n_validation",
        ),
        (
            ("models", "tiny", "pretrain", "data", "math_train_fraction"),
            0.999,
            r"config key models.tiny.pretrain.data.math_train_fraction: 0.999 holds out \d+ math items, fewer than "
            r"n_test \+ n_validation = \d+",
        ),
        (("extraction", "dtype"), "fp8", r"extraction.dtype: 'fp8' is not allowed; allowed: \['float32'"),
        (("extraction", "too_long"), "drop", r"extraction.too_long: 'drop' is not allowed; allowed: \['refuse'"),
        (("extraction", "device"), "gpu", r"config key extraction.device: 'gpu' is invalid.*cpu, cuda, cuda:N, mps"),
        (("evaluation", "device"), "cuda:", r"config key evaluation.device: 'cuda:' is invalid"),
        (("instruction_tune", "device"), "cpu:0", r"config key instruction_tune.device: 'cpu:0' is invalid"),
        (("instruction_tune", "dtype"), "float16", r"tune.dtype: 'float16' is not allowed; allowed: \['float32'"),
        (
            ("instruction_tune", "family"),
            {"physics": "general"},
            r"instruction_tune.family: \['physics'\] are not domains",
        ),
        (("correlation",), {"window": "list", "checkpoints": ["step000010", "x"]}, r"unknown: \['x'\]"),
        (("domains", "math", "tasks"), [{"name": "a b", "task": "generate"}], r"tasks.0.name: 'a b' is invalid"),
        (
            ("domains", "math", "tasks"),
            [{"name": "t", "task": "generate"}, {"name": "t", "task": "choice"}],
            r"duplicate task name\(s\) \['t'\]",
        ),
        (("seed",), -1, r"config key seed: -1 is invalid"),
        (("keep_checkpoints",), "no", r"config key keep_checkpoints: 'no' is invalid"),
        # JSON Schema would count these as integers; they would fail late, in string formats or range()
        ((*CKPTS,), [{"id": "a", "step": 10.0}], r"config key models.tiny.checkpoints.0.step: 10.0 is invalid"),
        (("domains", "math", "n_samples"), 24.0, r"config key domains.math.n_samples: 24.0 is invalid"),
        (("extraction", "batch_size"), True, r"config key extraction.batch_size: True is invalid"),
        # data keys the domain's source would ignore
        (
            ("domains", "math", "samples_path"),
            "mine.jsonl",
            r"domains.math.samples_path: not used by source 'pretrain'; source 'pretrain' takes no data keys",
        ),
    ],
)
def test_bad_config_fails_with_one_clear_message(path, value, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_mutate(path, value))


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps", "xpu:0"])
def test_device_names_are_accepted(device):
    cfg = validate_config(_mutate(("instruction_tune", "device"), device))
    assert cfg["instruction_tune"]["device"] == device
    assert cfg["extraction"]["device"] == "cpu"


def test_pretrain_block_on_local_model_is_refused():
    cfg = _base()
    local = copy.deepcopy(cfg["models"]["tiny"])
    local["source"] = "local"
    cfg["models"]["other"] = local
    with pytest.raises(ConfigError, match=r"models.other.pretrain: only allowed with source 'pretrain'"):
        validate_config(cfg)


def test_local_model_needs_paths():
    cfg = _base()
    cfg["models"]["other"] = {"source": "local", "checkpoints": [{"id": "c1", "step": 1}]}
    with pytest.raises(ConfigError, match=r"source 'local' needs a path for \['c1'\]"):
        validate_config(cfg)


def test_local_checkpoint_folders_are_checked_all_at_once(tmp_path):
    cfg = _base()
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    cfg["models"]["other"] = {
        "source": "local",
        "checkpoints": [
            {"id": "c1", "step": 1, "path": "good"},
            {"id": "c2", "step": 2, "path": "empty"},
            {"id": "c3", "step": 3, "path": "gone"},
        ],
    }
    cfg = validate_config(cfg)  # the content is valid; the folders are the machine's
    with pytest.raises(ConfigError) as err:
        check_local_checkpoints(cfg, tmp_path)
    assert str(err.value).startswith("2 local checkpoint folder(s) missing")
    assert "models.other.checkpoints[1].path: empty has no config.json" in str(err.value)
    assert "models.other.checkpoints[2].path: gone does not exist" in str(err.value)
    cfg["models"]["other"]["checkpoints"] = cfg["models"]["other"]["checkpoints"][:1]
    check_local_checkpoints(cfg, tmp_path)


def test_instruction_tuning_needs_data_for_every_evaluated_family():
    cfg = _base()
    cfg["instruction_tune"] = {"enabled": True, "family": {"math": "general"}, "datasets": {}}
    with pytest.raises(
        ConfigError, match=r"instruction_tune.datasets: no instruction data for famil\(ies\) \['general'\]"
    ):
        validate_config(cfg)


def _hub_model(**extra):
    return {
        "source": "hf",
        "repo": "allenai/OLMoE-1B-7B-0924",
        "checkpoints": [{"id": "step5000", "step": 5000, "revision": "step5000-tokens20B"}],
        **extra,
    }


def test_paper_config_is_valid():
    cfg = load_config(ROOT / "config" / "olmoe-paper.yaml")
    model = cfg["models"]["olmoe-1b-7b"]
    assert [c["step"] for c in model["checkpoints"]][::9] == [5000, 1100000]
    assert cfg["keep_checkpoints"] is False
    assert cfg["instruction_tune"]["rank"] == 32
    assert {cfg[k]["device"] for k in ("extraction", "evaluation", "instruction_tune")} == {"cuda"}
    assert cfg["instruction_tune"]["dtype"] == "bfloat16"
    assert cfg["decontamination"]["drop_fraction"] == 0.1
    assert cfg["domains"]["chemistry"]["dataset"]["keyword"] == "Organic Chemistry"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({k: v for k, v in _hub_model().items() if k != "repo"}, r"models.other.repo: required for source 'hf'"),
        (
            _hub_model(checkpoints=[{"id": "a", "step": 1}]),
            r"models.other.checkpoints: source 'hf' needs a revision for \['a'\]",
        ),
        (
            _hub_model(checkpoints=[{"id": "a", "step": 1, "revision": "main", "path": "/x"}]),
            r"`path` is not used by source 'hf' \(checkpoints \['a'\]\); source 'hf' takes `revision`",
        ),
        (_hub_model(repo="not a repo"), r"models.other.repo: 'not a repo' is invalid"),
        (
            {"source": "local", "repo": "a/b", "checkpoints": [{"id": "a", "step": 1, "path": "/x"}]},
            r"models.other.repo: only used by source 'hf', not 'local'",
        ),
    ],
)
def test_bad_hub_model(model, message):
    cfg = _base()
    cfg["models"]["other"] = model
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_hub_domain_needs_both_datasets_and_local_kinds_need_a_test_set():
    cfg = _base()
    cfg["domains"]["web"] = {"source": "hf", "dataset": {"path": "open-web-math/open-web-math"}}
    with pytest.raises(ConfigError, match=r"domains.web.validation_dataset: required for source 'hf'"):
        validate_config(copy.deepcopy(cfg))
    cfg["domains"]["web"]["validation_dataset"] = {"path": "a/b", "text_fieldd": "x"}
    with pytest.raises(ConfigError, match=r"domains.web.validation_dataset: unknown key\(s\) \['text_fieldd'\]"):
        validate_config(copy.deepcopy(cfg))
    cfg["domains"]["web"]["validation_dataset"] = {"path": "a/b"}
    cfg["domains"]["web"]["tasks"] = [{"name": "web_gen", "task": "generate"}]
    with pytest.raises(ConfigError, match=r"domains.web.tasks: \['web_gen'\] use the local kinds"):
        validate_config(copy.deepcopy(cfg))
    cfg["domains"]["web"]["tasks"] = [{"name": "web_math", "task": "grokpath_competition_math"}]
    assert validate_config(copy.deepcopy(cfg))["domains"]["web"]["dataset"]["split"] == "train"
    for key, value in (("samples_path", "web.jsonl"), ("validation_path", "web.jsonl")):
        bad = copy.deepcopy(cfg)
        bad["domains"]["web"][key] = value
        with pytest.raises(ConfigError, match=rf"domains.web.{key}: not used by source 'hf'; source 'hf' takes"):
            validate_config(bad)
    bad = copy.deepcopy(cfg)
    bad["domains"]["web"]["dataset"]["max_scan"] = 5
    with pytest.raises(ConfigError, match=r"domains.web.dataset.max_scan: 5 rows cannot give n_samples=\d+ texts"):
        validate_config(bad)
    bad = copy.deepcopy(cfg)
    bad["domains"]["web"].update(source="jsonl", samples_path="a.jsonl", validation_path="b.jsonl")
    with pytest.raises(ConfigError, match=r"domains.web.dataset: not used by source 'jsonl'"):
        validate_config(bad)


def test_decontamination_checkpoint_must_exist():
    cfg = _base()
    cfg["decontamination"] = {"enabled": True, "checkpoint": "step999"}
    with pytest.raises(ConfigError, match=r"decontamination.checkpoint: 'step999' is not a checkpoint of model 'tiny'"):
        validate_config(cfg)


def test_instruction_dataset_from_the_hub_needs_templates():
    cfg = _base()
    cfg["instruction_tune"] = {"enabled": True, "datasets": {"math": {"path": "meta-math/MetaMathQA"}}}
    with pytest.raises(ConfigError, match=r"instruction_tune.datasets.math: 'prompt_template' is a required property"):
        validate_config(copy.deepcopy(cfg))
    templates = {"prompt_template": "{query}", "response_template": "{response}"}
    cfg["instruction_tune"]["datasets"]["math"].update(templates)
    cfg["instruction_tune"]["datasets"]["code"] = "code.jsonl"
    validate_config(copy.deepcopy(cfg))
    for key, template, message in (
        ("prompt_template", "{query", r"'\{query' is not a Python format string: expected '\}'"),
        ("response_template", "{}", r"'\{\}': \{\} names no field"),
        ("prompt_template", "Q: {0}", r"'Q: \{0\}': \{0\} names no field"),
        ("prompt_template", "{query!z}", r"'\{query!z\}' cannot format a row's text fields: Unknown conversion"),
        ("response_template", "{response:d}", r"'\{response:d\}' cannot format a row's text fields: Unknown format"),
    ):
        bad = copy.deepcopy(cfg)
        bad["instruction_tune"]["datasets"]["math"][key] = template
        with pytest.raises(ConfigError, match=rf"config key instruction_tune.datasets.math.{key}: {message}"):
            validate_config(bad)


def test_lm_eval_task_names_are_checked_with_the_config(tmp_path, monkeypatch):
    """Before any download or tuning: a task lm-eval does not know, or one that runs the model's
    code without evaluation.allow_code_execution. lm-eval's task index is cached on disk."""
    from grokpath import evaluation

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = _base()
    cfg["domains"]["math"]["tasks"] = [{"name": "csqa", "task": "commonsense_qaa"}]
    with pytest.raises(
        ConfigError,
        match=r"domains.math.tasks.0.task: unknown benchmark task 'commonsense_qaa'.*"
        r"did you mean \['commonsense_qa'",
    ):
        validate_config(copy.deepcopy(cfg))
    assert len(list((tmp_path / "grokpath").glob("lm_eval_tasks-*.json"))) == 1  # indexed once, then read
    cfg["domains"]["math"]["tasks"] = [{"name": "he", "task": "humaneval_plus"}]
    with pytest.raises(
        ConfigError, match=r"'humaneval_plus' runs the model's generated programs.*allow_code_execution"
    ):
        validate_config(copy.deepcopy(cfg))
    cfg["evaluation"] = {"allow_code_execution": True}
    validate_config(copy.deepcopy(cfg))
    index = evaluation.task_index()
    assert index["humaneval_plus"]["unsafe_code"] is True
    assert index["commonsense_qa"]["unsafe_code"] is False
    # groups and tags run several tasks; each benchmark here is one task with per-item accuracy
    for name, kind, member in (("ai2_arc", "tag", "arc_easy"), ("mmlu_stem", "group", "mmlu_abstract_algebra")):
        cfg["domains"]["math"]["tasks"] = [{"name": "t", "task": name}]
        with pytest.raises(ConfigError, match=rf"'{name}' is an lm-eval {kind} of several tasks.*'{member}'"):
            validate_config(copy.deepcopy(cfg))
    assert "grokpath_competition_math" in index  # the local task YAMLs too
