import os

# The tests never reach the hub: models and data are built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import json
from pathlib import Path

import pytest
import torch
from transformers import OlmoeConfig, OlmoeForCausalLM

from grokpath import checkpoints, samples, stages, tables
from grokpath.tokenizer import train_word_tokenizer

# LoRA settings small and strong enough to lower a tiny model's loss in a few steps (the stage's
# `instruction_tune` settings, on the CPU in float32).
SMALL_LORA = {
    "rank": 4,
    "alpha": None,
    "dropout": 0.0,
    "lr": 1e-2,
    "batch_size": 4,
    "max_length": 32,
    "epochs": 3,
    "target_modules": ["q_proj", "k_proj", "v_proj"],
    "max_examples": None,
    "device": "cpu",
    "dtype": "float32",
}
# Arithmetic texts for a word tokenizer and a checkpoint to read them with.
SUMS = [f"{a} + {b} = {(a + b) % 7}" for a in range(7) for b in range(3)]


def random_olmoe(tok, hidden: int = 32, layers: int = 3, seed: int = 0) -> OlmoeForCausalLM:
    """A random OLMoE (4 experts, top-2) for `tok`, built from its config: no hub."""
    heads = 4 if hidden % 4 == 0 and hidden >= 32 else 2
    cfg = OlmoeConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        num_experts=4,
        num_experts_per_tok=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    return OlmoeForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def tiny_olmoe():
    """A random 3-layer, 4-expert OLMoE with a word tokenizer."""
    tok = train_word_tokenizer(["a b c d e f g h", "1 2 3 4 5 + ="])
    return random_olmoe(tok), tok


def local_checkpoint(tok, root: Path, hidden: int = 32, layers: int = 3, seed: int = 3) -> Path:
    """A random OLMoE for `tok` saved in `root/src`, brought in as the `local` checkpoint `root/c1`."""
    random_olmoe(tok, hidden=hidden, layers=layers, seed=seed).save_pretrained(root / "src")
    tok.save_pretrained(root / "src")
    checkpoints.materialize_folder(root / "src", root / "c1", "local", "1")
    return root / "c1"


@pytest.fixture(scope="session")
def sums_tok():
    """A word tokenizer of SUMS."""
    return train_word_tokenizer(SUMS)


@pytest.fixture(scope="session")
def sums_checkpoint(sums_tok, tmp_path_factory):
    """A random OLMoE for `sums_tok`, brought in as a local checkpoint."""
    return local_checkpoint(sums_tok, tmp_path_factory.mktemp("ckpt"))


def extract_sums(tok, checkpoint: Path, out: Path, device: str = "cpu") -> dict[str, str]:
    """`stages.extract_routing` of the SUMS samples (and their first 4 as the validation split) on
    `checkpoint`, domain "math", into `out`: the paths of the two sample tables it read ("samples",
    "validation") and of the routing, loss, vloss and routers files it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: str(out / f"{k}.parquet") for k in ("samples", "validation", "routing", "loss", "vloss")}
    paths["routers"] = str(out / "routers.safetensors")
    for split, texts in (("samples", SUMS), ("validation", SUMS[:4])):
        manifest = samples.build_manifest(texts, tok, "m", "math", split, len(texts), 0, 64)
        tables.write(manifest, paths[split], tables.SAMPLES_SCHEMA)
    settings = {
        "threads": 1,
        "device": device,
        "dtype": "float32",
        "batch_size": 5,
        "routing": "full",
        "max_tokens": 64,
    }
    stages.extract_routing(
        "m",
        "c1",
        str(checkpoint),
        {"math": paths["samples"]},
        {"math": paths["validation"]},
        {"math": paths["routing"]},
        {"math": paths["loss"]},
        {"math": paths["vloss"]},
        paths["routers"],
        settings,
        0,
    )
    return paths


def run_generate_eval(checkpoint, test_set, out: Path, name: str, settings: dict, **tuning) -> tuple[dict, list[str]]:
    """`stages.run_lm_eval` of one local `generate` task (math_generate over `test_set`) on
    `checkpoint`, writing under `out`: (its results JSON, the predictions in doc order)."""
    json_out, items_out = out / f"{name}.json", out / f"{name}.samples.parquet"
    stages.run_lm_eval(
        "m",
        "s1",
        str(checkpoint),
        [{"name": "math_generate", "domain": "math", "task": "generate", "num_fewshot": 0, "limit": None}],
        {"math": str(test_set)},
        {"math_generate": str(json_out)},
        {"math_generate": str(items_out)},
        str(out / f"cache_{name}"),
        settings,
        0,
        **tuning,
    )
    predictions = tables.read(items_out, tables.EVAL_ITEMS_SCHEMA).sort("doc_id")["prediction"].to_list()
    return json.loads(json_out.read_text()), predictions
