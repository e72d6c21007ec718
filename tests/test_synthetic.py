import re

import pytest

from grokpath import synthetic


def test_modular_arithmetic_answers_and_split():
    d = synthetic.modular_arithmetic(0, 11, 0.5, n_test=20, n_validation=10)
    assert len(d.train) == round(0.5 * 121)
    for item in d.train_items + d.test:
        a, b = map(int, re.match(r"(\d+) \+ (\d+) =", item.prompt).groups())
        assert item.answer == str((a + b) % 11)
        assert item.choices[item.label] == item.answer
        assert len(set(item.choices)) == 4
    train_prompts = {t.prompt for t in d.train_items}
    assert not train_prompts & {t.prompt for t in d.test}
    assert not train_prompts & {v.rsplit(" ", 1)[0] for v in d.validation}


def test_generation_is_a_function_of_the_seed():
    a = synthetic.program_execution(3, 200, 3, 0.6, 20, 10)
    b = synthetic.program_execution(3, 200, 3, 0.6, 20, 10)
    c = synthetic.program_execution(4, 200, 3, 0.6, 20, 10)
    assert a.train == b.train
    assert a.test == b.test
    assert a.train != c.train


def _run_program(prompt):
    env = {}
    body = prompt.removesuffix(" ->")
    stmts, target = body.rsplit(" print ", 1)
    for stmt in stmts.split(" ;"):
        stmt = stmt.strip()
        if not stmt:
            continue
        name, expr = stmt.split(" = ")
        parts = expr.split()
        if len(parts) == 1:
            env[name] = int(parts[0])
        else:
            x, op, y = env[parts[0]], parts[1], int(parts[2])
            env[name] = {"+": x + y, "-": x - y, "*": x * y}[op] % 10
    return str(env[target.strip()])


def test_programs_print_what_they_compute():
    d = synthetic.program_execution(0, 300, 4, 0.5, 30, 10)
    for item in d.train_items + d.test:
        assert _run_program(item.prompt) == item.answer


def test_two_hop_answers_compose_one_hop_facts():
    d = synthetic.knowledge_base(0, 30, 0.5, 20, 10)
    facts = {}
    for text in d.train:
        m = re.fullmatch(r"the (\w+) of (\w+) is (\w+)", text)
        if m:
            facts[(m.group(1), m.group(2))] = m.group(3)
    for item in d.test:
        r2, r1, ent = re.fullmatch(r"the (\w+) of the (\w+) of (\w+) is", item.prompt).groups()
        assert facts[(r2, facts[(r1, ent)])] == item.answer


def test_too_few_held_out_items_is_an_error():
    with pytest.raises(ValueError, match="held-out items"):
        synthetic.modular_arithmetic(0, 5, 0.9, n_test=10, n_validation=10)


def test_more_programs_than_the_statements_allow_is_an_error_not_a_hang():
    # one statement: a variable (5) and a value (10), so 50 programs at most
    with pytest.raises(ValueError, match=r"code_programs: 100 distinct programs of 1 statement\(s\).*only 50 exist"):
        synthetic.program_execution(0, 100, 1, 0.8, 10, 10)
    assert len(synthetic.program_execution(0, 50, 1, 0.6, 10, 10).train) == 30


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the embedded default's
        {
            "modulus": 23,
            "math_train_fraction": 0.33,
            "code_programs": 301,
            "code_train_fraction": 0.47,
            "n_test": 30,
            "n_validation": 21,
        },
        {"kb_entities": 37, "kb_two_hop_train_fraction": 0.71, "n_test": 20, "n_validation": 15},
    ],
)
def test_split_sizes_are_what_the_generators_make(settings):
    from dataclasses import asdict

    from grokpath.pretrain import DataSpec, generate_domains

    spec = DataSpec(**settings)
    sizes = synthetic.split_sizes(asdict(spec))
    data = generate_domains(spec, seed=3)
    assert set(sizes) == set(data) == set(synthetic.DOMAINS)
    for domain, made in data.items():
        assert sizes[domain]["samples"] == len(made.train), domain
        # the items split into trained ones and held-out ones (test items, validation texts, unused)
        assert (
            len(made.train_items) + sizes[domain]["held_out"]
            == {
                "math": spec.modulus**2,
                "code": spec.code_programs,
                "commonsense": 16 * spec.kb_entities,  # two-hop questions: 4 x 4 relations per entity
            }[domain]
        )
        assert len(made.test) == spec.n_test
        assert len(made.validation) == spec.n_validation
