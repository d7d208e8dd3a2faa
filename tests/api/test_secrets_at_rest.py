"""Secrets are encrypted at rest: no file of the data directory holds a secret's value."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from kubernetes import client

from clusterctl.api.testing import FAST_TIMINGS, api_client, start_control_plane

PLAIN = "s3cr3t-Value-4f9a1c-never-on-disk"
PLAIN_DATA = "another-Secret-7d2e0b-data-value"


def _grep(data_dir: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            hits += [f"{path}: {n!r}" for n in needles if n in blob]
    return hits


def test_secret_values_never_reach_the_data_dir(tmp_path):
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS)
    try:
        api = api_client(cp)
        core = client.CoreV1Api(api)
        core.create_namespaced_secret("default", {"metadata": {"name": "s1"}, "stringData": {"password": PLAIN},
                                                  "data": {"token": base64.b64encode(PLAIN_DATA.encode()).decode()}})
        manifest = tmp_path / "secret.yaml"
        manifest.write_text(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\nstringData:\n  key: {PLAIN}\n")
        subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", str(manifest)], check=True,
                       capture_output=True, timeout=60)
        s = core.read_namespaced_secret("s1", "default")
        assert base64.b64decode(s.data["password"]).decode() == PLAIN
        assert base64.b64decode(s.data["token"]).decode() == PLAIN_DATA
        listed = core.list_namespaced_secret("default").items
        assert {x.metadata.name for x in listed} >= {"s1", "applied"}
        needles = [PLAIN.encode(), PLAIN_DATA.encode(), base64.b64encode(PLAIN.encode()),
                   base64.b64encode(PLAIN_DATA.encode())]
        assert _grep(cp.data_dir, needles) == []
        api.close()
        cp.restart()
        assert _grep(cp.data_dir, needles) == []    # also after the snapshot written at shutdown
        api = api_client(cp)
        again = client.CoreV1Api(api).read_namespaced_secret("applied", "default")
        assert base64.b64decode(again.data["key"]).decode() == PLAIN
        api.close()
    finally:
        cp.stop()
