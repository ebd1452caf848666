"""JSON-Schema building blocks shared by the contracts (closed requests, open answers)."""

from cleave.contracts import answer
from cleave.events.registry import (
    CURRENCY,
    DATETIME,
    MONEY,
    NULLABLE_STRING,
    POSITIVE_INT,
    STRING,
    UUID,
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
