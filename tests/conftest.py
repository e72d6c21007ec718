import os

# The tests never reach the hub: models and data are built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch
from transformers import OlmoeConfig, OlmoeForCausalLM

from grokpath.tokenizer import train_word_tokenizer


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
