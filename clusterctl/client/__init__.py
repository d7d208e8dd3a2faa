"""clusterctl's API client library: every component talks to the API server through it.

- ``kubeconfig``: resolve a standard kubeconfig into server, CA and credentials;
- ``rest``: ``ApiClient`` (verbs on plain dicts, watch streams), ``resources``: where kinds live;
- ``informer``: list + watch caches with indexes; ``workqueue``: de-duplicating, rate-limited keys;
- ``controller``: the informer → queue → ``reconcile(key)`` loop and an Event recorder;
- ``leaderelection``: Lease-based election so two control planes never both act;
- ``errors``: ``ApiError`` (with the Kubernetes Status), ``WatchExpired``, ``TemporaryError``/``PermanentError``.
"""

from __future__ import annotations

from clusterctl.client.errors import (
    AlreadyExists,
    ApiConnectionError,
    ApiError,
    ClientError,
    Conflict,
    Forbidden,
    Invalid,
    KubeconfigError,
    NotFound,
    PermanentError,
    TemporaryError,
    TooManyRequests,
    WatchExpired,
)
from clusterctl.client.kubeconfig import ClusterCredentials, load_kubeconfig
from clusterctl.client.rest import ApiClient, WatchStream, object_key, split_key

__all__ = [
    "AlreadyExists", "ApiClient", "ApiConnectionError", "ApiError", "ClientError", "ClusterCredentials", "Conflict",
    "Forbidden", "Invalid", "KubeconfigError", "NotFound", "PermanentError", "TemporaryError", "TooManyRequests",
    "WatchExpired", "WatchStream", "load_kubeconfig", "object_key", "split_key",
]
