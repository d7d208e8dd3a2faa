"""cordon / uncordon / drain (Eviction API + PDBs) / top, and version / api-resources / completion / -h."""

from __future__ import annotations

import json
import subprocess

import pytest

from clusterctl.cli import KUBECTL_VERBS


def test_cordon_uncordon(cluster):
    assert cluster.ok("cordon", "hollow-1").strip() == "node/hollow-1 cordoned"
    status = cluster.ok("get", "node", "hollow-1").splitlines()[1].split()[1]
    assert status == "Ready,SchedulingDisabled", cluster.ok("get", "node", "hollow-1", "-o", "yaml")
    assert cluster.ok("cordon", "hollow-1").strip() == "node/hollow-1 already cordoned"
    assert cluster.ok("uncordon", "hollow-1").strip() == "node/hollow-1 uncordoned"
    assert cluster.ok("get", "node", "hollow-1").splitlines()[1].split()[1] == "Ready"


def test_drain_evicts_through_pdbs_and_skips_daemonsets(cluster):
    cluster.ok("create", "deployment", "api", "--image=registry.local/api:v1", "--replicas=4")
    ds = """{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent"},
             "spec":{"selector":{"matchLabels":{"app":"agent"}},"template":{"metadata":{"labels":{"app":"agent"}},
             "spec":{"containers":[{"name":"a","image":"registry.local/agent:v1"}]}}}}"""
    cluster.ok("apply", "-f", "-", stdin=ds)
    pdb = """{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"api"},
              "spec":{"minAvailable":3,"selector":{"matchLabels":{"app":"api"}}}}"""
    cluster.ok("apply", "-f", "-", stdin=pdb)

    def pods():
        return [p for p in json.loads(cluster.ok("get", "pods", "-o", "json"))["items"] if not p["metadata"].get("deletionTimestamp")]

    cluster.wait(lambda: sum(1 for p in pods() if p["status"].get("phase") == "Running") == 6, what="4 api + 2 agent pods")
    on_node = [p["metadata"]["name"] for p in pods() if p["spec"]["nodeName"] == "hollow-0" and p["metadata"]["name"].startswith("api")]
    assert on_node

    r = cluster.run("drain", "hollow-0")
    assert r.code != 0 and "DaemonSet-managed" in r.err and "--ignore-daemonsets" in r.err

    out = cluster.ok("drain", "hollow-0", "--ignore-daemonsets", "--timeout=60s", "--eviction-retry-interval=0.2")
    assert out.splitlines()[0] == "node/hollow-0 already cordoned" or out.splitlines()[0] == "node/hollow-0 cordoned"
    assert out.splitlines()[-1] == "node/hollow-0 drained"
    for name in on_node:
        assert f"pod/{name} evicted" in out
    if len(on_node) >= 2:
        assert "disruption budget" in out  # the PDB refused at least once (429) and drain retried
    left = [p for p in pods() if p["spec"].get("nodeName") == "hollow-0"]
    assert [p["metadata"]["labels"].get("app") for p in left] == ["agent"]  # DaemonSet pod stays
    cluster.ok("uncordon", "hollow-0")
    for what in ("deploy/api", "ds/agent", "pdb/api"):
        cluster.ok("delete", what)


def test_top_nodes_reads_published_usage_or_says_why_not(cluster):
    r = cluster.run("top", "nodes")
    assert r.code != 0 and "Metrics not available" in r.err
    usage = json.dumps({"cpu": "250m", "memory": str(512 * 1024 * 1024), "pods": 1})
    cluster.ok("annotate", "node", "hollow-0", f"clusterctl.io/usage={usage}", "--overwrite")
    header, *rows = cluster.ok("top", "nodes").splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert rows[0].split() == ["hollow-0", "250m", "6%", "512Mi", "6%"]
    assert rows[1].split()[1] == "<unknown>"
    cluster.ok("annotate", "node", "hollow-0", "clusterctl.io/usage-")


def test_version_api_resources(cluster):
    out = cluster.ok("version")
    assert out.startswith("Client Version: clusterctl v") and "Server Version: v1.32" in out
    header, *rows = cluster.ok("api-resources").splitlines()
    assert header.split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    names = {r.split()[0] for r in rows}
    assert {"pods", "deployments", "services", "nodes", "poddisruptionbudgets"} <= names


def test_completion_scripts_are_valid_shell(cluster):
    script = cluster.ok("completion", "bash")
    assert "complete -o default -F _clusterctl clusterctl" in script and " drain " in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    # completing `clusterctl get d<TAB>` offers resource types
    probe = script + '\nCOMP_WORDS=(clusterctl get dep); COMP_CWORD=2; _clusterctl; echo "${COMPREPLY[@]}"\n'
    assert "deployments" in subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout
    assert cluster.ok("completion", "zsh").startswith("#compdef clusterctl")


@pytest.mark.parametrize("verb", [v for v in KUBECTL_VERBS])
def test_every_verb_has_help_with_examples(cluster, verb):
    r = cluster.run(verb, "-h")
    assert r.code == 0 and "examples:" in r.out and "clusterctl " + verb.split("-")[0] in r.out
