"""Write a standard kubeconfig (what kubectl, the official client and clusterctl read).

One cluster (server URL + the cluster CA as ``certificate-authority-data``), one user (a bearer
token), one context, made current. Written mode 0600 because it holds a credential.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml


def kubeconfig_dict(server: str, token: str, *, ca_pem: bytes | None = None, cluster: str = "clusterctl",
                    user: str = "admin", namespace: str | None = None) -> dict:
    cluster_entry: dict = {"server": server}
    if ca_pem is not None:
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    context_name = f"{user}@{cluster}"
    context: dict = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
    }


def write_kubeconfig(path: str | Path, server: str, token: str, *, ca_pem: bytes | None = None,
                     cluster: str = "clusterctl", user: str = "admin") -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_dump(kubeconfig_dict(server, token, ca_pem=ca_pem, cluster=cluster, user=user), sort_keys=False)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, p)
    return p
