"""Config validation: the JSON schema (strict, defaults filled in) plus the checks a schema cannot
express. Every error names the key, the bad value and what is allowed, before any job runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from grokpath.checkpoints import SOURCES as CHECKPOINT_SOURCES
from grokpath.checkpoints import folder_problem
from grokpath.evaluation import LOCAL_KINDS as LOCAL_TASK_KINDS
from grokpath.evaluation import check_task_names
from grokpath.instructions import check_template
from grokpath.synthetic import DOMAINS as GENERATED_DOMAINS
from grokpath.synthetic import TRAIN_FRACTION_KEYS, split_sizes

OTHER_SOURCES = tuple(s for s in CHECKPOINT_SOURCES if s != "pretrain")

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value that cannot work; the message says which key, which value and what is allowed."""


def _with_defaults(cls: type[jsonschema.protocols.Validator]) -> type[jsonschema.protocols.Validator]:
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = _copy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    # JSON Schema counts 10.0 as an integer; a step, a count or a batch size written that way would
    # be accepted here and fail much later (string formats, range(), torch), so floats are refused.
    strict_integers = cls.TYPE_CHECKER.redefine(
        "integer", lambda _checker, instance: isinstance(instance, int) and not isinstance(instance, bool)
    )
    return jsonschema.validators.extend(cls, {"properties": set_defaults}, type_checker=strict_integers)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Inside a oneOf/anyOf, the error of the branch of the value's own type (an object given
    where a string or an object is allowed failed as an object, not as a string)."""
    while error.context:
        same_type = [e for e in error.context if e.validator != "type"]
        error = max(same_type or error.context, key=lambda e: len(e.absolute_path))
    return error


def _describe(error: jsonschema.ValidationError) -> str:
    key = _path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return f"config key {key}: unknown key(s) {extra}; allowed: {allowed}"
    if error.validator == "enum":
        return f"config key {key}: {error.instance!r} is not allowed; allowed: {error.validator_value}"
    if error.validator == "required":
        return f"config key {key}: {error.message}"
    desc = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    hint = f" ({desc.strip()})" if desc else ""
    return f"config key {key}: {error.instance!r} is invalid: {error.message}{hint}"


def validate_config(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Validate in place (filling defaults) and return `config`; raise ConfigError on the first problem."""
    models = config.get("models")
    for alias, model in models.items() if isinstance(models, dict) else []:
        # Checked before defaults fill in an empty `pretrain` block for every model.
        if isinstance(model, dict) and "pretrain" in model and model.get("source") in OTHER_SOURCES:
            raise ConfigError(
                f"config key models.{alias}.pretrain: only allowed with source 'pretrain', not {model.get('source')!r}"
            )
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(validator_cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        # The deepest error is the most specific one (oneOf/anyOf wrap their branches).
        raise ConfigError(_describe(_specific(min(errors, key=lambda e: -len(e.absolute_path)))))
    _check_semantics(config)
    return config


def _check_semantics(config: dict[str, Any]) -> None:
    for alias, model in config["models"].items():
        ids = [c["id"] for c in model["checkpoints"]]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ConfigError(
                f"config key models.{alias}.checkpoints: duplicate checkpoint id(s) {dup}; ids must be unique"
            )
        steps = [c["step"] for c in model["checkpoints"]]
        if steps != sorted(steps) or len(set(steps)) != len(steps):
            raise ConfigError(
                f"config key models.{alias}.checkpoints: steps {steps} must be strictly increasing (training order)"
            )
        if model["source"] == "pretrain":
            pre = model.get("pretrain", {})
            bad = [s for s in steps if s % pre["save_every"] or s > pre["max_steps"]]
            if bad:
                raise ConfigError(
                    f"config key models.{alias}.checkpoints: steps {bad} are not saved by the pretraining run; "
                    f"allowed: multiples of pretrain.save_every={pre['save_every']} up to max_steps={pre['max_steps']}"
                )
            shape = pre["model"]
            if shape["top_k"] > shape["num_experts"]:
                raise ConfigError(
                    f"config key models.{alias}.pretrain.model.top_k: {shape['top_k']} exceeds "
                    f"num_experts={shape['num_experts']}"
                )
            if shape["hidden_size"] % shape["num_heads"]:
                raise ConfigError(
                    f"config key models.{alias}.pretrain.model.num_heads: {shape['num_heads']} must divide "
                    f"hidden_size={shape['hidden_size']}"
                )
        else:
            model.pop("pretrain", None)  # the schema filled in defaults that do not apply
        _check_checkpoint_locations(alias, model)
    has_pretrain = any(m["source"] == "pretrain" for m in config["models"].values())
    for name, dom in config["domains"].items():
        # A file or dataset the source does not read would be ignored without a word.
        taken = _DOMAIN_KEYS[dom["source"]]
        unused = sorted(k for k in set().union(*_DOMAIN_KEYS.values()) if k in dom and k not in taken)
        if unused:
            raise ConfigError(
                f"config key domains.{name}.{unused[0]}: not used by source {dom['source']!r}; source "
                f"{dom['source']!r} takes " + (", ".join(taken) if taken else "no data keys (it generates its data)")
            )
        for key, n_key in (("dataset", "n_samples"), ("validation_dataset", "n_validation")):
            scan = dom[key].get("max_scan") if isinstance(dom.get(key), dict) else None
            if scan is not None and scan < dom[n_key]:
                raise ConfigError(
                    f"config key domains.{name}.{key}.max_scan: {scan} rows cannot give {n_key}={dom[n_key]} "
                    f"texts; allowed: null (no limit) or at least {dom[n_key]}"
                )
        if dom["source"] == "pretrain":
            if name not in GENERATED_DOMAINS:
                raise ConfigError(
                    f"config key domains.{name}.source: 'pretrain' generates only {list(GENERATED_DOMAINS)}, "
                    f"not {name!r}; use source 'jsonl' with samples_path for other domains"
                )
            if not has_pretrain:
                raise ConfigError(f"config key domains.{name}.source: 'pretrain' needs a model with source 'pretrain'")
        else:
            needed = (
                ("samples_path", "validation_path") if dom["source"] == "jsonl" else ("dataset", "validation_dataset")
            )
            for key in needed:
                if key not in dom:
                    raise ConfigError(f"config key domains.{name}.{key}: required for source {dom['source']!r}")
        has_test_set = dom["source"] == "pretrain" or "test_path" in dom
        local = [t["name"] for t in dom["tasks"] if t["task"] in LOCAL_TASK_KINDS]
        if local and not has_test_set:
            raise ConfigError(
                f"config key domains.{name}.tasks: {local} use the local kinds {list(LOCAL_TASK_KINDS)}, which "
                f"evaluate the domain's own test set; give domains.{name}.test_path or use lm-eval task names"
            )
        if dom["n_samples"] < 2:
            raise ConfigError(f"config key domains.{name}.n_samples: needs at least 2 samples for pair distances")
    _check_generated_sizes(config)
    # lm-eval task names (an index cached on disk; only configs that name lm-eval tasks read it)
    for name, dom in config["domains"].items():
        for k, spec in enumerate(dom["tasks"]):
            try:
                check_task_names([spec["task"]], config["evaluation"]["allow_code_execution"])
            except ValueError as error:
                raise ConfigError(f"config key domains.{name}.tasks.{k}.task: {error}") from None
    names = [t["name"] for dom in config["domains"].values() for t in dom["tasks"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"config key domains.*.tasks: duplicate task name(s) {dup}; names must be unique")
    tune = config["instruction_tune"]
    if tune["enabled"]:
        families = {tune["family"].get(d, d) for d, dom in config["domains"].items() if dom["tasks"]}
        missing = sorted(families - set(tune["datasets"]))
        if missing:
            raise ConfigError(
                f"config key instruction_tune.datasets: no instruction data for famil(ies) {missing}; "
                f"give a JSONL path for each of {sorted(families)}"
            )
    for family, source in tune["datasets"].items():
        for key in ("prompt_template", "response_template"):
            if isinstance(source, dict) and key in source:
                try:
                    check_template(source[key])
                except ValueError as error:
                    raise ConfigError(f"config key instruction_tune.datasets.{family}.{key}: {error}") from None
    _only_domains(config, "instruction_tune.family", config["instruction_tune"]["family"])
    corr = config["correlation"]
    if corr["window"] == "list":
        known = {c["id"] for m in config["models"].values() for c in m["checkpoints"]}
        unknown = sorted(set(corr["checkpoints"]) - known)
        if unknown or len(corr["checkpoints"]) < 3:
            raise ConfigError(
                f"config key correlation.checkpoints: {corr['checkpoints']} must name at least 3 checkpoints "
                f"for window 'list'" + (f"; unknown: {unknown}, allowed: {sorted(known)}" if unknown else "")
            )
    decon = config["decontamination"]
    if decon["enabled"] and decon["checkpoint"] is not None:
        for alias, model in config["models"].items():
            ids = [c["id"] for c in model["checkpoints"]]
            if decon["checkpoint"] not in ids:
                raise ConfigError(
                    f"config key decontamination.checkpoint: {decon['checkpoint']!r} is not a checkpoint of model "
                    f"{alias!r}; allowed: {ids} or null for the last one"
                )
    for k, pair in enumerate(config["controls"]["cross_domains"] or []):
        _only_domains(config, f"controls.cross_domains.{k}", pair)
        if pair[0] == pair[1]:
            raise ConfigError(f"config key controls.cross_domains.{k}: {pair} pairs a domain with itself; name two")
    _only_domains(config, "memorization.eps", config["memorization"]["eps"])
    lo, hi = config["memorization"]["target_fraction"]
    if lo > hi:
        raise ConfigError(f"config key memorization.target_fraction: [{lo}, {hi}] must be [low, high] with low <= high")


def _only_domains(config: dict[str, Any], key: str, names: Any) -> None:
    unknown = sorted(set(names) - set(config["domains"]))
    if unknown:
        raise ConfigError(f"config key {key}: {unknown} are not domains; allowed: {sorted(config['domains'])}")


# The data keys each domain source reads (the same names under another source are refused).
_DOMAIN_KEYS = {
    "pretrain": (),
    "jsonl": ("samples_path", "validation_path", "test_path"),
    "hf": ("dataset", "validation_dataset", "test_path"),
}

# Which checkpoint key says where each source finds its checkpoint; the others must be absent.
_LOCATION_KEY = {"pretrain": None, "local": "path", "hf": "revision"}


def _check_checkpoint_locations(alias: str, model: dict[str, Any]) -> None:
    source = model["source"]
    key = _LOCATION_KEY[source]
    for other in ("path", "revision"):
        extra = [c["id"] for c in model["checkpoints"] if other in c and other != key]
        if extra:
            raise ConfigError(
                f"config key models.{alias}.checkpoints: `{other}` is not used by source {source!r} "
                f"(checkpoints {extra}); source {source!r} takes " + (f"`{key}`" if key else "no location key")
            )
    if key:
        missing = [c["id"] for c in model["checkpoints"] if key not in c]
        if missing:
            raise ConfigError(f"config key models.{alias}.checkpoints: source {source!r} needs a {key} for {missing}")
    if (source == "hf") != ("repo" in model):
        raise ConfigError(
            f"config key models.{alias}.repo: "
            + ("required for source 'hf'" if source == "hf" else f"only used by source 'hf', not {source!r}")
        )


def check_local_checkpoints(config: dict[str, Any], root: str | Path = ".") -> None:
    """Every checkpoint folder of a `local` series exists and holds config.json (paths relative to
    `root`, the working directory), all of them named at once with their config keys: checked
    when the workflow starts, where Snakemake would name only the first missing folder and no key.
    Apart from `validate_config`, which checks a config's content, not the machine it runs on."""
    bad = []
    for alias, model in config["models"].items():
        if model["source"] != "local":
            continue
        for i, ckpt in enumerate(model["checkpoints"]):
            problem = folder_problem(Path(root) / ckpt["path"])
            if problem:
                bad.append(f"models.{alias}.checkpoints[{i}].path: {ckpt['path']} {problem}")
    if bad:
        raise ConfigError(
            f"{len(bad)} local checkpoint folder(s) missing; each must be a checkpoint folder in Hugging Face "
            f"format (with config.json): " + "; ".join(bad)
        )


def _check_generated_sizes(config: dict[str, Any]) -> None:
    """Each pretrain series' generated data has what the generators and the domains ask of it:
    held-out items for its test and validation sets, and as many texts as the domains with source
    'pretrain' take (n_samples, n_validation). Sizes follow from the settings
    (`synthetic.split_sizes`), so this fails at the start, not when the data is generated."""
    for alias, model in config["models"].items():
        if model["source"] != "pretrain":
            continue
        data = model["pretrain"]["data"]
        key = f"models.{alias}.pretrain.data"
        sizes = split_sizes(data)
        need = data["n_test"] + data["n_validation"]
        for domain, size in sizes.items():
            if size["held_out"] < need:
                fraction = TRAIN_FRACTION_KEYS[domain]
                raise ConfigError(
                    f"config key {key}.{fraction}: {data[fraction]} holds out {size['held_out']} {domain} items, "
                    f"fewer than n_test + n_validation = {need}; allowed: a lower {fraction}, more {domain} "
                    f"items, or smaller {key}.n_test / n_validation"
                )
        for domain, spec in config["domains"].items():
            if spec["source"] != "pretrain":
                continue
            for n_key, have, what, more in (
                ("n_samples", sizes[domain]["samples"], "training texts", key),
                ("n_validation", data["n_validation"], "validation texts", f"{key}.n_validation"),
            ):
                if spec[n_key] > have:
                    raise ConfigError(
                        f"config key domains.{domain}.{n_key}: {spec[n_key]}, but the {domain} data of "
                        f"{key} has only {have} {what}; allowed: at most {have}, or more generated data ({more})"
                    )


def load_config(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys, got {type(config).__name__}")
    return validate_config(config)
