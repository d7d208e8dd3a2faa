"""Frontends from Services and Pods (pure): which address forwards to which ready pods."""

from __future__ import annotations

from node_runtime.proxy.table import Backend, build_frontends as _build, endpoints_from_pods


def build_frontends(services, pods):
    return _build(services, endpoints_from_pods(services, pods))


def pod(name, ip, *, ready=True, phase="Running", deleting=False, labels=None, ns="default", ports=None):
    meta = {"name": name, "namespace": ns, "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "ports": ports if ports is not None else [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def svc(name="web", *, ports, type_="ClusterIP", ip="10.96.0.5", selector=None, affinity=False, ns="default"):
    spec = {"type": type_, "clusterIP": ip, "selector": {"app": "web"} if selector is None else selector, "ports": ports}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 60}}
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_only_ready_running_undeleted_matching_pods_in_the_namespace_are_backends():
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.2.2", ready=False), pod("c", "10.244.2.3", deleting=True),
            pod("d", "10.244.2.4", phase="Pending"), pod("e", "10.244.2.5", labels={"app": "other"}),
            pod("f", "10.244.2.6", ns="prod"), pod("g", "10.244.1.9")]
    fe = build_frontends([svc(ports=[{"port": 80, "targetPort": 8080}])], pods)
    assert list(fe) == [("10.96.0.5", 80)]
    assert fe[("10.96.0.5", 80)].backends == [Backend("10.244.1.2", 8080), Backend("10.244.1.9", 8080)]


def test_node_ports_multiple_ports_named_target_ports_and_affinity():
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", ports=[{"name": "http", "containerPort": 9090}]),
            pod("c", "10.244.1.4", ports=[])]
    fe = build_frontends([svc(type_="NodePort", affinity=True, ports=[
        {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30001},
        {"name": "admin", "port": 81, "targetPort": "9000", "nodePort": 30002},
        {"name": "dns", "port": 53, "protocol": "UDP"}])], pods)
    assert set(fe) == {("10.96.0.5", 80), ("", 30001), ("10.96.0.5", 81), ("", 30002)}
    assert fe[("", 30001)].backends == [Backend("10.244.1.2", 8080), Backend("10.244.1.3", 9090)]   # c has no such port name
    assert [b.port for b in fe[("10.96.0.5", 81)].backends] == [9000, 9000, 9000]
    assert fe[("", 30001)].affinity_timeout == 60.0


def test_headless_external_name_and_selectorless_services_have_no_frontend():
    services = [svc("h", ip="None", ports=[{"port": 80}]), svc("x", ip="10.96.0.6", selector={}, ports=[{"port": 53}]),
                {"metadata": {"name": "e", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "a.b"}}]
    assert build_frontends(services, [pod("a", "10.244.1.2")]) == {}
