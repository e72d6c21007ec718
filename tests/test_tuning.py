import json

import pytest
import torch
from conftest import SMALL_LORA, local_checkpoint, random_olmoe, run_generate_eval

from grokpath import checkpoints, stages, tuning
from grokpath.tokenizer import train_word_tokenizer

SETTINGS = SMALL_LORA
EXAMPLES = [{"prompt": f"{a} + {b} =", "response": str((a + b) % 5)} for a in range(5) for b in range(5)]


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(["0 1 2 3 4 + ="])


def test_read_examples_rejects_rows_without_a_response():
    assert tuning.read_examples(EXAMPLES[:2], "x.jsonl") == [("0 + 0 =", "0"), ("0 + 1 =", "1")]
    with pytest.raises(ValueError, match=r"x.jsonl: row 2 needs string fields 'prompt' and a non-empty 'response'"):
        tuning.read_examples([EXAMPLES[0], {"prompt": "1 + 1 ="}], "x.jsonl")
    with pytest.raises(ValueError, match=r"x.jsonl: row 2 is a list, not an object with 'prompt' and 'response'"):
        tuning.read_examples([EXAMPLES[0], ["1 + 1 =", "2"]], "x.jsonl")
    with pytest.raises(ValueError, match="no instruction examples"):
        tuning.read_examples([], "x.jsonl")


def test_loss_is_on_the_response_only(tok):
    ids, labels = tuning._encode(tok, "1 + 2 =", "3", max_length=32)
    assert len(ids) == len(labels)
    prompt_len = len(tok("1 + 2 =")["input_ids"])
    assert labels[:prompt_len] == [-100] * prompt_len
    assert labels[prompt_len:] == ids[prompt_len:]


def test_lora_training_lowers_the_loss_and_merges(tok):
    model = random_olmoe(tok, hidden=16, layers=2, seed=0)
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    examples = tuning.read_examples(EXAMPLES, "mem")
    merged, losses = tuning.lora_finetune(model, tok, examples, SETTINGS, seed=0)
    assert losses[-1] < losses[0]
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, before)


def test_tuned_checkpoint_is_what_gets_evaluated(tok, tmp_path):
    ckpt = local_checkpoint(tok, tmp_path, hidden=16, layers=2, seed=0)
    data = tmp_path / "math_instruct.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    tuned = tmp_path / "tuned"
    stages.instruction_tune("m", "s1", "math", str(ckpt), str(data), SETTINGS, 0, str(tuned))
    manifest = checkpoints.read_manifest(tuned)
    assert manifest["family"] == "math"
    assert manifest["n_examples"] == len(EXAMPLES)
    test_set = tmp_path / "math.test.jsonl"
    test_set.write_text(
        "".join(
            json.dumps({"item_id": f"t{i}", "prompt": e["prompt"], "answer": e["response"]}) + "\n"
            for i, e in enumerate(EXAMPLES[:6])
        )
    )

    def run(checkpoint, name, **tuning):
        cpu = {"device": "cpu", "dtype": "float32", "batch_size": 4}
        return run_generate_eval(checkpoint, test_set, tmp_path, name, cpu, **tuning)

    res, evaluated = run(ckpt, "tuned", tuned={"math": str(tuned)}, family_of={"math": "math"})
    assert res["instruction_tuned"] == "math"
    assert res["evaluated_model_sha"] == manifest["content_hash"]
    assert res["evaluated_model_sha"] != res["checkpoint_sha"]

    # The answers are the tuned model's: the same as evaluating its folder directly, not the base's.
    assert evaluated == run(tuned, "direct")[1]
    assert evaluated != run(ckpt, "base")[1]


def test_examples_without_a_response_token_within_max_length_are_refused(tok):
    model = random_olmoe(tok, hidden=16, layers=2, seed=0)
    examples = tuning.read_examples(EXAMPLES, "mem")
    with pytest.raises(ValueError, match=r"no instruction example keeps a response token within .*max_length=4"):
        tuning.lora_finetune(model, tok, examples, {**SETTINGS, "max_length": 4}, seed=0)
