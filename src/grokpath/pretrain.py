"""Train the embedded default: a tiny OLMoE-architecture model on generated multi-domain data.

The model is built from a transformers config (no hub access), trained from scratch with
deterministic kernels on the config's torch threads (2 in the default config: the thread count
is part of the series), and saved in Hugging Face format at spaced steps. Held-out accuracy and
training loss are measured along the way so that the run itself shows whether the series groks:
training loss flat long before test accuracy rises.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from tqdm import tqdm
from transformers import OlmoeConfig, OlmoeForCausalLM, PreTrainedTokenizerFast

from grokpath import io, synthetic, tables
from grokpath.extraction import pad_batch
from grokpath.monitor import MonitorHook
from grokpath.tokenizer import train_word_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_experts: int = 8
    top_k: int = 2


@dataclass(frozen=True)
class DataSpec:
    modulus: int = 97
    math_train_fraction: float = 0.4
    code_programs: int = 6000
    code_statements: int = 3
    code_train_fraction: float = 0.6
    kb_entities: int = 100
    kb_two_hop_train_fraction: float = 0.5
    n_test: int = 400
    n_validation: int = 200


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    max_steps: int = 1100
    save_every: int = 50
    eval_every: int = 25
    lr: float = 1e-3
    weight_decay: float = 1.0
    late_weight_decay: float | None = 4.0
    late_from_step: int = 500
    decay_output: bool = False
    warmup_steps: int = 10
    batch_size: dict[str, int] = field(default_factory=lambda: {"math": 512, "code": 32, "commonsense": 32})
    threads: int = 1
    answer_weight: dict[str, float] = field(default_factory=lambda: {"math": 30.0, "code": 30.0, "commonsense": 30.0})
    model: ModelShape = ModelShape()
    data: DataSpec = DataSpec()
    loss_weight: dict[str, float] = field(default_factory=lambda: {"math": 1.0, "code": 0.2, "commonsense": 0.2})
    grokfast_alpha: float = 0.98
    grokfast_lambda: float = 2.0
    converged_tolerance: float = 0.05
    accuracy_threshold: float = 0.9
    monitor_every: int = 25  # 0: no live monitors
    monitor_samples: int = 64
    # its own tau: a change of the workflow's tau must not retrain the series
    monitor_tau: float = 0.7

    @classmethod
    def from_dict(cls, raw: dict) -> PretrainConfig:
        raw = dict(raw)
        model = ModelShape(**raw.pop("model", {}))
        data = DataSpec(**raw.pop("data", {}))
        return cls(model=model, data=data, **raw)


def generate_domains(spec: DataSpec, seed: int) -> dict[str, synthetic.DomainData]:
    return {
        "math": synthetic.modular_arithmetic(
            seed, spec.modulus, spec.math_train_fraction, spec.n_test, spec.n_validation
        ),
        "code": synthetic.program_execution(
            seed,
            spec.code_programs,
            spec.code_statements,
            spec.code_train_fraction,
            spec.n_test,
            spec.n_validation,
        ),
        "commonsense": synthetic.knowledge_base(
            seed, spec.kb_entities, spec.kb_two_hop_train_fraction, spec.n_test, spec.n_validation
        ),
    }


def build_model(shape: ModelShape, tokenizer: PreTrainedTokenizerFast, seed: int) -> OlmoeForCausalLM:
    config = OlmoeConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        num_experts=shape.num_experts,
        num_experts_per_tok=shape.top_k,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return OlmoeForCausalLM(config)


def _param_groups(model: torch.nn.Module, weight_decay: float, decay_output: bool) -> list[dict]:
    """Weight decay on every parameter but (unless asked) the output head.

    Without decay on the output head the model keeps predicting the fixed tokens ("+", "=")
    confidently while a strong late decay drives the rest of the network to generalize, so the
    per-sample training loss stays flat through grokking, as in the paper.
    """
    decayed, plain = [], []
    for name, param in model.named_parameters():
        (plain if not decay_output and name.startswith("lm_head") else decayed).append(param)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def _lm_loss(
    model: OlmoeForCausalLM, ids: torch.Tensor, mask: torch.Tensor, answer_weight: float = 1.0
) -> torch.Tensor:
    """Per-sequence weighted mean next-token NLL over real tokens (`_sequence_nll`)."""
    # use_cache=False: a KV cache is only of use to generation; building it costs time each step
    return _sequence_nll(model(input_ids=ids, attention_mask=mask, use_cache=False).logits, ids, mask, answer_weight)


def _sequence_nll(
    logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, answer_weight: float = 1.0
) -> torch.Tensor:
    """Per-sequence weighted mean next-token NLL over real tokens, from the model's logits.

    Every sequence ends "<answer> <eos>"; `answer_weight` > 1 up-weights the answer token, so the
    few answer tokens are not drowned by the unpredictable operands (with weight 1 the tiny model
    learns the answers only as fast as it generalises, and never memorizes first).
    """
    logits = logits[:, :-1].float()
    target = ids[:, 1:]
    weights = mask[:, 1:].float()
    if answer_weight != 1.0:
        answer_pos = mask.sum(1) - 3  # predicting position n-2 (the answer) from n-3
        weights[torch.arange(len(ids)), answer_pos] = answer_weight
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    return (nll * weights).sum(1) / weights.sum(1)


@dataclass(frozen=True)
class _EvalSet:
    """Items tokenized and padded once for every evaluation of the run, with the position whose
    next-token prediction is the answer. With the training accuracy read from the training loss's
    pass (`answered`), an evaluation of the default series takes 0.58x its time (0.86 -> 0.50 s a
    step-500 checkpoint, side by side): tokenizing the items at each of its 45 evaluations and a
    third forward pass per domain cost ~16 s of its pretraining, for the same trajectory."""

    ids: torch.Tensor  # [N, T] right-padded
    mask: torch.Tensor  # [N, T] 1 on real tokens
    last: torch.Tensor  # [N] position of each row's last prompt token
    answers: torch.Tensor  # [N] the answer's token id

    @classmethod
    def prompts(cls, tokenizer: PreTrainedTokenizerFast, items: list[synthetic.TestItem]) -> _EvalSet:
        """Each item's prompt alone: the answer is predicted at its last token."""
        ids, mask = pad_batch([tokenizer(it.prompt)["input_ids"] for it in items], tokenizer.pad_token_id)
        return cls(ids, mask, mask.sum(1) - 1, _answer_ids(tokenizer, items))

    @classmethod
    def answered(cls, tokenizer: PreTrainedTokenizerFast, items: list[synthetic.TestItem]) -> _EvalSet:
        """Each item as trained, "<prompt> <answer> <eos>": one forward pass gives both its loss and
        (the model being causal) the prediction that `prompts` would give at the prompt's last
        token. Refused where the answer is not the one token right after the prompt's."""
        eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        prompts = [tokenizer(it.prompt)["input_ids"] for it in items]
        rows = [tokenizer(f"{it.prompt} {it.answer}")["input_ids"] + [eos] for it in items]
        answers = _answer_ids(tokenizer, items)
        for it, prompt, row, answer in zip(items, prompts, rows, answers.tolist(), strict=True):
            if row[: len(prompt)] != prompt or row[len(prompt)] != answer:
                raise ValueError(f"the answer {it.answer!r} of {it.prompt!r} is not one token after the prompt's")
        ids, mask = pad_batch(rows, pad)
        return cls(ids, mask, torch.tensor([len(p) - 1 for p in prompts]), answers)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """Greedy one-token answers [N]: the argmax at each row's last prompt position."""
        return logits[torch.arange(len(self.ids)), self.last].argmax(-1)

    def accuracy(self, logits: torch.Tensor) -> float:
        return float((self.predictions(logits) == self.answers).float().mean())


def _answer_ids(tokenizer: PreTrainedTokenizerFast, items: list[synthetic.TestItem]) -> torch.Tensor:
    return torch.tensor([tokenizer.convert_tokens_to_ids(it.answer) for it in items])


def amplify_slow_gradients(model: torch.nn.Module, ema: dict[str, torch.Tensor], alpha: float, lamb: float) -> None:
    """Grokfast-EMA (Lee et al. 2024): add lamb x an exponential moving average of past gradients.

    Amplifying the slow gradient component shortens the memorization-to-generalization delay on
    modular arithmetic many-fold, which is what lets the default series grok within minutes.
    """
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        grad = param.grad.detach()
        if name in ema:
            ema[name].mul_(alpha).add_(grad, alpha=1 - alpha)
        else:
            ema[name] = grad.clone()
        param.grad.add_(ema[name], alpha=lamb)


def first_sustained(steps: list[int], ok: list[bool]) -> int | None:
    """The earliest step from which `ok` holds at every later step (None if it never settles)."""
    found = None
    for s, flag in zip(reversed(steps), reversed(ok), strict=True):
        if not flag:
            break
        found = s
    return found


# Evaluations in the rolling median that `summarize_grokking` reads: 5, so a spike of up to two
# evaluations does not hide a settled curve. The embedded series' late weight decay and slow-gradient
# amplification make the math loss spike for ~50 steps (two evaluations) near step 1025; with a
# median of three that spike moved "loss flat" from step ~475 to 1075, after the held-out rise.
_SMOOTH_EVALUATIONS = 5


def _smooth(values: pl.Series) -> np.ndarray:
    """Rolling median of `_SMOOTH_EVALUATIONS` evaluations; the ends keep their raw values."""
    return values.rolling_median(_SMOOTH_EVALUATIONS, center=True).fill_null(values).to_numpy()


def summarize_grokking(trajectory: pl.DataFrame, tolerance: float, threshold: float) -> dict[str, dict]:
    """Per domain: when training loss went flat and when train and held-out accuracy rose.

    Each is the first evaluation from which the condition holds at every later one, on a rolling
    median of five evaluations (`_smooth`) so that a spike of one or two evaluations does not hide
    a settled curve.
    """
    out = {}
    for (domain,), df in trajectory.sort("step").group_by(["domain"], maintain_order=True):
        steps = df["step"].to_list()

        loss = _smooth(df["train_loss"])
        plateau = float(np.median(loss[-max(3, len(loss) // 5) :]))  # the final level, robust to the last point
        converged = first_sustained(steps, list(np.abs(loss - plateau) <= tolerance))
        fitted = first_sustained(steps, list(_smooth(df["train_accuracy"]) >= threshold))
        rose = first_sustained(steps, list(_smooth(df["test_accuracy"]) >= threshold))
        out[str(domain)] = {
            "loss_converged_step": converged,
            "train_accuracy_rise_step": fitted,
            "test_accuracy_rise_step": rose,
            "final_train_loss": float(df["train_loss"][-1]),
            "final_train_accuracy": float(df["train_accuracy"][-1]),
            "final_test_accuracy": float(df["test_accuracy"][-1]),
            "grokking_gap_steps": (rose - converged) if (rose is not None and converged is not None) else None,
            "tolerance": tolerance,
            "accuracy_threshold": threshold,
        }
    return out


def _monitor_hooks(
    cfg: PretrainConfig, model: torch.nn.Module, tokenizer: Any, data: dict[str, synthetic.DomainData]
) -> dict[str, MonitorHook]:
    """A hook per domain on a fixed, seeded choice of its training texts (what it memorizes)."""
    if cfg.monitor_every <= 0:
        return {}
    rng = np.random.default_rng([cfg.seed, 97])
    hooks = {}
    for name, dom in data.items():
        pick = np.sort(rng.choice(len(dom.train), min(cfg.monitor_samples, len(dom.train)), replace=False))
        hooks[name] = MonitorHook(
            model, tokenizer, [dom.train[i] for i in pick], cfg.monitor_every, tau=cfg.monitor_tau
        )
    return hooks


def _write_data(data: dict[str, synthetic.DomainData], out: Path) -> None:
    for name, dom in data.items():
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        io.write_jsonl(d / "train.jsonl", [{"text": t} for t in dom.train])
        io.write_jsonl(d / "validation.jsonl", [{"text": t} for t in dom.validation])
        io.write_jsonl(d / "test.jsonl", [asdict(t) | {"choices": list(t.choices)} for t in dom.test])


# Deterministic mode also fills every fresh tensor with NaN, to expose reads of uninitialized
# memory: ~5% of a training step's CPU time. Every kernel of the training step writes its output
# whole, so the series comes out bit-for-bit the same without the fills (tested, and compared
# checkpoint by checkpoint by benchmarks/pretraining.py).
_FILL_UNINITIALIZED_MEMORY = False


@contextmanager
def _torch_settings(threads: int) -> Iterator[None]:
    """Pretraining's torch settings (its thread count, deterministic kernels), put back as they
    were after the run: a test, a benchmark or a notebook goes on with its own."""
    deterministic = torch.utils.deterministic
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        deterministic.fill_uninitialized_memory,
    )
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    deterministic.fill_uninitialized_memory = _FILL_UNINITIALIZED_MEMORY
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        deterministic.fill_uninitialized_memory = saved[3]


def pretrain(
    cfg: PretrainConfig,
    model_name: str,
    ckpt_dir: Path,
    data_dir: Path,
    trajectory_path: Path,
    summary_path: Path,
    live_path: Path | None = None,
) -> dict[str, dict]:
    """Train the series: checkpoints (HF format) under `ckpt_dir`/step{N:06d}, the generated data
    under `data_dir`/{domain}/, the measured trajectory and its grokking summary; with `live_path`,
    the pathway monitors measured during training every `monitor_every` steps on a fixed set of
    `monitor_samples` training texts per domain (grokpath.monitor, the workflow's own code). That
    the data holds what the config's domains take is checked with the config
    (`synthetic.split_sizes`)."""
    with _torch_settings(cfg.threads):
        data = generate_domains(cfg.data, cfg.seed)
        for key in ("batch_size", "answer_weight", "loss_weight"):
            if set(getattr(cfg, key)) != set(data):
                raise ValueError(f"{key} must name every domain {sorted(data)}, got {sorted(getattr(cfg, key))}")
        vocab_texts = [t for d in data.values() for t in d.train + d.validation]
        vocab_texts += [f"{it.prompt} {' '.join(it.choices)}" for d in data.values() for it in d.test]
        tokenizer = train_word_tokenizer(vocab_texts)
        _write_data(data, data_dir)
        model = build_model(cfg.model, tokenizer, cfg.seed)
        log.info("model: %d parameters, vocab %d", sum(p.numel() for p in model.parameters()), len(tokenizer))

        eos = tokenizer.eos_token_id
        encoded = {name: [tokenizer(t)["input_ids"] + [eos] for t in dom.train] for name, dom in data.items()}
        rng = np.random.default_rng([cfg.seed, 99])
        eval_rng = np.random.default_rng([cfg.seed, 98])
        eval_items = {
            n: [
                d.train_items[i]
                for i in np.sort(eval_rng.choice(len(d.train_items), min(400, len(d.train_items)), replace=False))
            ]
            for n, d in data.items()
        }
        eval_train = {n: _EvalSet.answered(tokenizer, items) for n, items in eval_items.items()}
        eval_test = {n: _EvalSet.prompts(tokenizer, d.test) for n, d in data.items()}
        order = {n: rng.permutation(len(rows)) for n, rows in encoded.items()}
        cursor = dict.fromkeys(encoded, 0)

        opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay, cfg.decay_output), lr=cfg.lr, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup_steps))
        records: list[dict] = []
        ema: dict[str, torch.Tensor] = {}
        hooks = _monitor_hooks(cfg, model, tokenizer, data) if live_path is not None else {}
        live: list[dict] = []
        # seconds spent outside the training steps, in the trajectory's metadata (benchmarks/pretraining.py)
        outside = {"evaluation": 0.0, "save": 0.0}

        def watch(step: int) -> None:
            # inference only, no random numbers drawn: training is bit-for-bit the same without it
            for name, hook in hooks.items():
                m = hook.step(step)
                if m is not None:
                    live.append(
                        {
                            "model": model_name,
                            "step": step,
                            "domain": name,
                            "n_samples": m.n_samples,
                            "pathway_distance": m.distance,
                            "pathway_consistency": m.consistency,
                            "sample_loss": m.loss,
                        }
                    )

        def evaluate(step: int) -> None:
            began = time.perf_counter()
            model.eval()
            with torch.inference_mode():
                for name in data:
                    train, test = eval_train[name], eval_test[name]
                    logits = model(input_ids=train.ids, attention_mask=train.mask, use_cache=False).logits
                    test_logits = model(input_ids=test.ids, attention_mask=test.mask, use_cache=False).logits
                    records.append(
                        {
                            "model": model_name,
                            "step": step,
                            "domain": name,
                            "train_loss": float(_sequence_nll(logits, train.ids, train.mask).mean()),
                            "train_accuracy": train.accuracy(logits),
                            "test_accuracy": test.accuracy(test_logits),
                        }
                    )
            model.train()
            outside["evaluation"] += time.perf_counter() - began

        def save(step: int) -> None:
            # Written beside its place, then renamed into it: a step folder that exists is complete,
            # also for a caller outside Snakemake whose run was killed mid-save.
            began = time.perf_counter()
            target, partial = ckpt_dir / f"step{step:06d}", ckpt_dir / f".step{step:06d}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(partial, target)
            outside["save"] += time.perf_counter() - began

        start = time.perf_counter()
        evaluate(0)
        watch(0)
        save(0)
        model.train()
        for step in tqdm(range(1, cfg.max_steps + 1), desc=f"pretrain {model_name}", unit="step", mininterval=5):
            opt.zero_grad(set_to_none=True)
            total = torch.zeros(())
            for name, rows in encoded.items():
                bs = cfg.batch_size[name]
                if cursor[name] + bs > len(rows):
                    order[name] = rng.permutation(len(rows))
                    cursor[name] = 0
                idx = order[name][cursor[name] : cursor[name] + bs]
                cursor[name] += bs
                ids, mask = pad_batch([rows[i] for i in idx], tokenizer.pad_token_id)
                total = total + cfg.loss_weight[name] * _lm_loss(model, ids, mask, cfg.answer_weight[name]).mean()
            if cfg.late_weight_decay is not None and step == max(cfg.late_from_step, 1):  # 0: from the first step
                opt.param_groups[0]["weight_decay"] = cfg.late_weight_decay
            total.backward()
            if cfg.grokfast_lambda > 0:
                amplify_slow_gradients(model, ema, cfg.grokfast_alpha, cfg.grokfast_lambda)
            opt.step()
            sched.step()
            if step % cfg.eval_every == 0 or step % cfg.save_every == 0:
                evaluate(step)
                latest = records[-len(data) :]
                accuracy = {r["domain"]: (round(r["train_accuracy"], 3), round(r["test_accuracy"], 3)) for r in latest}
                log.info("step %d train/test accuracy %s", step, accuracy)
            watch(step)
            if step % cfg.save_every == 0:
                save(step)
        elapsed = time.perf_counter() - start
        log.info(
            "trained %d steps in %.1f s (evaluations %.1f s, checkpoint saves %.1f s)",
            cfg.max_steps,
            elapsed,
            outside["evaluation"],
            outside["save"],
        )
        if live_path is not None:
            spent = sum(h.seconds for h in hooks.values())
            log.info(
                "live monitors: %.1f s of %.1f s (%.2f%% overhead on the rest of the run)",
                spent,
                elapsed,
                100 * spent / max(elapsed - spent, 1e-9),
            )
            tables.write(
                tables.frame(live, tables.LIVE_MONITORS_SCHEMA),
                live_path,
                tables.LIVE_MONITORS_SCHEMA,
                seed=cfg.seed,
                tau=cfg.monitor_tau,
                every=cfg.monitor_every,
                monitor_seconds=spent,
                run_seconds=elapsed,
            )

        trajectory = tables.frame(records, tables.TRAJECTORY_SCHEMA)
        tables.write(
            trajectory,
            trajectory_path,
            tables.TRAJECTORY_SCHEMA,
            seed=cfg.seed,
            run_seconds=elapsed,
            evaluation_seconds=outside["evaluation"],
            save_seconds=outside["save"],
        )
        summary = summarize_grokking(trajectory, cfg.converged_tolerance, cfg.accuracy_threshold)
        io.write_json(summary_path, summary)
        return summary
