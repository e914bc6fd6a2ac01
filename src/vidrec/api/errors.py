"""Bad input → a 4xx that names the field, identically for HTTP and gRPC.

Transports parse raw input with :func:`parse_query` / :func:`validate`; every failure becomes
an :class:`ApiError` whose JSON body is ``{"error", "field", "detail"}``. Nothing a client sends
can produce a 500: a 500 is always our bug.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vidrec.security.auth import Principal

M = TypeVar("M", bound=BaseModel)

MAX_BATCH = 1000
"""Most events (or ids) accepted in one request; more is a 413, not a silent truncation."""


class ApiError(Exception):
    """A client error: HTTP ``status``, a stable ``error`` code, the offending ``field``."""

    def __init__(self, status: int, error: str, field: str | None, detail: str) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.status = status
        self.error = error
        self.field = field
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "field": self.field, "detail": self.detail}


def field_path(loc: Sequence[int | str]) -> str:
    """Pydantic's error location as a dotted path: ``("events", 3, "ts")`` → ``events[3].ts``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def from_validation_error(exc: ValidationError, prefix: Sequence[int | str] = ()) -> ApiError:
    """The first pydantic error as an ApiError (400), naming the field and what was wrong."""
    first = exc.errors(include_url=False)[0]
    kind = str(first["type"])
    error = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(kind, "invalid")
    return ApiError(400, error, field_path([*prefix, *first["loc"]]), str(first["msg"]))


def validate(model: type[M], data: Any, prefix: Sequence[int | str] = ()) -> M:
    """``model.model_validate(data)`` with errors mapped to :class:`ApiError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix) from None


def parse_query(model: type[M], params: Mapping[str, Sequence[str]]) -> M:
    """Query parameters (each name → all its values) into ``model``.

    Unknown and repeated parameters are rejected by name before validation, so a typo such as
    ``?cuont=5`` is an error rather than a silently ignored default.
    """
    for name, values in params.items():
        if name not in model.model_fields:
            allowed = ", ".join(model.model_fields)
            raise ApiError(400, "unknown_parameter", name, f"unknown parameter; allowed: {allowed}")
        if len(values) != 1:
            raise ApiError(400, "repeated_parameter", name, "give this parameter once")
    return validate(model, {name: values[0] for name, values in params.items()})


def check_batch_size(n: int, field: str, limit: int = MAX_BATCH) -> None:
    if n > limit:
        raise ApiError(413, "too_large", field, f"{n} items exceeds the limit of {limit}")
    if n == 0:
        raise ApiError(400, "invalid", field, "must contain at least one item")


def authorise(principal: Principal, user_id: int | None, field: str) -> None:
    """A 403 naming ``field`` unless ``principal`` may act for ``user_id``: the one check
    behind every feed and every write, for both transports (HTTP 403, gRPC PERMISSION_DENIED)."""
    if user_id is not None and not principal.may_act_for(user_id):  # anonymous: anyone's
        raise ApiError(403, "forbidden", field, principal.not_for(user_id))
