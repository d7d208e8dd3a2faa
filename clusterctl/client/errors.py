"""Errors of the API client library, one family under ``ClusterctlError``.

``ApiError`` carries the Kubernetes ``Status`` the server answered (code, reason, message), so
callers branch on ``exc.reason``/``exc.code`` the way client-go callers use ``IsNotFound``.
Subclasses exist for the answers controllers branch on most. ``WatchExpired`` is distinct from
``ApiError`` on purpose: a 410 on a watch is not a failure but the signal to re-list.
``TemporaryError``/``PermanentError`` are what a ``reconcile(key)`` raises to say whether the key
should come back (kopf's vocabulary).
"""

from __future__ import annotations

from typing import Any

from clusterctl.errors import ClusterctlError


class ClientError(ClusterctlError):
    """The API client could not do what was asked."""


class KubeconfigError(ClientError):
    """The kubeconfig is missing, malformed or names something that does not exist."""

    exit_code = 2


class ApiConnectionError(ClientError):
    """The API server could not be reached (after retries for idempotent verbs)."""


class ApiError(ClientError):
    """The API server answered with a non-2xx Kubernetes ``Status``."""

    def __init__(self, status: dict[str, Any], *, method: str = "", path: str = "") -> None:
        self.status = status
        self.code: int = int(status.get("code") or 0)
        self.reason: str = str(status.get("reason") or "")
        self.api_message: str = str(status.get("message") or "")
        self.details: dict[str, Any] = dict(status.get("details") or {})
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"{self.code} {self.reason}: {self.api_message}{where}")


class NotFound(ApiError):
    """404: the object (or the resource type) does not exist."""


class AlreadyExists(ApiError):
    """409 AlreadyExists: a create named an object that exists."""


class Conflict(ApiError):
    """409 Conflict: an update carried a stale resourceVersion."""


class Invalid(ApiError):
    """422 Invalid: the object failed validation; ``details.causes`` names the fields."""


class Unauthorized(ApiError):
    """401: no valid credentials."""


class Forbidden(ApiError):
    """403: the credentials do not allow this."""


class TooManyRequests(ApiError):
    """429: the server (or a disruption budget, on eviction) refused for now."""


class Gone(ApiError):
    """410 Gone: a resourceVersion older than the server keeps (outside a watch)."""


def api_error_from_status(status: dict[str, Any], *, method: str = "", path: str = "") -> ApiError:
    """The most specific ``ApiError`` subclass for a Status body."""
    code = int(status.get("code") or 0)
    reason = status.get("reason") or ""
    cls: type[ApiError]
    if code == 404:
        cls = NotFound
    elif code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif code == 422:
        cls = Invalid
    elif code == 401:
        cls = Unauthorized
    elif code == 403:
        cls = Forbidden
    elif code == 429:
        cls = TooManyRequests
    elif code == 410:
        cls = Gone
    else:
        cls = ApiError
    return cls(status, method=method, path=path)


class WatchExpired(ClientError):
    """The watch's resourceVersion is older than the server's history (410 Expired): re-list."""

    def __init__(self, message: str = "watch expired", *, resource_version: str | None = None) -> None:
        self.resource_version = resource_version
        super().__init__(message)


class TemporaryError(ClientError):
    """A reconcile failed for a reason expected to pass: retry the key after ``delay`` seconds.

    ``delay=None`` means "use the queue's per-key exponential backoff".
    """

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class PermanentError(ClientError):
    """A reconcile failed for a reason retrying cannot fix (e.g. an invalid spec): do not requeue."""
