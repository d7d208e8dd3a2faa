"""Kubernetes rules the agent applies to pod specs: command/args vs Entrypoint/Cmd, $(VAR), env
sources, Service variables, QoS classes, resolv.conf, status phases, back-off, config loading."""

from __future__ import annotations

import pytest

from node_runtime.config import AgentConfig, ConfigError
from node_runtime.podspec import argv_for, container_env, expand, qos_class, resolv_conf, service_env
from node_runtime.pods import Backoff
from node_runtime.status import ContainerRecord, phase_of

IMAGE = {"Entrypoint": ["/ep"], "Cmd": ["--default"], "Env": ["PATH=/bin", "FROM_IMAGE=1"]}


@pytest.mark.parametrize("container,expected", [
    ({}, ["/ep", "--default"]),
    ({"args": ["--x"]}, ["/ep", "--x"]),
    ({"command": ["/cmd"]}, ["/cmd"]),
    ({"command": ["/cmd"], "args": ["a", "$(NAME)", "$$(NAME)", "$(MISSING)"]}, ["/cmd", "a", "v", "$(NAME)", "$(MISSING)"]),
])
def test_command_and_args_follow_oci_rules(container, expected):
    assert argv_for(container, IMAGE, {"NAME": "v"}) == expected


def test_expand():
    assert expand("$(A)-$(B)", {"A": "1"}) == "1-$(B)"


async def test_env_sources_and_order():
    objs = {("ConfigMap", "cm"): {"data": {"k": "from-cm", "other": "o"}},
            ("Secret", "s"): {"data": {"pw": "c2VjcmV0"}}}

    async def lookup(kind, ns, name):
        return objs.get((kind, name))

    pod = {"metadata": {"name": "p", "namespace": "ns1", "uid": "u", "labels": {"a": "b"}}, "spec": {"nodeName": "n1"},
           "status": {"podIP": "10.0.0.5", "hostIP": "192.0.2.1"}}
    container = {"name": "c", "resources": {"limits": {"cpu": "1500m"}},
                 "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                 "env": [{"name": "X", "value": "$(FROM_IMAGE)-x"},
                         {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                         {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "HIP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                         {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}},
                         {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}
    svc = [{"metadata": {"name": "my-svc"}, "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]}},
           {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}]
    env = await container_env(pod, container, IMAGE, lookup, svc)
    assert env["FROM_IMAGE"] == "1" and env["X"] == "1-x" and env["CM_k"] == "from-cm" and env["K"] == "from-cm"
    assert env["PW"] == "secret" and "OPT" not in env and env["IP"] == "10.0.0.5" and env["HIP"] == "192.0.2.1"
    assert env["LBL"] == "b" and env["CPU"] == "2"
    assert env["MY_SVC_SERVICE_HOST"] == "10.96.0.9" and env["MY_SVC_SERVICE_PORT"] == "80"
    assert env["MY_SVC_SERVICE_PORT_HTTP"] == "80" and env["MY_SVC_PORT"] == "tcp://10.96.0.9:80"
    assert not any(k.startswith("HEADLESS_") for k in env)
    with pytest.raises(Exception, match='secret "gone" not found'):
        await container_env(pod, {"name": "c", "env": [{"name": "Y", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]},
                            IMAGE, lookup, [])
    assert service_env([]) == {}


@pytest.mark.parametrize("resources,expected", [
    ([{}], "BestEffort"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}], "Guaranteed"),
    ([{"requests": {"cpu": "100m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ([{"limits": {"memory": "1Gi"}}], "Burstable"),
])
def test_qos_class(resources, expected):
    pod = {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}}
    assert qos_class(pod) == expected


def test_resolv_conf():
    pod = {"metadata": {"name": "p", "namespace": "web"}, "spec": {}}
    text = resolv_conf(pod, "10.96.0.10", "cluster.local")
    assert text == "nameserver 10.96.0.10\nsearch web.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"


def test_phase():
    def rec(state, done=False, restarts=0):
        r = ContainerRecord("c", "img")
        r.state, r.done, r.restart_count = state, done, restarts
        return r
    running = {"running": {"startedAt": "t"}}
    ok = {"terminated": {"exitCode": 0}}
    bad = {"terminated": {"exitCode": 1}}
    assert phase_of([], [rec({"waiting": {"reason": "ContainerCreating"}})], "Always", init_failed=False) == "Pending"
    assert phase_of([rec(running, False)], [rec({"waiting": {"reason": "PodInitializing"}})], "Always", init_failed=False) == "Pending"
    assert phase_of([], [rec(running)], "Always", init_failed=False) == "Running"
    assert phase_of([], [rec(ok, True), rec(ok, True)], "Never", init_failed=False) == "Succeeded"
    assert phase_of([], [rec(ok, True), rec(bad, True)], "Never", init_failed=False) == "Failed"
    assert phase_of([], [rec({"waiting": {"reason": "CrashLoopBackOff"}}, restarts=2)], "Always", init_failed=False) == "Running"
    assert phase_of([], [rec(running)], "Always", init_failed=True) == "Failed"


def test_crashloop_backoff_doubles_caps_and_resets():
    b = Backoff(10, 300, 600)
    assert [b.next(1) for _ in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert b.next(700) == 0 and b.next(1) == 10


def test_config(tmp_path):
    p = tmp_path / "agent.yaml"
    p.write_text("node_name: n1\ndata_dir: data\nregistries: {allowed: ['127.0.0.1:5000']}\ntimings: {crashloop_base: 0.2}\n"
                 "labels: {zone: a}\ntaints: [{key: k, effect: NoSchedule}]\n")
    cfg = AgentConfig.load(p)
    assert cfg.data_dir == (tmp_path / "data").resolve() and cfg.timings.crashloop_base == 0.2 and cfg.timings.crashloop_max == 300
    assert cfg.registries_allowed == ["127.0.0.1:5000"] and cfg.labels == {"zone": "a"} and cfg.runtime == "process"
    p.write_text("node_name: n1\ndata_dir: d\ntimings: {nope: 1}\n")
    with pytest.raises(ConfigError, match="unknown timings: nope"):
        AgentConfig.load(p)
    p.write_text("node_name: n1\ndata_dir: d\nruntime: docker\n")
    with pytest.raises(ConfigError, match="process or podman"):
        AgentConfig.load(p)


def test_cli_rejects_bad_config(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "agent.yaml"
    bad.write_text("node_name: n\n")
    out = subprocess.run([sys.executable, "-m", "node_runtime.cli", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "needs data_dir" in out.stderr
    out = subprocess.run([sys.executable, "-m", "node_runtime.cli", "--config", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot read agent config" in out.stderr
