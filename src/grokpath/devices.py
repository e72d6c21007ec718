"""The torch device a stage runs on, checked when the job starts, before it fetches or loads a
model: a config written for a GPU cluster (`device: cuda`) that runs on a node without one would
otherwise fail, or fall back to hours on CPUs, only after the checkpoint was downloaded."""

from __future__ import annotations

import socket

# What a config's `device` keys may name (the schema's pattern, checked with the config on any machine,
# allows the same); whether this machine has it is `check`'s question.
KINDS = ("cpu", "cuda", "mps", "xpu")


def check(device: str, key: str) -> str:
    """`device` if this machine has it, else one ValueError naming the config `key`, the device
    asked for and the ones this machine has."""
    import torch

    kind, _, index = device.partition(":")
    if kind not in KINDS or (index and (not index.isdigit() or kind in ("cpu", "mps"))):
        raise ValueError(f"config key {key}: {device!r} is not a device; allowed: cpu, cuda, cuda:N, mps, xpu, xpu:N")
    if kind == "cpu":
        return device
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif kind == "mps":
        count = int(torch.backends.mps.is_available())
    else:
        count = torch.xpu.device_count() if torch.xpu.is_available() else 0
    if int(index or 0) < count:
        return device
    have = f"{count} {kind} device(s)" if count else f"no {kind} device"
    if kind == "cuda" and torch.version.cuda is None:
        have += f" (torch {torch.__version__} was built without CUDA)"
    raise ValueError(
        f"config key {key}: {device!r}, but this machine ({socket.gethostname()}) has {have}; set it to 'cpu', "
        "or run the job where the device is (profiles/slurm: the rule's `gpu` resource)"
    )
