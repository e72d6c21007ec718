import pytest

from grokpath.instructions import format_rows, template_fields

ALPACA = [
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say hi.", "input": "", "output": "hi"},
    {"instruction": "Nothing to say.", "input": "", "output": ""},
]


def test_alpaca_rows_become_prompt_and_response():
    rows = format_rows(ALPACA, "{instruction}\n\n{input}", "{output}", "alpaca")
    assert rows == [
        {"prompt": "Add the numbers.\n\n2 and 3", "response": "5"},
        {"prompt": "Say hi.", "response": "hi"},  # empty input: no dangling blank lines
    ]  # the row with an empty output is skipped


def test_unknown_field_names_the_fields_present():
    with pytest.raises(ValueError, match=r"no field\(s\) \['query'\].*\['input', 'instruction', 'output'\]"):
        format_rows(ALPACA, "{query}", "{output}", "alpaca")


def test_no_usable_rows_is_an_error():
    with pytest.raises(ValueError, match="no instruction examples"):
        format_rows(ALPACA[2:], "{instruction}", "{output}", "alpaca")


def test_template_fields():
    assert template_fields("{a} and {b}{{literal}}") == ["a", "b"]
