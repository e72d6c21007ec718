"""Instruction data for the optional LoRA tuning, from Hugging Face datasets.

The paper tunes on MetaMathQA, CodeAlpaca-20K and alpaca-cleaned, each with its own fields; a
row becomes a (prompt, response) pair through two Python format strings over its fields, so any
instruction dataset fits without code.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any


def template_fields(template: str) -> list[str]:
    """The field names a format string uses ("{instruction}\\n\\n{input}" -> [instruction, input])."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def check_template(template: str) -> None:
    """Raise ValueError unless `template` is a format string over named fields only: "{query}" is
    fine; "{query" does not parse and "{}" or "{0}" name no field of a row."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{template!r} is not a Python format string: {error}") from None
    for _, name, _, _ in parsed:
        if name is not None and (not name or not name.isidentifier()):
            raise ValueError(f"{template!r}: {{{name}}} names no field; write a row field, e.g. {{instruction}}")
    try:  # rows' values become text (format_rows): conversions and format specs must apply to text
        template.format(**{name: "text" for _, name, _, _ in parsed if name})
    except (ValueError, TypeError) as error:
        raise ValueError(f"{template!r} cannot format a row's text fields: {error}") from None


def format_rows(
    rows: Iterable[Mapping[str, Any]], prompt_template: str, response_template: str, source: str
) -> list[dict[str, str]]:
    """{"prompt", "response"} per row; rows whose response comes out empty are skipped.

    A template naming a field the rows do not have fails on the first row, naming the fields
    they do have.
    """
    needed = template_fields(prompt_template) + template_fields(response_template)
    out = []
    for i, row in enumerate(rows):
        missing = [f for f in needed if f not in row]
        if missing:
            raise ValueError(
                f"{source}: row {i} has no field(s) {missing} used by the instruction templates; "
                f"its fields: {sorted(row)}"
            )
        values = {k: "" if v is None else str(v) for k, v in row.items()}
        response = response_template.format(**values)
        if response.strip():
            out.append({"prompt": prompt_template.format(**values).strip(), "response": response})
    if not out:
        raise ValueError(f"{source}: no instruction examples with a non-empty response")
    return out
