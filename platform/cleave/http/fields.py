"""
Field types every context's serializers share: text that refuses numbers and
control characters, secrets, email addresses, patterns, and whole numbers that
are JSON integers (or digits in a query).
"""

from __future__ import annotations

import re

from rest_framework import serializers

# C0 and C1 controls and DEL (CR, LF, NUL, ESC...), the Unicode line and
# paragraph separators, and the bidirectional overrides and isolates that make
# text display in another order than it is stored ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class _OnlyStrings:
    """
    Refuse a JSON number where a string is expected. DRF's string fields take
    `"name": 0` as "0"; the OpenAPI document says string, and so does this API.
    """

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid")
        return super().to_internal_value(data)


class _NoControlCharacters:
    """
    Refuse control characters: a CR or LF in a name would start a new line in
    an email header, a log line or a CSV export; the others only hide text.
    """

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if _CONTROL.search(value):
            raise serializers.ValidationError(
                "Must not contain control characters (line breaks, tabs and the like).",
                code="invalid",
            )
        return value


class Text(_OnlyStrings, _NoControlCharacters, serializers.CharField):
    """
    A one-line string field of a request body: a string (not a number that
    could become one), without control characters.
    """


class Secret(_OnlyStrings, serializers.CharField):
    """
    A string taken as the client typed it, any character included (a password
    or a token): it is only compared or hashed, never shown or written out.
    """


class EmailText(_OnlyStrings, serializers.EmailField):
    """An email address field of a request body."""


class PatternText(_OnlyStrings, _NoControlCharacters, serializers.RegexField):
    """A string field of a request body that must match a pattern."""


class WholeNumber(serializers.IntegerField):
    """
    An integer field of a request body that takes JSON integers only. DRF's
    IntegerField also takes `"2"`, `2.0`, `true` and digits of other scripts
    (`"٢"`); the OpenAPI document says integer, and so does this API.
    """

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            raise serializers.ValidationError("Must be a whole number.", code="invalid")
        return super().to_internal_value(data)


class QueryNumber(serializers.IntegerField):
    """
    A whole number in a query string (`?limit=20`): ASCII digits only, where
    Python's int() also takes `"٢"`, `" 2"`, `"+2"` and `"1_000"`.
    """

    def to_internal_value(self, data):
        if not isinstance(data, str) or not (data.isascii() and data.isdigit()) or len(data) > 10:
            raise serializers.ValidationError("Must be a whole number.", code="invalid")
        return super().to_internal_value(data)
