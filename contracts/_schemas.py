"""JSON-Schema building blocks shared by the contracts (closed requests, open answers)."""

from cleave.core.declarations import (
    CURRENCY,
    DATETIME,
    MONEY,
    NULLABLE_STRING,
    POSITIVE_INT,
    STRING,
    UUID,
    answer,
    obj,
)

__all__ = [
    "CURRENCY",
    "DATETIME",
    "MONEY",
    "NULLABLE_STRING",
    "POSITIVE_INT",
    "STRING",
    "UUID",
    "answer",
    "obj",
]
