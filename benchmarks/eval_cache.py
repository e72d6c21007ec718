"""Evaluation cache: a second run of an unchanged evaluation sends zero requests to the model.

Runs both local task kinds (generate: greedy answers; choice: log-likelihoods) on one model
through `grokpath.evaluation.evaluate` (lm-eval in-process, per-checkpoint response cache) twice
with the same cache, then once with a fresh cache, counting the model's forward passes with a
hook. Prints a table and, as its last line, one JSON object with the figures.

    python benchmarks/eval_cache.py [--items 200] [--hidden 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from conftest import random_olmoe  # noqa: E402

from grokpath import evaluation  # noqa: E402
from grokpath.tokenizer import train_word_tokenizer  # noqa: E402


def make_items(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        a, b = rng.randrange(97), rng.randrange(97)
        answer = str((a + b) % 97)
        others = rng.sample([str(x) for x in range(97) if str(x) != answer], 3)
        items.append(
            {"item_id": f"m{i}", "prompt": f"{a} + {b} =", "answer": answer, "choices": [answer, *others], "label": 0}
        )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    tok = train_word_tokenizer([" ".join(str(x) for x in range(97)) + " + ="])
    model = random_olmoe(tok, hidden=args.hidden, layers=4)
    calls = {"n": 0}
    model.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1) or None)
    specs = [
        evaluation.TaskSpec(name="math_generate", domain="math", task="generate"),
        evaluation.TaskSpec(name="math_choice", domain="math", task="choice"),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        test_set = Path(tmp) / "math.test.jsonl"
        test_set.write_text("".join(json.dumps(it) + "\n" for it in make_items(args.items)))
        results = {}
        for label, cache in (("first run", "a"), ("second run, same cache", "a"), ("fresh cache", "b")):
            calls["n"] = 0
            start = time.perf_counter()
            out = evaluation.evaluate(model, tok, specs, {"math": str(test_set)}, Path(tmp) / cache, batch_size=32)
            rows.append((label, calls["n"], time.perf_counter() - start))
            results[label] = {s.name: [x["resps"] for x in out[s.name]["samples"]] for s in specs}
    same = results["first run"] == results["second run, same cache"]
    print(f"{args.items} items x 2 tasks (generate, choice), random-weight OLMoE hidden {args.hidden}")
    print(f"{'run':<26}{'forward passes':>16}{'wall s':>9}")
    for label, n, wall in rows:
        print(f"{label:<26}{n:>16}{wall:>9.2f}")
    print(f"second run's responses identical to the first's: {same}")
    print(
        json.dumps(
            {
                "benchmark": "eval_cache",
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "items": args.items,
                "first_forward_passes": rows[0][1],
                "second_forward_passes": rows[1][1],
                "fresh_cache_forward_passes": rows[2][1],
                "first_wall_s": rows[0][2],
                "second_wall_s": rows[1][2],
                "identical_responses": same,
            }
        )
    )


if __name__ == "__main__":
    main()
