"""get / apply / create / delete / patch against a real API server (server-side tables, 3-way apply)."""

from __future__ import annotations

import json
import textwrap

import yaml

WEB = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: cart
      namespace: shop
      labels: {app: cart, tier: back}
    spec:
      replicas: 2
      selector: {matchLabels: {app: cart}}
      template:
        metadata: {labels: {app: cart}}
        spec:
          containers:
          - {name: cart, image: "registry.local/cart:v1", ports: [{containerPort: 8080}]}
    """)


def test_get_nodes_prints_the_servers_table(cluster):
    out = cluster.ok("get", "nodes")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [r.split()[0] for r in rows] == ["hollow-0", "hollow-1"]
    assert all(r.split()[1] == "Ready" for r in rows)
    wide = cluster.ok("get", "nodes", "-o", "wide").splitlines()[0].split()
    assert "INTERNAL-IP" in wide and "KERNEL-VERSION" in wide


def test_get_output_formats(cluster):
    assert cluster.ok("get", "ns", "default", "-o", "name").strip() == "namespace/default"
    doc = json.loads(cluster.ok("get", "ns", "default", "-o", "json"))
    assert doc["kind"] == "Namespace" and doc["metadata"]["name"] == "default"
    listing = yaml.safe_load(cluster.ok("get", "namespaces", "-o", "yaml"))
    assert listing["kind"] == "List" and "kube-system" in [i["metadata"]["name"] for i in listing["items"]]
    names = cluster.ok("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
    assert names == "hollow-0 hollow-1"  # no newline added, like kubectl


def test_get_missing_object_is_one_line_server_error(cluster):
    r = cluster.run("get", "pod", "nope")
    assert r.code == 1
    assert r.err.strip() == 'Error from server (NotFound): pods "nope" not found'
    r = cluster.run("get", "flurbs")
    assert r.code != 0 and "flurbs" in r.err and len(r.err.strip().splitlines()) == 1


def test_apply_creates_then_is_unchanged_then_configures_and_prunes_dropped_fields(cluster, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(WEB)
    assert cluster.ok("apply", "-f", str(f)).splitlines() == ["namespace/shop created", "deployment.apps/cart created"]
    assert cluster.ok("apply", "-f", str(f)).splitlines() == ["namespace/shop unchanged", "deployment.apps/cart unchanged"]
    # the next version drops the tier label and changes replicas, through stdin
    new = WEB.replace(", tier: back", "").replace("replicas: 2", "replicas: 3")
    out = cluster.ok("apply", "-f", "-", stdin=new)
    assert "deployment.apps/cart configured" in out
    dep = json.loads(cluster.ok("get", "deploy", "cart", "-n", "shop", "-o", "json"))
    assert dep["spec"]["replicas"] == 3
    assert dep["metadata"]["labels"] == {"app": "cart"}  # dropped since the last apply: removed
    # a label someone else added (not in last-applied) survives the next apply
    cluster.ok("label", "deploy", "cart", "-n", "shop", "owner=ops")
    cluster.ok("apply", "-f", "-", stdin=new.replace("replicas: 3", "replicas: 1"))
    dep = json.loads(cluster.ok("get", "deploy", "cart", "-n", "shop", "-o", "json"))
    assert dep["metadata"]["labels"] == {"app": "cart", "owner": "ops"} and dep["spec"]["replicas"] == 1
    # -A lists across namespaces with a NAMESPACE column
    header, *rows = cluster.ok("get", "deploy", "-A").splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"] and any(r.split()[:2] == ["shop", "cart"] for r in rows)
    # the Deployment first: deleting the namespace first empties it on the server within tens of ms (as
    # kubectl would, the delete of the Deployment after it is then a NotFound, exit 1, if the cleanup won)
    namespace, deployment = WEB.split("---\n")
    g = tmp_path / "app-reversed.yaml"
    g.write_text(deployment + "---\n" + namespace)
    assert cluster.ok("delete", "-f", str(g)).splitlines() == ['deployment.apps "cart" deleted', 'namespace "shop" deleted']
    assert cluster.run("get", "deploy", "cart", "-n", "shop").code == 1


def test_apply_folder_and_server_dry_run(cluster, tmp_path):
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {k: v}\n")
    (tmp_path / "b.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\ndata: {k: v}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    out = cluster.ok("apply", "-f", str(tmp_path), "--dry-run=server")
    assert out.splitlines() == ["configmap/one created (server dry run)", "configmap/two created (server dry run)"]
    assert cluster.run("get", "cm", "one").code == 1
    cluster.ok("apply", "-f", str(tmp_path))
    assert cluster.ok("get", "cm", "one", "two", "-o", "name").split() == ["configmap/one", "configmap/two"]
    # validation is the server's: a bad object fails with its message
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n"
    r = cluster.run("apply", "-f", "-", stdin=bad)
    assert r.code == 1 and r.err.startswith("Error from server (Invalid)") and "Bad_Name" in r.err
    assert cluster.ok("delete", "cm", "-l", "nothing=here").strip() == "No resources found in default namespace."
    cluster.ok("delete", "configmap/one", "configmap/two")


def test_create_builtins_and_patch(cluster):
    assert cluster.ok("create", "namespace", "tmp-ns").strip() == "namespace/tmp-ns created"
    assert cluster.ok("create", "configmap", "cfg", "-n", "tmp-ns", "--from-literal=mode=fast").strip() == "configmap/cfg created"
    cm = json.loads(cluster.ok("get", "cm", "cfg", "-n", "tmp-ns", "-o", "json"))
    assert cm["data"] == {"mode": "fast"}
    cluster.ok("create", "secret", "generic", "pw", "-n", "tmp-ns", "--from-literal=password=s3cret")
    assert cluster.ok("get", "secret", "pw", "-n", "tmp-ns", "-o", "jsonpath={.data.password}") == "czNjcmV0"
    r = cluster.run("create", "configmap", "cfg", "-n", "tmp-ns")
    assert r.code == 1 and "AlreadyExists" in r.err
    assert cluster.ok("patch", "cm", "cfg", "-n", "tmp-ns", "--type=merge", "-p", '{"data":{"mode":"slow"}}').strip() == "configmap/cfg patched"
    assert cluster.ok("get", "cm", "cfg", "-n", "tmp-ns", "-o", "jsonpath={.data.mode}") == "slow"
    cluster.ok("delete", "ns", "tmp-ns")


def test_get_watch_prints_a_row_per_change(cluster):
    import os
    import selectors
    import subprocess
    import sys
    import time
    cluster.ok("create", "configmap", "before")
    proc = subprocess.Popen([sys.executable, "-m", "clusterctl", "--kubeconfig", str(cluster.cp.kubeconfig), "get", "configmaps", "-w"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ)
        lines: list[str] = []
        buf = b""

        def read_until(pred, timeout=45.0):
            nonlocal buf
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not pred():
                if sel.select(timeout=0.2):
                    buf += os.read(proc.stdout.fileno(), 65536)
                    *done, buf = buf.split(b"\n")
                    lines.extend(line.decode() for line in done)
            assert pred(), lines

        read_until(lambda: any(line.startswith("before ") for line in lines))  # the initial table
        cluster.ok("create", "configmap", "watched", "--from-literal=a=1")
        read_until(lambda: any(line.startswith("watched ") for line in lines))
        row = next(line for line in lines if line.startswith("watched ")).split()
        assert row[1] == "1"  # DATA column from the server's table
    finally:
        proc.terminate()
        proc.wait(30)
    cluster.ok("delete", "cm", "watched", "before")
