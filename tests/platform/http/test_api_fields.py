"""
The shared request-body fields of cleave.api: whole numbers that are JSON
integers and nothing that could become one, and one-line text without
control characters.
"""

from __future__ import annotations

import pytest
from rest_framework import serializers

from cleave.http.fields import PatternText, Secret, Text, WholeNumber


class Body(serializers.Serializer):
    quantity = WholeNumber(required=False, min_value=1, max_value=1000)
    name = Text(required=False, max_length=200)
    code = PatternText(r"^[A-Z]+$", required=False)
    password = Secret(required=False, trim_whitespace=False)


def errors(data: dict) -> dict:
    body = Body(data=data)
    body.is_valid()
    return body.errors


@pytest.mark.parametrize(
    "value",
    ["2", 1.0, 2.0, "٢", "\uff12", True, False, "1e2", 2.5, None, [2], {"n": 2}],
    ids=repr,
)
def test_a_whole_number_is_a_json_integer_and_nothing_else(value):
    assert "quantity" in errors({"quantity": value})


def test_a_whole_number_keeps_its_bounds():
    assert errors({"quantity": 2}) == {}
    assert "quantity" in errors({"quantity": 0})
    assert "quantity" in errors({"quantity": 1001})
    assert "quantity" in errors({"quantity": 10**5000})


@pytest.mark.parametrize(
    "value",
    [
        "Ada\r\nBcc: mallory@example.com",
        "Ada\nLovelace",
        "Ada\rLovelace",
        "Ada\tLovelace",
        "Ada\x1b[31mLovelace",
        "Ada\x7f",
        "Ada\x85Lovelace",  # NEL, a C1 control
        "Ada\u2028Lovelace",  # line separator
        "Ada\u202egnp.exe",  # right-to-left override
    ],
    ids=repr,
)
def test_text_refuses_control_characters(value):
    assert "name" in errors({"name": value})
    assert "code" in errors({"code": value})


@pytest.mark.parametrize("value", ["Ada Lovelace", "Zoë Ōkuma", "李小龍", "O'Brien-Smith 👩‍💻"])
def test_text_takes_what_people_are_called(value):
    assert errors({"name": value}) == {}


def test_a_secret_is_taken_as_typed():
    body = Body(data={"password": "tab\there, space "})

    assert body.is_valid(), body.errors
    assert body.validated_data["password"] == "tab\there, space "
