"""Health gate for one node after its upgrade (run on the first control-plane host with the
release's python): the Node is Ready and reports VERSION (kubeletVersion ends in
"+clusterctl.VERSION"), every pod bound to it is Ready, and all of that holds without a break for
MIN_HEALTHY seconds. Exit 0 when it does, 1 with the last reason after TIMEOUT seconds.

python node_gate.py CLUSTERCTL KUBECONFIG NODE VERSION MIN_HEALTHY TIMEOUT
"""
import json
import subprocess
import sys
import time

clusterctl, kubeconfig, node, version, min_healthy, timeout = sys.argv[1:7]
min_healthy, timeout = float(min_healthy), float(timeout)


def get(*args):
    out = subprocess.run([clusterctl, "--kubeconfig", kubeconfig, "get", *args, "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return json.loads(out.stdout)


def ready(obj):
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def problem():
    try:
        n = get("node", node)
        pods = get("pods", "-A", "--field-selector", f"spec.nodeName={node}")["items"]
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"API: {exc}"
    kubelet = ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    if not kubelet.endswith(f"+clusterctl.{version}"):
        return f"node {node} runs {kubelet or 'nothing yet'}, not {version}"
    if not ready(n):
        return f"node {node} is not Ready"
    waiting = [p["metadata"]["name"] for p in pods
               if not p["metadata"].get("deletionTimestamp") and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not ready(p)]
    return f"pods not Ready on {node}: {', '.join(sorted(waiting))}" if waiting else None


deadline = time.monotonic() + timeout
healthy_since = None
last = "not checked"
while time.monotonic() < deadline:
    last = problem()
    now = time.monotonic()
    if last is None:
        healthy_since = healthy_since or now
        if now - healthy_since >= min_healthy:
            print(f"{node} healthy on {version} for {min_healthy:g}s")
            sys.exit(0)
    else:
        healthy_since = None
    time.sleep(0.5)
print(f"{node} failed its health gate within {timeout:g}s: {last}", file=sys.stderr)
sys.exit(1)
