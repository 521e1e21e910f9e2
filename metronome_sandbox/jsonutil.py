"""JSON with exact decimals: numbers parse to Decimal and serialize with their exact digits."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

_encode_string = json.encoder.encode_basestring  # ensure_ascii=False flavour; UTF-8 on the wire


class _NotPlainJson(TypeError):
    """Raised inside the fast path when a value needs the exact serializer."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    """Parse JSON keeping every non-integer number exact (Decimal); NaN/Infinity are errors."""
    return json.loads(data, parse_float=Decimal, parse_constant=_no_constants)


def decimal_text(value: Decimal) -> str:
    """`value` in plain notation without trailing fractional zeros: 3.10 -> "3.1", 1E+2 -> "100".

    Pure string work: Decimal.normalize() would round to the context precision (28 digits).
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _refuse(value: Any) -> Any:
    raise _NotPlainJson(type(value).__name__)


def dumps(value: Any) -> str:
    """Serialize dicts, lists, strings, ints, bools, None and Decimals (as exact JSON numbers)."""
    try:  # fast path: the C encoder, when no Decimal is present
        return json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_refuse
        )
    except _NotPlainJson:
        parts: list[str] = []
        _write(value, parts)
        return "".join(parts)


def _write(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(_encode_string(value))
    elif value is None or isinstance(value, bool | int):
        parts.append(json.dumps(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        parts.append(decimal_text(value))
    elif isinstance(value, dict):
        _write_object(value, parts)
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"cannot serialize {type(value).__name__} as JSON")


def _write_object(value: dict[str, Any], parts: list[str]) -> None:
    parts.append("{")
    for index, (key, item) in enumerate(value.items()):
        if index:
            parts.append(",")
        parts.append(_encode_string(str(key)))
        parts.append(":")
        _write(item, parts)
    parts.append("}")
