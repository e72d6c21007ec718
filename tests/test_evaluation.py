import json

import pytest
from conftest import local_checkpoint, random_olmoe, run_generate_eval

from grokpath import evaluation
from grokpath.tokenizer import train_word_tokenizer

ITEMS = [
    {
        "item_id": f"m-{i}",
        "prompt": f"{a} + {b} =",
        "answer": str((a + b) % 5),
        # the answer first, then three other digits
        "choices": [str((a + b) % 5), *[c for c in "01234" if c != str((a + b) % 5)][:3]],
        "label": 0,
    }
    for i, (a, b) in enumerate([(1, 2), (2, 2), (3, 4), (0, 1), (4, 4), (2, 3)])
]


@pytest.fixture(scope="module")
def tok():
    return train_word_tokenizer(["0 1 2 3 4 + ="])


def _model(tok, seed):
    return random_olmoe(tok, hidden=16, layers=2, seed=seed)


@pytest.fixture
def test_set(tmp_path):
    path = tmp_path / "math.test.jsonl"
    path.write_text("".join(json.dumps(it) + "\n" for it in ITEMS))
    return str(path)


SPECS = [
    evaluation.TaskSpec(name="math_generate", domain="math", task="generate"),
    evaluation.TaskSpec(name="math_choice", domain="math", task="choice"),
]


def _calls(model):
    counter = {"n": 0}

    def hook(*_):
        counter["n"] += 1

    model.register_forward_hook(hook)
    return counter


def test_local_tasks_score_every_item(tok, test_set, tmp_path):
    model = _model(tok, 0)
    out = evaluation.evaluate(model, tok, SPECS, {"math": test_set}, tmp_path / "cache_a", batch_size=4)
    for spec in SPECS:
        rows = evaluation.item_rows(out[spec.name]["samples"])
        assert sorted(r["doc_id"] for r in rows) == list(range(len(ITEMS)))
        assert {r["correct"] for r in rows} <= {0, 1}
        assert {r["item_id"] for r in rows} == {it["item_id"] for it in ITEMS}
        metric = "exact_match,first_word" if spec.task == "generate" else "acc,none"
        assert out[spec.name]["results"][metric] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))


def test_local_tasks_read_fields_and_render_no_template(tok, test_set, tmp_path, monkeypatch):
    """lm-eval compiles a Jinja template anew every time it renders one (26-30% of an evaluation of
    the default's benchmarks): the local tasks name the test set's fields instead, few-shot too."""
    import lm_eval.utils

    def no_template(*_args, **_kwargs):
        raise AssertionError("a local task rendered a Jinja template")

    monkeypatch.setattr(lm_eval.utils, "apply_template", no_template)
    specs = [*SPECS, evaluation.TaskSpec(name="math_choice_2shot", domain="math", task="choice", num_fewshot=2)]
    out = evaluation.evaluate(_model(tok, 0), tok, specs, {"math": test_set}, tmp_path / "cache", batch_size=4)
    for spec in specs:
        rows = evaluation.item_rows(out[spec.name]["samples"])
        assert [r["prompt"] for r in sorted(rows, key=lambda r: r["doc_id"])] == [it["prompt"] for it in ITEMS]
    shots = out["math_choice_2shot"]["samples"][0]["arguments"]
    assert shots[0][0].count("=") == 3  # two solved examples, then the item's own prompt


def _lm_eval(model, tok, tasks, include_path, **options):
    """lm-eval's `simple_evaluate` called directly on an HFLM, not through `evaluation.evaluate`."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    return simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tok, batch_size=4, device="cpu", add_bos_token=True),
        tasks=tasks,
        task_manager=TaskManager(include_path=str(include_path), include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
        **options,
    )


def test_competition_math_renders_hendrycks_prompts_without_a_template(tok, tmp_path, monkeypatch):
    """The paper's MATH task (grokpath_competition_math, 12,500 problems) builds the prompt and
    target of lm-eval's hendrycks_math templates with functions, few-shot too."""
    import lm_eval.utils

    problems = [
        {"problem": f"What is {a} + {b}?", "solution": f"So $\\boxed{{{a + b}}}$.", "level": "1", "type": "Algebra"}
        for a, b in [(1, 2), (3, 4), (5, 6)]
    ]
    data = tmp_path / "competition_math.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in problems))
    (tmp_path / "standin.yaml").write_text(  # the task as it is, on a local copy of its dataset
        f"include: {evaluation.TASKS_DIR / 'grokpath_competition_math.yaml'}\n"
        "task: competition_math_standin\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    train: {data}\n"
    )

    def no_template(*_args, **_kwargs):
        raise AssertionError("grokpath_competition_math rendered a Jinja template")

    monkeypatch.setattr(lm_eval.utils, "apply_template", no_template)
    res = _lm_eval(
        _model(tok, 0), tok, ["competition_math_standin"], tmp_path, num_fewshot=1, gen_kwargs={"max_gen_toks": 2}
    )
    samples = sorted(res["samples"]["competition_math_standin"], key=lambda s: s["doc_id"])
    assert [s["target"] for s in samples] == ["3", "7", "11"]
    solved = {
        f"Problem: {p['problem']}\nAnswer: {answer}" for p, answer in zip(problems, ["3", "7", "11"], strict=True)
    }
    for s, p in zip(samples, problems, strict=True):
        shot, own = s["arguments"][0][0].rsplit("\n\n", 1)  # one solved problem, then the item's own
        assert own == f"Problem: {p['problem']}\nAnswer:"
        assert shot in solved - {f"{own} {s['target']}"}


def test_second_run_uses_the_cache_and_checkpoints_never_share_it(tok, test_set, tmp_path):
    a, b = _model(tok, 0), _model(tok, 1)
    first = evaluation.evaluate(a, tok, SPECS[1:], {"math": test_set}, tmp_path / "a", batch_size=4)
    calls = _calls(a)
    again = evaluation.evaluate(a, tok, SPECS[1:], {"math": test_set}, tmp_path / "a", batch_size=4)
    assert calls["n"] == 0  # every request answered from checkpoint a's cache
    assert again["math_choice"]["samples"][0]["resps"] == first["math_choice"]["samples"][0]["resps"]
    calls_b = _calls(b)
    other = evaluation.evaluate(b, tok, SPECS[1:], {"math": test_set}, tmp_path / "b", batch_size=4)
    assert calls_b["n"] > 0  # checkpoint b has its own cache, so its model really ran
    assert [s["resps"] for s in other["math_choice"]["samples"]] != [
        s["resps"] for s in first["math_choice"]["samples"]
    ]


def _lm_eval_with_its_own_cache(model, tok, test_set, cache_path):
    """The choice task through lm-eval's own response cache (`use_cache`, its CachingLM)."""
    task = evaluation.local_task_config("choice", "math_choice", test_set)
    res = _lm_eval(model, tok, [task], evaluation.TASKS_DIR, use_cache=str(cache_path))
    return [s["resps"] for s in res["samples"][task["task"]]]


def test_the_response_cache_is_lm_evals_own_file_both_ways(tok, test_set, tmp_path):
    """A cache lm-eval wrote (an earlier version of this stage) answers this one's requests, and
    the other way round: same file name, keys and values."""
    model = _model(tok, 0)
    theirs = _lm_eval_with_its_own_cache(model, tok, test_set, tmp_path / "theirs")
    calls = _calls(model)
    ours = evaluation.evaluate(model, tok, SPECS[1:], {"math": test_set}, tmp_path / "theirs", batch_size=4)
    assert calls["n"] == 0
    assert [s["resps"] for s in ours["math_choice"]["samples"]] == theirs

    fresh = _model(tok, 0)
    evaluation.evaluate(fresh, tok, SPECS[1:], {"math": test_set}, tmp_path / "ours", batch_size=4)
    calls = _calls(fresh)
    assert _lm_eval_with_its_own_cache(fresh, tok, test_set, tmp_path / "ours") == theirs
    assert calls["n"] == 0


def test_answers_computed_before_a_failure_are_kept_for_the_rerun(tok, test_set, tmp_path):
    """A job that fails mid-task (here in the forward pass of its last batch) keeps the answers of
    the batches before: the rerun asks the model for the last batch only."""
    clean = _model(tok, 0)
    full = _calls(clean)  # a clean run's forward passes, with a cache of its own
    expected = evaluation.evaluate(clean, tok, SPECS[:1], {"math": test_set}, tmp_path / "clean", batch_size=4)

    model = _model(tok, 0)
    passes = {"n": 0}

    def fail_on_the_last(*_):
        passes["n"] += 1
        if passes["n"] == full["n"]:
            raise RuntimeError("node lost")

    handle = model.register_forward_hook(fail_on_the_last)
    with pytest.raises(RuntimeError, match="node lost"):
        evaluation.evaluate(model, tok, SPECS[:1], {"math": test_set}, tmp_path / "cache", batch_size=4)
    handle.remove()
    calls = _calls(model)
    again = evaluation.evaluate(model, tok, SPECS[:1], {"math": test_set}, tmp_path / "cache", batch_size=4)
    assert 0 < calls["n"] < full["n"]
    assert [s["resps"] for s in again["math_generate"]["samples"]] == [
        s["resps"] for s in expected["math_generate"]["samples"]
    ]


@pytest.mark.parametrize(("seconds", "visible"), [(0.0, True), (3600.0, False)])
def test_answers_are_committed_every_commit_seconds(tmp_path, monkeypatch, seconds, visible):
    """What a job killed outright (no error handling runs) leaves in its cache: the answers up to
    the last periodic commit, and none after it."""
    from sqlitedict import SqliteDict

    from grokpath import response_cache

    monkeypatch.setattr(response_cache, "COMMIT_SECONDS", seconds)
    store = response_cache._Store(tmp_path / "cache.db")
    store.put("key", (-1.5, True))
    with SqliteDict(str(tmp_path / "cache.db"), flag="r") as other_process:
        assert ("key" in other_process) is visible
    store.close()


def test_the_environment_is_described_once_per_process(tok, test_set, tmp_path, monkeypatch):
    import lm_eval.evaluator

    reports = []
    describe = lm_eval.evaluator.add_env_info

    def counted(storage):
        reports.append(describe(storage))

    monkeypatch.setattr(lm_eval.evaluator, "add_env_info", counted)
    monkeypatch.setattr(evaluation, "_ENVIRONMENT", {})
    model = _model(tok, 0)
    evaluation.evaluate(model, tok, SPECS, {"math": test_set}, tmp_path / "a", batch_size=4)  # two tasks
    evaluation.evaluate(model, tok, SPECS, {"math": test_set}, tmp_path / "b", batch_size=4)
    assert len(reports) == 1
    assert "pretty_env_info" in evaluation._ENVIRONMENT
    assert lm_eval.evaluator.add_env_info is counted  # evaluate's own patch was undone


def test_unknown_task_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown benchmark task 'hellaswagg'.*did you mean \['hellaswag'"):
        evaluation.check_task_names(["generate", "hellaswagg"])
    # a misspelt local kind is suggested first
    with pytest.raises(ValueError, match=r"unknown benchmark task 'generat'.*did you mean \['generate'"):
        evaluation.check_task_names(["generat"])


def test_unknown_local_kind():
    with pytest.raises(ValueError, match="local task kind must be one of"):
        evaluation.local_task_config("rank", "x", "t.jsonl")


@pytest.mark.parametrize(
    ("row", "kinds", "message"),
    [
        (["what", "4"], (), r"is a list, not an object with a prompt"),
        ({"answer": "4"}, (), r"has no non-empty string field 'prompt'"),
        ({"prompt": "2+2=", "answer": 4}, (), r"'answer' must be a string, got 4"),
        ({"prompt": "2+2=", "choices": ["4"], "label": 0}, (), r"'choices' must be a list of at least 2 strings"),
        ({"prompt": "2+2=", "choices": ["3", "4"], "label": 2}, (), r"'label' must be an index into its 2 choices"),
        ({"prompt": "2+2=", "choices": ["3", "4"]}, (), r"'label' must be an index into its 2 choices, got None"),
        ({"prompt": "2+2=", "answer": "4"}, ("choice",), r"lacks \['choices', 'label'\], which the 'choice' task"),
        ({"prompt": "2+2=", "choices": ["3", "4"], "label": 1}, ("generate",), r"lacks \['answer'\]"),
    ],
)
def test_local_test_sets_are_checked_before_lm_eval_renders_them(row, kinds, message):
    good = {"prompt": "1+1=", "answer": "2", "choices": ["2", "3"], "label": 0}
    evaluation.check_test_set([good], "t.jsonl", ("generate", "choice"))
    with pytest.raises(ValueError, match=rf"t.jsonl: row 2.*{message}"):
        evaluation.check_test_set([good, row], "t.jsonl", kinds)


def test_a_new_model_under_the_same_checkpoint_id_gets_its_own_answers(tok, tmp_path):
    """The stage's response cache is per evaluated model: a checkpoint retrained (or re-resolved,
    or re-tuned) under the same id and cache folder is evaluated afresh, not answered from the
    old model's cache."""
    test_set = tmp_path / "math.test.jsonl"
    test_set.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    cpu = {"device": "cpu", "dtype": "float32", "batch_size": 4}
    old = local_checkpoint(tok, tmp_path / "old", hidden=16, layers=2, seed=0)
    new = local_checkpoint(tok, tmp_path / "new", hidden=16, layers=2, seed=11)
    (tmp_path / "fresh").mkdir()
    _, before = run_generate_eval(old, test_set, tmp_path, "same", cpu)
    _, new_alone = run_generate_eval(new, test_set, tmp_path / "fresh", "same", cpu)
    assert new_alone != before  # the two models answer differently
    _, after = run_generate_eval(new, test_set, tmp_path, "same", cpu)  # the old model's cache folder
    assert after == new_alone
