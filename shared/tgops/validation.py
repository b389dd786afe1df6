"""What every layer says about input it refuses, in one form: each problem as `where: why`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def describe(error: ValidationError, *, whole: str = "body") -> str:
    """`a.b: field required; c: must be an integer`; `whole` names a problem of the value itself."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or whole}: {problem['msg']}"
        for problem in error.errors()
    )


def json_integer(value: Any) -> Any:
    """A JSON integer: 5 or 5.0, never "5" or true (pydantic's lax mode would take both); for BeforeValidator."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON integer")
    return value
