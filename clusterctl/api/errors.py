"""Kubernetes ``Status`` errors: what every failed API request answers.

One exception, ``ApiError``, carries the HTTP code, the Kubernetes ``reason`` and a message in
Kubernetes' own words (``pods "x" not found``), so kubectl and the official client show people
the text they already know. Constructors below build each family; ``FieldError`` collects per-field
validation problems that ``invalid()`` turns into a 422 with ``details.causes``.
The server's middleware renders ``ApiError.status()`` as the response body; any other exception
becomes a 500 Status (and a log line): no input may crash a request handler silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from clusterctl.errors import ClusterctlError


class ApiError(ClusterctlError):
    """A request failed with a Kubernetes Status (code, reason, message, details)."""

    def __init__(self, code: int, reason: str, message: str, *, details: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def body(self) -> bytes:
        return orjson.dumps(self.status())


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(resource: str, group: str, name: str | None) -> dict:
    d: dict[str, Any] = {"kind": resource}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    return d


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    details=_details(resource, group, name))


def path_not_found(path: str) -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    details={"causes": [{"reason": "UnexpectedServerResponse", "message": f"404 page not found: {path}"}]})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    details=_details(resource, group, name))


def conflict(resource: str, name: str, group: str = "", why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                    details=_details(resource, group, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def cannot_handle(kind: str, version: str, why: str) -> ApiError:
    """400 for a body that does not decode as the kind (wrong types, strict decoding errors)."""
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {why}')


def method_not_allowed(method: str, what: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({method} {what})")


def unsupported_media_type(content_type: str, supported: list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types include: {", ".join(supported)}'
                    + (f" (got {content_type!r})" if content_type else ""))


def not_acceptable(accept: str) -> ApiError:
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: application/json, application/yaml (asked: {accept})")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, group: str, namespace: str | None, name: str | None = None,
              why: str = "") -> ApiError:
    subject = f'{_qualified(resource, group)} "{name}"' if name else _qualified(resource, group)
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    msg = f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}"{scope}'
    if why:
        msg += f": {why}"
    return ApiError(403, "Forbidden", msg, details=_details(resource, group, name))


def forbidden_message(resource: str, name: str, group: str, why: str) -> ApiError:
    return ApiError(403, "Forbidden", f'{_qualified(resource, group)} "{name}" is forbidden: {why}',
                    details=_details(resource, group, name))


def too_many_requests(message: str, *, retry_after: int | None = None, causes: list[dict] | None = None) -> ApiError:
    details: dict[str, Any] = {}
    if causes:
        details["causes"] = causes
    if retry_after is not None:
        details["retryAfterSeconds"] = retry_after
    return ApiError(429, "TooManyRequests", message, details=details or None,
                    headers={"Retry-After": str(retry_after)} if retry_after is not None else None)


def store_unavailable(message: str, *, retry_after: int) -> ApiError:
    """The store could not answer now (etcd without a leader, a member down): 503 + Retry-After, which clients retry."""
    return ApiError(503, "ServiceUnavailable", message, details={"retryAfterSeconds": retry_after},
                    headers={"Retry-After": str(retry_after)})


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


# --- field errors (422 Invalid) ---------------------------------------------------------------

_REASONS = {
    "Required": ("FieldValueRequired", "Required value"),
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "TooLong": ("FieldValueTooLong", "Too long"),
    "TypeInvalid": ("FieldValueTypeInvalid", "Invalid value"),
    "NotFound": ("FieldValueNotFound", "Not found"),
}


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field, rendered as Kubernetes renders ``field.Error``."""

    type: str            # Required | Invalid | Duplicate | NotSupported | Forbidden | TooLong
    field: str
    detail: str = ""
    value: Any = None
    has_value: bool = False

    @classmethod
    def required(cls, field: str, detail: str = "") -> "FieldError":
        return cls("Required", field, detail)

    @classmethod
    def invalid(cls, field: str, value: Any, detail: str) -> "FieldError":
        return cls("Invalid", field, detail, value, True)

    @classmethod
    def duplicate(cls, field: str, value: Any) -> "FieldError":
        return cls("Duplicate", field, "", value, True)

    @classmethod
    def not_supported(cls, field: str, value: Any, supported: list[str]) -> "FieldError":
        return cls("NotSupported", field, "supported values: " + ", ".join(f'"{s}"' for s in supported), value, True)

    @classmethod
    def forbidden(cls, field: str, detail: str) -> "FieldError":
        return cls("Forbidden", field, detail)

    def cause_message(self) -> str:
        _, text = _REASONS[self.type]
        if self.type in ("Required", "Forbidden"):
            return f"{text}: {self.detail}" if self.detail else text
        msg = f"{text}: {_render_value(self.value)}" if self.has_value else text
        return f"{msg}: {self.detail}" if self.detail else msg

    def message(self) -> str:
        return f"{self.field}: {self.cause_message()}"

    def cause(self) -> dict:
        return {"reason": _REASONS[self.type][0], "message": self.cause_message(), "field": self.field}


def invalid(kind: str, name: str, group: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid: ``Pod "x" is invalid: [a: ..., b: ...]`` with one cause per bad field."""
    qualified = f"{kind}.{group}" if group else kind
    msgs = [e.message() for e in errors]
    summary = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [e.cause() for e in errors]}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details=details)
