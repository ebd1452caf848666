"""JSON-Schema building blocks shared by the contracts' event types."""

from cleave.core.declarations import (
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
    "obj",
]
