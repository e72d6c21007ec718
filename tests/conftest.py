import os

# The tests never reach the hub: models and data are built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch
from transformers import OlmoeConfig, OlmoeForCausalLM

from grokpath.tokenizer import train_word_tokenizer


@pytest.fixture(scope="session")
def tiny_olmoe():
    """A random 3-layer, 4-expert OLMoE with a word tokenizer (no hub)."""
    tok = train_word_tokenizer(["a b c d e f g h", "1 2 3 4 5 + ="])
    cfg = OlmoeConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_experts=4,
        num_experts_per_tok=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = OlmoeForCausalLM(cfg).eval()
    return model, tok
