"""Routing capture: per sample and MoE layer, the token-averaged routing weights, plus the
per-sample loss, in one forward pass per batch.

The router's logits are captured with forward hooks on the gate modules (in transformers 5.x
`model.model.layers[i].mlp.gate` returns (logits, top-k weights, top-k ids)); `output_router_logits`
is not used because its semantics changed between versions. Padding never enters a number: pad
positions are masked out of the averages and the loss, and padding is on the right so causal
attention never lets a real token see one.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from grokpath.families import SCORING, SUPPORTED
from grokpath.samples import token_sha256

log = logging.getLogger(__name__)

ROUTING_MODES = ("full", "topk")
_ROUTER_NAMES = ("gate", "router")  # GPT-OSS calls its router `mlp.router`


@dataclass
class BatchResult:
    sample_ids: list[str]
    n_tokens: np.ndarray  # [B]
    loss: np.ndarray  # [B] mean next-token NLL
    probs: np.ndarray | None  # [B, L, K] token-averaged routing weights


# Ids gathered into one int32 array at a time by `TokenRows.from_rows` (256 KiB).
_PART_TOKENS = 2**16


@dataclass(frozen=True)
class TokenRows:
    """Rows of token ids in one flat int32 array with row offsets: 4 bytes per token.

    Python lists of ints take 8 bytes per id and 28 more per int object above 256 (every id at a
    real vocabulary): ~36 bytes per token, 740 MB for one paper-sized domain (10k samples of 2,048
    tokens) held through the whole pass, against 82 MB this way (benchmarks/extraction_memory.py)."""

    ids: np.ndarray  # int32 [total tokens]
    offsets: np.ndarray  # int64 [rows + 1]: row i is ids[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[int]]) -> TokenRows:
        """One pass over `rows` (a generator is fine), converted `_PART_TOKENS` ids at a time."""
        parts: list[np.ndarray] = []
        lengths: list[int] = []
        pending: list[int] = []
        for row in rows:
            lengths.append(len(row))
            pending.extend(row)
            if len(pending) >= _PART_TOKENS:
                parts.append(np.array(pending, dtype=np.int32))
                pending = []
        parts.append(np.array(pending, dtype=np.int32))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.concatenate(parts), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tolist(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    def pad(self, idx: np.ndarray, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows `idx` right-padded, as `pad_batch` pads them: (ids [B, T], mask [B, T]), both int64."""
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts  # not `self.lengths`: that is every row's, per batch
        mask = np.arange(lengths.max()) < lengths[:, None]
        ids = np.full(mask.shape, pad_id, dtype=np.int64)
        # the real tokens' positions in `self.ids`, row-major: one gather, no array per row
        ids[mask] = self.ids[(starts[:, None] + np.arange(mask.shape[1]))[mask]]
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


def moe_gates(model: torch.nn.Module) -> list[tuple[int, torch.nn.Module]]:
    """(layer index, router module) for every MoE layer; dense layers (DeepSeek's first ones) are skipped."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    gates = []
    for i, layer in enumerate(layers or []):
        mlp = getattr(layer, "mlp", None)
        for name in _ROUTER_NAMES:
            gate = getattr(mlp, name, None)
            weight = getattr(gate, "weight", None)
            if (
                isinstance(weight, torch.Tensor)
                and weight.ndim == 2
                and weight.shape[1] == hidden
                and weight.shape[0] > 1
            ):
                gates.append((i, gate))
                break
    if not gates:
        name = type(model).__name__
        raise ValueError(
            f"{name} has no MoE router (model.model.layers[i].mlp.gate or .router); supported families: "
            f"{', '.join(SUPPORTED)}"
        )
    return gates


def scoring(model: torch.nn.Module) -> str:
    """The family's scoring rule ("softmax" or "sigmoid"); unknown families are refused."""
    family = getattr(getattr(model, "config", None), "model_type", None)
    if family not in SCORING:
        raise ValueError(f"model type {family!r} is not a supported MoE family; supported: {', '.join(SUPPORTED)}")
    return SCORING[family]


def describe_moe(model: torch.nn.Module) -> dict[str, object]:
    """What the tables should record about the architecture: family, scoring rule, which layers
    are MoE (the only ones in pathways), which are dense, and whether shared experts exist (they
    are always used, so they are not part of any pathway)."""
    moe = [i for i, _ in moe_gates(model)]
    n_layers = len(model.model.layers)  # type: ignore[union-attr]
    shared = any(
        hasattr(getattr(layer, "mlp", None), attr)
        for layer in model.model.layers  # type: ignore[union-attr]
        for attr in ("shared_expert", "shared_experts")
    )
    return {
        "family": model.config.model_type,  # type: ignore[union-attr]
        "scoring": scoring(model),
        "moe_layers": moe,
        "dense_layers": [i for i in range(n_layers) if i not in moe],
        "shared_experts": shared,
    }


def router_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Each MoE layer's router weight matrix W_l [K, d] (row k = expert embedding v_{l,k})."""
    return {f"layer{i}": gate.weight.detach().float().cpu().contiguous() for i, gate in moe_gates(model)}


# Router outputs held by `_Capture` before they are reduced: 2^24 logits (64 MiB in float32, as
# much again while stacked), whatever the model, so memory stays bounded on wide or deep MoEs.
_HOLD = 2**24


class _Capture:
    """Forward hooks that keep each router's output, reduced to per-sample routing weights [B, K]
    after the forward pass, or as soon as the held logits pass `_HOLD` numbers: one stacked
    softmax and one batched matmul for all the layers held, instead of about six kernels per
    layer inside each hook, whose launches were most of the capture's cost on small models
    (benchmarks/routing_overhead.py)."""

    def __init__(self, gates: list[tuple[int, torch.nn.Module]], mode: str, score: str) -> None:
        self.mode, self.score = mode, score
        self.outputs: dict[int, torch.Tensor] = {}
        self._token_weights: torch.Tensor | None = None
        self._held: list[tuple[int, tuple[torch.Tensor, ...]]] = []
        self._n_held = 0
        self._handles = [g.register_forward_hook(self._hook(i)) for i, g in gates]

    def start(self, mask: torch.Tensor) -> None:
        """Before each forward pass: mask [B, T] (1 on real tokens) gives each real token of a row
        the weight 1 / n_real and every pad 0, so one batched matmul takes the token average."""
        m = mask.to(torch.float32)
        self._token_weights = (m / m.sum(1, keepdim=True)).unsqueeze(1)  # [B, 1, T]
        self.outputs.clear()
        self._held, self._n_held = [], 0

    def _hook(self, layer: int):
        def hook(_module: torch.nn.Module, _inp: object, out: tuple[torch.Tensor, ...]) -> None:
            assert self._token_weights is not None, "_Capture.start(mask) must run before each forward pass"
            self._held.append((layer, out))
            self._n_held += out[0].numel()
            if self._n_held >= _HOLD:
                self.reduce()

        return hook

    def reduce(self) -> dict[int, torch.Tensor]:
        """Reduce the held router outputs into `outputs` ({layer: [B, K]}) and return it."""
        w = self._token_weights
        if self._held and w is not None:
            b, t = w.shape[0], w.shape[2]
            layers = [layer for layer, _ in self._held]
            # [L, N, K] (the top-k weights and ids [L, N, k]): one kernel each for all layers
            parts = (0,) if self.mode == "full" else (0, 1, 2)
            stacked = [torch.stack([out[j].reshape(b * t, -1) for _, out in self._held]) for j in parts]
            per_token = _routing_weights(tuple(stacked), self.mode, self.score).view(len(layers), b, t, -1)
            averaged = torch.matmul(w.unsqueeze(0), per_token).squeeze(2)  # [L, B, K]
            self.outputs.update(zip(layers, averaged.unbind(0), strict=True))
        self._held, self._n_held = [], 0
        return self.outputs

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _exp_row_sums(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(exp(x), its sums over the last dim [..., 1]) without subtracting the row maxima, or None
    where that is not exact enough: a sum that overflowed (a value above ~88) or is below 1e-30
    (every value of a row below ~-69). The sums are one matrix-vector product with ones: on CPU,
    reductions over a short last dim (amax, sum) cost more than the exp itself."""
    e = torch.exp(x)
    sums = e @ x.new_ones(x.shape[-1], 1)
    return (e, sums) if _exact(sums) else None


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim (float32). torch's CPU kernel is about 5x slower than exp / sum
    below 16 classes (8-expert models: the embedded series, Mixtral), so those take exp and a
    product with ones (`_exp_row_sums`), or the max-subtracted two-pass form where that is unsafe."""
    if logits.shape[-1] >= 16 or logits.device.type != "cpu":
        return torch.softmax(logits, dim=-1)
    fast = _exp_row_sums(logits)
    if fast is not None:
        e, sums = fast
        return e.div_(sums)
    e = (logits - logits.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def _routing_weights(out: tuple[torch.Tensor, ...], mode: str, score: str = "softmax") -> torch.Tensor:
    """A router's output (logits [..., N, K], top-k weights, top-k ids) -> per-token weights [..., N, K] (float32)."""
    logits = out[0].float()
    if mode == "full" and score == "softmax":
        return _softmax(logits)
    if mode == "full":  # sigmoid scores, normalised into a distribution over experts
        sig = torch.sigmoid(logits)
        return sig / sig.sum(dim=-1, keepdim=True)
    # The sparse top-k weights the model actually mixed experts with, normalised to sum to one per
    # token like the full distribution: without it (OLMoE and Mixtral-style models that do not
    # renormalise, DeepSeek's scaling factor) tau would cut a mass that may never reach it.
    weights = out[1].float()
    weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.zeros_like(logits).scatter_(-1, out[2].long(), weights)


# Logits per loss call of `_sample_loss` (on a GPU, or for a model whose logits are not its output
# layer's alone; on the CPU `_HeadLoss` takes the loss), in whole rows of [T, V] (2^20: 4 MiB in
# float32), so the exp copy never doubles the logits: a bf16 batch of the paper's shape (16 x 2048
# tokens x 50,304 vocab) is 3.3 GB of logits; in one call its float32 copy and the log-softmax
# would add 13 GB more, a row at a time they add 0.8 GB.
_LOSS_CHUNK = 2**20


def _token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token NLL of each row of logits [n, V] (float32) for targets [n] (all valid ids).

    On CPU, log(exp(x) @ 1) - x[target] (`_exp_row_sums`) is about 30% faster than
    cross-entropy's log-softmax, which writes the whole [n, V] result; logits that make it
    inexact take cross-entropy."""
    if logits.device.type == "cpu":
        fast = _exp_row_sums(logits)
        if fast is not None:
            return fast[1].log_().sub_(logits.gather(1, targets.unsqueeze(1))).squeeze(1)
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def _sample_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over each row's real tokens, [B] (float32).

    Every position is scored against the next id (`roll`: a row's last position against its
    first, a pad against whatever follows) and only real targets are kept (`_real_target_mean`),
    so the NLL runs on contiguous [rows*T, V] views of the logits, no copy but the float32 one of
    `_LOSS_CHUNK` logits (or one row, where a row is more) at a time, in fewer kernels than
    shifting and masking the targets.
    """
    b, t, v = logits.shape
    targets = ids.roll(-1, 1)
    rows = max(1, _LOSS_CHUNK // (t * v))
    nll = torch.cat(
        [
            _token_nll(logits[r : r + rows].reshape(-1, v).float(), targets[r : r + rows].reshape(-1))
            for r in range(0, b, rows)
        ]
    )
    return _real_target_mean(nll.view(b, t), mask)


# Logits `_HeadLoss` computes at a time, in whole positions: at most 256 positions and 2^21 logits
# (8 MiB in float32): 256 positions at the default model's 300-token vocabulary (300 KB, in the
# caches) and at 8,192 (the larger benchmark config), 41 at OLMoE's 50,304.
_HEAD_ROWS = 256
_HEAD_LOGITS = 2**21


def _exact(sums: torch.Tensor) -> bool:
    """Whether sums of exp(x) taken without subtracting the row maxima are exact enough: none
    overflowed (a value above ~88) or is below 1e-30 (every value of a row below ~-69)."""
    low, high = torch.aminmax(sums)
    return low.item() >= 1e-30 and high.item() < float("inf")  # also False on NaN


class _HeadLoss:
    """The per-sample loss of a batch's final hidden states, the model's output layer run inside
    it, a chunk of positions at a time, into buffers kept for the whole pass.

    model(...) writes the whole batch's logits ([B, T, V], the pass's largest tensor: 151 MB for a
    batch of the larger benchmark config, 6.6 GB in float32 for 16 x 2,048 tokens at OLMoE's
    vocabulary), and the loss read them back and wrote their exp. Here no more than one chunk is
    held, its exp is taken in place, and the buffers are allocated once: fresh ones for each chunk
    of 256 positions cost page faults that made the pass 3x a bare one in bf16 at OLMoE's
    vocabulary. A chunk where exp without the max subtraction is inexact is computed again and goes
    through cross-entropy.

    Against the previous extraction, side by side (benchmarks/routing_overhead.py
    --baseline-extraction): the larger config 0.964x its time and a peak of 277 instead of 400
    MiB (the bare pass: 396); the default shape in bf16 at OLMoE's vocabulary 0.572x, 24 instead
    of 185 MiB, and faster than the bare pass (0.919x); the default model unchanged (0.98-1.0x)."""

    def __init__(self, head: torch.nn.Linear) -> None:
        self.head = head
        weight = head.weight
        v = weight.shape[0]
        self.rows = max(1, min(_HEAD_ROWS, _HEAD_LOGITS // v))
        self._logits = torch.empty(self.rows, v, dtype=weight.dtype, device=weight.device)
        self._float = self._logits if weight.dtype == torch.float32 else torch.empty(self.rows, v, device=weight.device)
        self._ones = torch.ones(v, 1, device=weight.device)

    def _logits_of(self, h: torch.Tensor) -> torch.Tensor:
        """The output layer's logits of hidden states h [n, d] as float32 [n, V], in the buffers."""
        z = self._logits[: h.shape[0]]
        torch.matmul(h, self.head.weight.T, out=z)
        if self.head.bias is not None:
            z += self.head.bias
        return z if self._float is self._logits else self._float[: h.shape[0]].copy_(z)

    def __call__(self, hidden: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`_sample_loss` of the output layer's logits of hidden [B, T, d] -> [B] (float32)."""
        b, t, d = hidden.shape
        n, step = b * t, self.rows
        flat = hidden.reshape(n, d)
        targets = ids.roll(-1, 1).reshape(n, 1)
        # Each chunk writes its target logits and sums of exp into the batch's vectors, checked and
        # turned into NLLs once per batch: per chunk, a check, a log and a concatenation were most
        # of the loss's cost at the default model's 300-token vocabulary (4-5 chunks per batch).
        picked = torch.empty(n, 1, device=hidden.device)
        sums = torch.empty(n, 1, device=hidden.device)
        for r in range(0, n, step):
            x = self._logits_of(flat[r : r + step])
            torch.gather(x, 1, targets[r : r + step], out=picked[r : r + step])
            torch.matmul(x.exp_(), self._ones, out=sums[r : r + step])
        inexact = [] if _exact(sums) else [r for r in range(0, n, step) if not _exact(sums[r : r + step])]
        nll = sums.log_().sub_(picked).view(b, t)
        for r in inexact:  # computed again, through cross-entropy (its exp was taken in place)
            nll.view(-1)[r : r + step] = torch.nn.functional.cross_entropy(
                self._logits_of(flat[r : r + step]), targets[r : r + step, 0], reduction="none"
            )
        return _real_target_mean(nll, mask)


def _real_target_mean(nll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of nll [B, T] over the positions whose next token is real (mask [B, T] is 1 on real tokens)."""
    keep = torch.nn.functional.pad(mask[:, 1:], (0, 1)).bool()
    # where, not a product with the mask: a non-finite pad position must not reach the sum
    return torch.where(keep, nll, 0.0).sum(1) / keep.sum(1)


def _supported(model: torch.nn.Module) -> bool:
    """Whether the model is of a family in `families.SUPPORTED`: decoder-only causal LMs whose
    logits are `lm_head(model.model(...))` (transformers 5)."""
    return getattr(getattr(model, "config", None), "model_type", None) in SCORING


def _output_layer(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The model's output layer where its logits are `lm_head(model.model(...).last_hidden_state)`,
    nothing else: the forward of every family in `families.SUPPORTED` (transformers 5); else None."""
    head, base = getattr(model, "lm_head", None), getattr(model, "model", None)
    if isinstance(head, torch.nn.Linear) and isinstance(base, torch.nn.Module) and _supported(model):
        return head
    return None


def _forward_loss(
    model: torch.nn.Module, head_loss: _HeadLoss | None, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """One batch's forward pass, returning only its per-sample loss [B] (float32).

    use_cache=False: nothing is generated, and building the KV cache cost ~3% of the default
    model's extraction (benchmarks/routing_overhead.py --baseline-extraction); at the paper's
    shape it would hold 4 GB (OLMoE-1B-7B, 16 x 2048 tokens in bf16). With `head_loss` (on the
    CPU) the output layer runs inside the loss, so the batch's logits are never held; elsewhere
    the model computes them and `_sample_loss` reads them (on an H200 at OLMoE-1B-7B's shape in
    bf16, extraction with that loss is 1.017x a bare pass: benchmarks/routing_overhead.py).

    The model gets no attention mask where its family is a supported one (`_supported`): batches are
    right-padded (`TokenRows.pad`) and those families attend causally, so no real token attends to
    a pad, and real tokens come out as they do with the mask (tests/test_families.py compares
    every family's padded batches with each sample alone). Without it the model builds no
    [B, 1, T, T] mask and takes the causal path of its attention: on the CPU the default model's
    bare pass takes 0.975-0.980x its time with the mask (benchmarks/routing_overhead.py, `unmasked`
    against `bare`). The mask still picks the real targets of the loss and the real tokens of the
    routing averages."""
    attention_mask = None if _supported(model) else mask  # supported families are all causal LMs
    if head_loss is not None:
        hidden = model.model(input_ids=ids, attention_mask=attention_mask, use_cache=False).last_hidden_state  # type: ignore[operator,union-attr]
        return head_loss(hidden, ids, mask)
    logits = model(input_ids=ids, attention_mask=attention_mask, use_cache=False).logits
    return _sample_loss(logits, ids, mask)


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows: (ids [B, T], mask [B, T]); the mask is 1 on real tokens."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = int(lengths.max())
    mask = (torch.arange(width) < lengths.unsqueeze(1)).long()
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    # One scatter in row-major order instead of a tensor per row.
    ids[mask.bool()] = torch.tensor(list(itertools.chain.from_iterable(rows)), dtype=torch.long)
    return ids, mask


def length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices grouped by similar length (stable), so padding stays small; longest batches first.

    Longest first, every later batch's buffers fit where the first ones' were freed. Shortest
    first, each wider batch found no hole to fit in and the heap grew batch after batch: 688-837
    MiB peak against 631-677 for 64k samples of the default model (benchmarks/extraction_memory.py);
    and a batch too large for a GPU fails first, not last."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)][::-1]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`. To a GPU it goes through pinned memory without waiting: a copy
    from pageable memory first waits for every kernel queued before it, so the host could not
    pad and launch the next batch while the GPU still runs this one."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """A device tensor's copy into pinned host memory, queued behind the kernels that compute it;
    read it only after the batch's event (`_Pending.ready`) has completed."""
    if t.device.type != "cuda":
        return t.cpu()
    return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)


def _queued_event(device: torch.device) -> torch.cuda.Event | None:
    """On a GPU, an event that completes once the work queued so far has run; None on the CPU."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record()
    return event


@dataclass
class _Pending:
    """A batch whose kernels and copies to the host are queued, not necessarily done."""

    idx: np.ndarray
    n_tokens: np.ndarray
    loss: torch.Tensor  # [B] float64, on the host once `ready` completes
    probs: torch.Tensor | None
    ready: torch.cuda.Event | None  # None on the CPU, where everything ran when it was called

    def result(self, sample_ids: list[str]) -> BatchResult:
        if self.ready is not None:
            self.ready.synchronize()
        return BatchResult(
            sample_ids=[sample_ids[i] for i in self.idx.tolist()],  # Python ints index a list 2.5x faster
            n_tokens=self.n_tokens,
            loss=self.loss.numpy(),
            probs=None if self.probs is None else self.probs.numpy(),
        )


def iter_batches(
    model: torch.nn.Module,
    token_ids: TokenRows | Sequence[Sequence[int]],
    sample_ids: list[str],
    pad_id: int,
    batch_size: int,
    routing: str | None = "full",
    desc: str = "extract",
    progress: bool = True,
) -> Iterator[BatchResult]:
    """Forward every sample once; yields per-batch losses and (if `routing`) routing weights.
    `progress=False` shows no progress bar and logs the pass at DEBUG level, for the monitors'
    passes inside a training loop (one bar per pass was most of the embedded pretraining's log).

    Each batch is yielded after the next one was launched: on a GPU, the caller's work on a
    batch (the Parquet tables) and the padding and launching of the next one run on the host
    while the GPU computes, instead of the GPU waiting for the host between batches."""
    if routing is not None and routing not in ROUTING_MODES:
        raise ValueError(f"routing must be one of {ROUTING_MODES}, got {routing!r}")
    rows = token_ids if isinstance(token_ids, TokenRows) else TokenRows.from_rows(token_ids)
    if len(rows) != len(sample_ids):
        raise ValueError(f"{len(rows)} token rows for {len(sample_ids)} sample ids")
    short = [sample_ids[i] for i in np.flatnonzero(rows.lengths < 2)[:5]]
    if short:
        raise ValueError(f"samples need at least 2 tokens for a loss; too short: {short}")
    gates = moe_gates(model) if routing else []
    score = scoring(model) if routing else "softmax"
    capture = _Capture(gates, routing, score) if routing else None
    device = next(model.parameters()).device
    if any(m.training for m in model.modules()):  # eval() sets every module: 0.1 ms per pass on the default model
        model.eval()
    start = time.perf_counter()
    pending: _Pending | None = None
    try:
        with (
            torch.inference_mode(),
            tqdm(total=len(rows), desc=desc, unit="sample", mininterval=5, disable=not progress) as bar,
        ):
            head = _output_layer(model) if device.type == "cpu" else None
            head_loss = _HeadLoss(head) if head is not None else None
            for idx in length_batches(rows.lengths, batch_size):
                ids, mask = rows.pad(idx, pad_id)
                n_tokens = mask.sum(1).numpy().astype(np.int32)  # on the host: no device sync
                ids, mask = to_device(ids, device), to_device(mask, device)
                if capture is not None:
                    capture.start(mask)
                loss = _forward_loss(model, head_loss, ids, mask).double()
                probs = None
                if capture is not None:
                    outputs = capture.reduce()
                    probs = torch.stack([outputs[i] for i, _ in gates], dim=1)
                    capture.outputs.clear()
                loss, probs = _to_host(loss), None if probs is None else _to_host(probs)
                batch = _Pending(idx, n_tokens, loss, probs, _queued_event(device))  # after the copies
                if pending is not None:
                    bar.update(len(pending.idx))
                    yield pending.result(sample_ids)
                pending = batch
            if pending is not None:
                bar.update(len(pending.idx))
                yield pending.result(sample_ids)
    finally:
        if capture is not None:
            capture.close()
    level = logging.INFO if progress else logging.DEBUG
    log.log(level, "%s: %d samples in %.1f s", desc, len(rows), time.perf_counter() - start)


def tokenize_checked(
    tokenizer: object,
    texts: Iterable[str],
    sample_ids: Sequence[str],
    expected_sha: Iterable[str],
    checkpoint: str,
    truncate_to: int | None = None,
) -> TokenRows:
    """Tokenize (cut to `truncate_to` tokens, as the manifest was with too_long: truncate) and
    verify every sample against the frozen manifest's token hashes. Texts and hashes are read one
    at a time (a table's columns can be passed as they are) and the ids kept as `TokenRows`."""
    bad: list[str] = []

    def checked() -> Iterator[list[int]]:
        for sid, text, sha in zip(sample_ids, texts, expected_sha, strict=True):
            row = list(tokenizer(text)["input_ids"])[:truncate_to]  # type: ignore[operator]
            if token_sha256(row) != sha:
                bad.append(sid)
            yield row

    rows = TokenRows.from_rows(checked())
    if bad:
        raise ValueError(
            f"checkpoint {checkpoint}: its tokenizer gives different token ids than the sample manifest "
            f"for {len(bad)} of {len(rows)} samples (first: {bad[:3]}); the series must share one tokenizer"
        )
    return rows


def load_tokenizer(path: str | Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_model(path: str | Path, device: str = "cpu", dtype: str = "float32") -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)


def load_checkpoint(path: str | Path, device: str = "cpu", dtype: str = "float32") -> tuple[torch.nn.Module, object]:
    return load_model(path, device, dtype), load_tokenizer(path)
