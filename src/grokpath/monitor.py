"""The two monitors of a model in memory, while it trains: pathway distance and consistency.

One call, `measure`, runs the workflow's own code on a model object (any supported MoE family),
its tokenizer and a fixed sample set: routing capture and per-sample loss from
`extraction.iter_batches`, pathways and consistency from `pathways`, pairwise distances from
`distance`. With the same checkpoint, samples and settings it gives the numbers the workflow's
tables hold (the routing weights are rounded to float32 as the routing tables store them).

Three ways to use it while training:
- `MonitorHook` for a hand-written loop: `hook.step(step)` measures every `every` steps;
- `GrokpathCallback`, a `transformers.TrainerCallback` that reports through the Trainer's
  logging (TensorBoard, W&B or whatever the user configured);
- `grokpath monitor CHECKPOINT --samples FILE` on a saved checkpoint (cli.py).

Cost: one forward pass over the samples (no gradients) plus n(n-1)/2 edit distances; with the
default 64 samples it is a small fraction of a training step's forward and backward on a
realistic batch. Pick the sample count for the noise you accept in the mean distance (its
standard error falls like 1/sqrt(pairs)) and `every` so that the time spent stays under a few
per cent (`MonitorHook.seconds` against your step time).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from grokpath import distance, extraction, pathways

log = logging.getLogger(__name__)

GROUP_ALL = "all"


@dataclass
class Monitors:
    """What `measure` returns. `distance` is the mean pairwise pathway distance over all samples
    (group "all"), `group_distance` per given group too; `consistency` and `loss` are means over
    the samples, `per_sample` the values behind them (sorted by sample id)."""

    distance: float
    consistency: float
    loss: float
    n_samples: int
    n_pairs: int
    group_distance: dict[str, float] = field(default_factory=dict)
    per_sample: dict[str, list] = field(default_factory=dict)
    step: int | None = None

    def metrics(self, prefix: str = "grokpath/") -> dict[str, float]:
        """Flat scalars for a logger."""
        out = {
            f"{prefix}pathway_distance": self.distance,
            f"{prefix}pathway_consistency": self.consistency,
            f"{prefix}sample_loss": self.loss,
        }
        for name, value in self.group_distance.items():
            if name != GROUP_ALL:
                out[f"{prefix}pathway_distance/{name}"] = value
        return out


def measure(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str] | None = None,
    *,
    token_ids: Sequence[Sequence[int]] | None = None,
    sample_ids: Sequence[str] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    tau: float = 0.7,
    level: str = "char",
    max_pairs: int | None = 500_000,
    seed: int = 0,
    batch_size: int = 64,
    routing: str = "full",
    step: int | None = None,
    progress: bool = True,
) -> Monitors:
    """Pathway distance (overall and per group), consistency and per-sample loss of `model`.

    Give `texts` (tokenized here) or `token_ids` (e.g. from a samples table, to match the
    workflow exactly); `sample_ids` name the samples (default s000000, s000001, ...), `groups`
    maps a group name to member sample ids. The model is left in the train/eval mode it was in.
    `progress=False`: no progress bar for the forward pass (`MonitorHook` and `GrokpathCallback`,
    inside a training loop that shows its own).
    """
    if (texts is None) == (token_ids is None):
        raise ValueError("give either texts or token_ids")
    ids = [list(tokenizer(t)["input_ids"]) for t in texts] if texts is not None else [list(x) for x in token_ids]
    if len(ids) < 2:
        raise ValueError(f"the monitors need at least 2 samples, got {len(ids)}")
    names = list(sample_ids) if sample_ids is not None else [f"s{i:06d}" for i in range(len(ids))]
    if len(names) != len(ids) or len(set(names)) != len(names):
        raise ValueError("sample_ids must name every sample once")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    try:
        by_id: dict[str, tuple[np.ndarray, float, int]] = {}
        batches = extraction.iter_batches(
            model, ids, names, pad_id, batch_size, routing=routing, desc="monitor", progress=progress
        )
        for b in batches:
            probs = b.probs.astype(np.float32)  # what the routing tables store
            for j, sid in enumerate(b.sample_ids):
                by_id[sid] = (probs[j], float(b.loss[j]), int(b.n_tokens[j]))
        routers = extraction.router_weights(model)
    finally:
        model.train(was_training)
    order = sorted(by_id)
    weights = np.stack([by_id[s][0] for s in order])
    layers = [i for i, _ in extraction.moe_gates(model)]
    router_mats = np.stack([routers[f"layer{i}"].numpy() for i in layers])
    serialized = [pathways.pathway(w, tau)[0] for w in weights]
    cons, _ = pathways.consistency(weights, router_mats)
    strings = dict(zip(order, serialized, strict=True))
    members = {GROUP_ALL: order, **{k: sorted(v) for k, v in (groups or {}).items()}}
    group_distance, n_pairs = {}, 0
    for name, group in members.items():
        unknown = [s for s in group if s not in strings]
        if unknown:
            raise ValueError(f"group {name!r} names samples that were not measured: {unknown[:3]}")
        encoded = [distance.encode(strings[s], level) for s in group]
        used, mean = distance.mean_pairwise(encoded, max_pairs, seed=zlib.crc32(f"{seed}/{name}".encode()))
        group_distance[name] = mean
        if name == GROUP_ALL:
            n_pairs = used
    losses = [by_id[s][1] for s in order]
    return Monitors(
        distance=group_distance[GROUP_ALL],
        consistency=float(np.mean(cons)),
        loss=float(np.mean(losses)),
        n_samples=len(order),
        n_pairs=n_pairs,
        group_distance=group_distance,
        per_sample={"sample_id": order, "loss": losses, "consistency": cons.tolist(), "pathway": serialized},
        step=step,
    )


class MonitorHook:
    """For a hand-written training loop: `hook.step(global_step)` after each optimizer step
    measures the monitors every `every` steps and returns them (None in between); `history`
    keeps every measurement and `seconds` the time spent measuring."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], every: int, **settings: Any):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.model, self.tokenizer, self.every, self.settings = model, tokenizer, every, settings
        self.token_ids = [list(tokenizer(t)["input_ids"]) for t in texts]  # once, not every time
        self.history: list[Monitors] = []
        self.seconds = 0.0

    def step(self, global_step: int, model: torch.nn.Module | None = None) -> Monitors | None:
        if global_step % self.every:
            return None
        start = time.perf_counter()
        # no progress bar per pass: the training loop shows its own (settings may ask for one)
        settings = {"progress": False, **self.settings}
        result = measure(model or self.model, self.tokenizer, token_ids=self.token_ids, step=global_step, **settings)
        self.seconds += time.perf_counter() - start
        self.history.append(result)
        log.info(
            "step %d: pathway distance %.3f, consistency %.4f, sample loss %.4f",
            global_step,
            result.distance,
            result.consistency,
            result.loss,
        )
        return result


class GrokpathCallback(TrainerCallback):
    """Measure the monitors every `every` optimizer steps during `Trainer.train()`.

    Pass the Trainer (`callback.trainer = trainer`, or `GrokpathCallback(..., trainer=trainer)`)
    so the values go through `trainer.log` and reach every logger it reports to; without it they
    are appended to `state.log_history`. `history` keeps the `Monitors` objects.
    """

    def __init__(
        self, tokenizer: Any, texts: Sequence[str], every: int = 100, trainer: Any = None, **settings: Any
    ) -> None:
        self.hook: MonitorHook | None = None
        self.tokenizer, self.texts, self.every, self.settings = tokenizer, list(texts), every, settings
        self.trainer = trainer

    @property
    def history(self) -> list[Monitors]:
        return self.hook.history if self.hook else []

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        if self.hook is None:
            self.hook = MonitorHook(model, self.tokenizer, self.texts, self.every, **self.settings)
        result = self.hook.step(state.global_step, model)
        if result is not None and state.is_world_process_zero:
            metrics = result.metrics()
            if self.trainer is not None:
                self.trainer.log(metrics)
            else:
                state.log_history.append({**metrics, "step": state.global_step})
        return control
