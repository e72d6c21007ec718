"""Instruction tuning before evaluation (METHOD.md): LoRA with peft on the attention projections,
one adapter per domain family, merged into the checkpoint for evaluation.

The paper's settings are the defaults (rank 32, dropout 0.1, lr 5e-5, batch 4, max length 2048,
3 epochs, q/k/v projections); it leaves alpha, schedule and template unstated: alpha = 2 x rank,
a constant learning rate, and "prompt response" with the loss on the response tokens only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from grokpath.extraction import pad_batch

log = logging.getLogger(__name__)


def read_examples(rows: Sequence[Mapping[str, Any]], source: str) -> list[tuple[str, str]]:
    """(prompt, response) pairs from JSONL rows with string fields "prompt" and "response"."""
    out = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise ValueError(f"{source}: row {i} is a {type(row).__name__}, not an object with 'prompt' and 'response'")
        prompt, response = row.get("prompt"), row.get("response")
        if not isinstance(prompt, str) or not isinstance(response, str) or not response.strip():
            raise ValueError(f"{source}: row {i} needs string fields 'prompt' and a non-empty 'response'")
        out.append((prompt, response))
    if not out:
        raise ValueError(f"{source}: no instruction examples")
    return out


def _encode(tokenizer: Any, prompt: str, response: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of "prompt response" and labels that are -100 on the prompt (and past max_length)."""
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    full = list(tokenizer(f"{prompt} {response}")["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None:
        full.append(eos)
    full = full[:max_length]
    labels = [-100] * min(len(prompt_ids), len(full)) + full[len(prompt_ids) :]
    return full, labels


def lora_finetune(
    model: torch.nn.Module,
    tokenizer: Any,
    examples: list[tuple[str, str]],
    settings: Mapping[str, Any],
    seed: int,
) -> tuple[torch.nn.Module, list[float]]:
    """Train a LoRA adapter and return the merged model and the mean loss of each epoch."""
    from peft import LoraConfig, get_peft_model

    encoded = [_encode(tokenizer, p, r, settings["max_length"]) for p, r in examples]
    # An example whose prompt fills max_length has no response token left to learn from: all of
    # them would give a NaN loss and an unchanged "tuned" model.
    kept = [e for e in encoded if any(label != -100 for label in e[1])]
    if not kept:
        raise ValueError(
            f"no instruction example keeps a response token within instruction_tune.max_length="
            f"{settings['max_length']}: every prompt fills it; allowed: a max_length above the prompts' length"
        )
    if len(kept) < len(encoded):
        dropped = len(encoded) - len(kept)
        log.warning("%d of %d examples have no response token within max_length: left out", dropped, len(encoded))
    encoded = kept
    torch.manual_seed(seed)
    config = LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"] if settings.get("alpha") else 2 * settings["rank"],
        lora_dropout=settings["dropout"],
        target_modules=list(settings["target_modules"]),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 still reads a transformers attribute that 5.x renamed; harmless, not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    device = next(peft_model.parameters()).device
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings["lr"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rng = np.random.default_rng(seed)
    bs = settings["batch_size"]
    epoch_losses = []
    peft_model.train()
    for epoch in range(settings["epochs"]):
        order = rng.permutation(len(encoded))
        losses = []
        for start in tqdm(range(0, len(order), bs), desc=f"LoRA epoch {epoch + 1}", unit="batch", mininterval=5):
            batch = [encoded[i] for i in order[start : start + bs]]
            ids, mask = pad_batch([row for row, _ in batch], pad)
            labels, _ = pad_batch([lab for _, lab in batch], -100)
            loss = peft_model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device), use_cache=False
            ).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        epoch_losses.append(float(np.mean(losses)))
        log.info("LoRA epoch %d: mean loss %.4f", epoch + 1, epoch_losses[-1])
    merged = peft_model.merge_and_unload()
    merged.eval()
    return merged, epoch_losses
