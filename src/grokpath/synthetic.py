"""Generated pretraining data for the embedded default: three domains with different structure.

Every answer is a single word so that held-out accuracy is one forward pass (the argmax at the
last prompt position) and so that the same items work as lm-eval generation and multiple-choice
tasks. Everything is a pure function of the seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DOMAINS = ("math", "code", "commonsense")


@dataclass(frozen=True)
class TestItem:
    """A held-out question: the prompt, its one-word answer and distractors for multiple choice."""

    item_id: str
    prompt: str
    answer: str
    choices: tuple[str, ...]
    label: int


@dataclass
class DomainData:
    """One domain's corpus: what the model trains on, held-out test items and validation texts."""

    name: str
    train: list[str]
    test: list[TestItem]
    validation: list[str]
    train_items: list[TestItem] = field(default_factory=list)


def _choices(rng: np.random.Generator, answer: str, pool: list[str], n_choices: int) -> tuple[tuple[str, ...], int]:
    others = [w for w in pool if w != answer]
    picked = [others[i] for i in rng.choice(len(others), size=n_choices - 1, replace=False)]
    label = int(rng.integers(n_choices))
    picked.insert(label, answer)
    return tuple(picked), label


def _n_train(n_items: int, train_fraction: float) -> int:
    """How many of a domain's items `_split_items` trains on; the rest are held out."""
    return round(train_fraction * n_items)


# The data setting (config key pretrain.data.*) that sets the share of each domain's items trained on.
TRAIN_FRACTION_KEYS = {
    "math": "math_train_fraction",
    "code": "code_train_fraction",
    "commonsense": "kb_two_hop_train_fraction",
}


def split_sizes(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """What the generators make of the data settings (the config's pretrain.data keys), computed
    without generating anything: {domain: {"samples": training texts, "held_out": items held out,
    of which n_test become test items and n_validation validation texts}}. The config check reads
    it, so a domain that asks for more texts than the series' data has fails before the series
    trains (tests/test_synthetic.py compares it with what the generators make)."""
    items = {
        "math": data["modulus"] ** 2,
        "code": data["code_programs"],
        "commonsense": len(_RELATIONS) ** 2 * data["kb_entities"],
    }
    one_hop = {"math": 0, "code": 0, "commonsense": len(_RELATIONS) * data["kb_entities"]}  # facts, all trained
    sizes = {}
    for domain in DOMAINS:
        n_train = _n_train(items[domain], data[TRAIN_FRACTION_KEYS[domain]])
        sizes[domain] = {"samples": one_hop[domain] + n_train, "held_out": items[domain] - n_train}
    return sizes


def _split_items(
    rng: np.random.Generator,
    items: list[tuple[str, str]],
    train_fraction: float,
    n_test: int,
    n_validation: int,
    pool: list[str],
    prefix: str,
    n_choices: int,
) -> tuple[list[TestItem], list[TestItem], list[str]]:
    order = rng.permutation(len(items))
    n_train = _n_train(len(items), train_fraction)
    held_out = order[n_train:]
    if len(held_out) < n_test + n_validation:
        raise ValueError(
            f"{prefix}: only {len(held_out)} held-out items for n_test={n_test} + "
            f"n_validation={n_validation}; lower train_fraction or the set sizes"
        )

    def make(idx: np.ndarray) -> list[TestItem]:
        out = []
        for i in idx:
            prompt, answer = items[int(i)]
            choices, label = _choices(rng, answer, pool, n_choices)
            out.append(TestItem(f"{prefix}-{int(i)}", prompt, answer, choices, label))
        return out

    train = make(np.sort(order[:n_train]))
    test = make(np.sort(held_out[:n_test]))
    validation = [f"{items[int(i)][0]} {items[int(i)][1]}" for i in np.sort(held_out[n_test : n_test + n_validation])]
    return train, test, validation


def modular_arithmetic(
    seed: int, modulus: int, train_fraction: float, n_test: int, n_validation: int, n_choices: int = 4
) -> DomainData:
    """ "a + b = c" with c = (a + b) mod p; the split is over all p^2 pairs (Power et al. 2022)."""
    rng = np.random.default_rng([seed, 1])
    items = [(f"{a} + {b} =", str((a + b) % modulus)) for a, b in itertools.product(range(modulus), repeat=2)]
    pool = [str(v) for v in range(modulus)]
    train, test, validation = _split_items(rng, items, train_fraction, n_test, n_validation, pool, "math", n_choices)
    return DomainData("math", [f"{t.prompt} {t.answer}" for t in train], test, validation, train)


_VARIABLES = ("a", "b", "c", "d", "e")
_OPS = {"+": lambda x, y: (x + y) % 10, "-": lambda x, y: (x - y) % 10, "*": lambda x, y: (x * y) % 10}


def _program(rng: np.random.Generator, n_statements: int) -> tuple[str, str]:
    """A straight-line program over digits mod 10; the answer is the value it prints."""
    env: dict[str, int] = {}
    parts = []
    names = list(rng.permutation(_VARIABLES))
    for k in range(n_statements):
        name = names[k % len(names)]
        if not env or rng.random() < 0.3:
            value = int(rng.integers(10))
            parts.append(f"{name} = {value} ;")
        else:
            src = list(env)[int(rng.integers(len(env)))]
            op = list(_OPS)[int(rng.integers(len(_OPS)))]
            const = int(rng.integers(10))
            value = _OPS[op](env[src], const)
            parts.append(f"{name} = {src} {op} {const} ;")
        env[name] = value
    target = list(env)[int(rng.integers(len(env)))]
    return " ".join(parts) + f" print {target} ->", str(env[target])


def program_execution(
    seed: int,
    n_programs: int,
    n_statements: int,
    train_fraction: float,
    n_test: int,
    n_validation: int,
    n_choices: int = 4,
) -> DomainData:
    """A small program-like language; generalising means executing programs never seen."""
    rng = np.random.default_rng([seed, 2])
    seen: dict[str, str] = {}
    # Few statements allow few distinct programs (one statement: 50): give up once draws stop
    # finding new ones, far past where the last of n_programs would turn up by chance.
    stale, patience = 0, 50 * n_programs + 10_000
    while len(seen) < n_programs:
        prompt, answer = _program(rng, n_statements)
        if prompt not in seen:
            seen[prompt], stale = answer, 0
            continue
        stale += 1
        if stale > patience:
            raise ValueError(
                f"config key pretrain.data.code_programs: {n_programs} distinct programs of {n_statements} "
                f"statement(s) cannot be generated (only {len(seen)} exist); allowed: at most {len(seen)}, "
                "or more code_statements"
            )
    items = sorted(seen.items())
    pool = [str(v) for v in range(10)]
    train, test, validation = _split_items(rng, items, train_fraction, n_test, n_validation, pool, "code", n_choices)
    return DomainData("code", [f"{t.prompt} {t.answer}" for t in train], test, validation, train)


_SYLLABLES = ("ka", "lo", "mi", "ru", "te", "zo", "pa", "ni", "su", "ve", "do", "ga")
_RELATIONS = ("mother", "teacher", "friend", "rival")


def knowledge_base(
    seed: int,
    n_entities: int,
    two_hop_train_fraction: float,
    n_test: int,
    n_validation: int,
    n_choices: int = 4,
) -> DomainData:
    """Entities linked by relations; one-hop facts are all trained, two-hop questions are split.

    Answering a held-out two-hop question needs composing two known facts (Wang et al. 2024).
    """
    rng = np.random.default_rng([seed, 3])
    names: list[str] = []
    for a, b, c in itertools.product(_SYLLABLES, repeat=3):
        names.append(a + b + c)
    names = [names[i] for i in np.sort(rng.choice(len(names), size=n_entities, replace=False))]
    facts = {(rel, ent): names[int(rng.integers(n_entities))] for rel in _RELATIONS for ent in names}
    one_hop = [f"the {rel} of {ent} is {obj}" for (rel, ent), obj in facts.items()]
    items = [
        (f"the {r2} of the {r1} of {ent} is", facts[(r2, facts[(r1, ent)])])
        for r1 in _RELATIONS
        for r2 in _RELATIONS
        for ent in names
    ]
    train, test, validation = _split_items(
        rng, items, two_hop_train_fraction, n_test, n_validation, names, "commonsense", n_choices
    )
    train_text = one_hop + [f"{t.prompt} {t.answer}" for t in train]
    order = rng.permutation(len(train_text))
    return DomainData("commonsense", [train_text[i] for i in order], test, validation, train)
