"""Seeded fuzzing: the seed manifests with random leaves replaced by values of other types, random
keys dropped or added, sent as creates, updates and patches. No answer may be a 5xx."""

from __future__ import annotations

import copy
import http.client
import json
import random
from pathlib import Path

import yaml

MANIFESTS = Path(__file__).with_name("manifests")
WEIRD = [None, True, 0, -1, 2**40, 2**70, 1.5, "", "x" * 300, "-", [], [1, "a"], {}, {"a": {"b": None}},
         "Invalid_Name", "1Gi", "*/5 * * * *", "$patch", {"$patch": "delete"}, ["$retainKeys"]]
PATHS = {("", "Pod"): "/api/v1/namespaces/fuzz/pods", ("", "Service"): "/api/v1/namespaces/fuzz/services",
         ("", "Namespace"): "/api/v1/namespaces", ("apps", "Deployment"): "/apis/apps/v1/namespaces/fuzz/deployments",
         ("apps", "ReplicaSet"): "/apis/apps/v1/namespaces/fuzz/replicasets",
         ("apps", "DaemonSet"): "/apis/apps/v1/namespaces/fuzz/daemonsets",
         ("batch", "Job"): "/apis/batch/v1/namespaces/fuzz/jobs"}


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _mutate(obj: dict, rng: random.Random) -> dict:
    obj = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(obj) if p and p[0] not in ("apiVersion", "kind")]
        if not paths:
            break
        path = rng.choice(paths)
        parent = obj
        for part in path[:-1]:
            parent = parent[part]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD))
        elif action < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["bogus", "$patch", "status", "metadata"])] = copy.deepcopy(rng.choice(WEIRD))
    return obj


def _seeds() -> list[dict]:
    docs = []
    for f in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    for d in docs:
        d["metadata"].pop("namespace", None)
    return [d for d in docs if (d["apiVersion"].rpartition("/")[0], d["kind"]) in PATHS]


def test_fuzzed_bodies_never_get_5xx(control_plane):
    rng = random.Random(1123)
    conn = http.client.HTTPSConnection("127.0.0.1", control_plane.port, context=control_plane.ssl_context(), timeout=10)
    headers = {"Authorization": f"Bearer {control_plane.token}"}

    def send(method, path, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={**headers, "Content-Type": ctype})
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.status < 500, (method, path, body, payload[:500])
        return resp.status

    send("POST", "/api/v1/namespaces", {"metadata": {"name": "fuzz"}})
    seeds = _seeds()
    for seed in seeds:
        send("POST", PATHS[(seed["apiVersion"].rpartition("/")[0], seed["kind"])] + "?fieldValidation=Ignore", seed)
    codes: dict[int, int] = {}
    for i in range(400):
        seed = rng.choice(seeds)
        base = PATHS[(seed["apiVersion"].rpartition("/")[0], seed["kind"])]
        name = seed["metadata"]["name"]
        fuzzed = _mutate(seed, rng)
        mode = rng.choice(["create", "put", "merge", "strategic", "status"])
        if mode == "create":
            status = send("POST", base + rng.choice(["", "?fieldValidation=Strict", "?dryRun=All"]), fuzzed)
        elif mode == "put":
            status = send("PUT", f"{base}/{name}", fuzzed)
        elif mode == "status":
            status = send("PUT", f"{base}/{name}/status", fuzzed)
        else:
            ctype = "application/merge-patch+json" if mode == "merge" else "application/strategic-merge-patch+json"
            status = send("PATCH", f"{base}/{name}", fuzzed, ctype)
        codes[status] = codes.get(status, 0) + 1
    assert any(c >= 400 for c in codes) and any(c < 300 for c in codes), codes
    conn.close()
    assert control_plane.request("GET", "/api/v1/namespaces/fuzz/pods").status == 200
