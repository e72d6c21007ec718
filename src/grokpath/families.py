"""The MoE families grokpath reads routing from, and how each scores its experts. Light (no
torch): a checkpoint's family is checked when it is downloaded, long before a stage loads it."""

from __future__ import annotations

import json
from pathlib import Path

# How each family turns router logits into expert scores: the "full" routing distribution is that
# score over all experts, normalised to sum to one. DeepSeek-V3 scores experts with a sigmoid
# (its bias correction and group limits only choose the top-k, so they stay out of the scores).
SCORING = {
    "olmoe": "softmax",
    "mixtral": "softmax",
    "qwen2_moe": "softmax",
    "qwen3_moe": "softmax",
    "deepseek_v2": "softmax",
    "deepseek_v3": "sigmoid",
    "gpt_oss": "softmax",
}
SUPPORTED = tuple(SCORING)


def check_folder(folder: str | Path) -> str:
    """The family of a checkpoint folder (its config.json's model_type), or one ValueError naming
    the folder, its model type and the supported families."""
    config = Path(folder) / "config.json"
    try:
        family = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"checkpoint {folder}: cannot read the model type from {config.name}: {error}") from None
    if family not in SCORING:
        raise ValueError(
            f"checkpoint {folder}: model type {family!r} ({config.name}) is not a supported MoE family; "
            f"supported: {', '.join(SUPPORTED)} (grokpath reads the routing of their routers)"
        )
    return family
