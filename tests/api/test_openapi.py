"""The /openapi/v3 documents kubectl reads, and unknown-field detection for fieldValidation."""

from __future__ import annotations

import json

import pytest
import yaml

from clusterctl.api.kinds import KindInfo, Registry, default_registry
from clusterctl.api.openapi import (
    openapi_v3_document,
    openapi_v3_document_json,
    openapi_v3_index,
    schema_for,
    unknown_fields,
)
from clusterctl.api.openapi_schemas import definitions
from clusterctl.api.openapi_schemas.patch_strategies import PATCH_STRATEGIES

REGISTRY = default_registry()

# Every kind of the brief, with its List where Kubernetes has one.
BRIEF_KINDS = [
    ("", "v1", k) for k in ("Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "Event",
                            "ServiceAccount")
] + [
    ("discovery.k8s.io", "v1", "EndpointSlice"), ("apps", "v1", "Deployment"), ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "DaemonSet"), ("apps", "v1", "StatefulSet"), ("batch", "v1", "Job"), ("batch", "v1", "CronJob"),
    ("coordination.k8s.io", "v1", "Lease"), ("scheduling.k8s.io", "v1", "PriorityClass"),
    ("policy", "v1", "PodDisruptionBudget"), ("autoscaling", "v2", "HorizontalPodAutoscaler"),
]
NO_LIST_KINDS = [("", "v1", "Binding"), ("policy", "v1", "Eviction"), ("autoscaling", "v1", "Scale"),
                 ("", "v1", "Status"), ("", "v1", "DeleteOptions"), ("apps", "v1", "Status")]


@pytest.mark.parametrize("gvk", BRIEF_KINDS + [(g, v, k + "List") for g, v, k in BRIEF_KINDS] + NO_LIST_KINDS,
                         ids=lambda gvk: "/".join(gvk))
def test_every_kind_has_a_schema_with_its_gvk(gvk):
    group, version, kind = gvk
    schema = schema_for(group, version, kind)
    assert schema is not None
    assert {"group": group, "kind": kind, "version": version} in schema["x-kubernetes-group-version-kind"]
    assert "apiVersion" in schema["properties"] and "kind" in schema["properties"]


def test_schema_names_follow_kubernetes():
    defs = definitions()
    for name in ("io.k8s.api.core.v1.Pod", "io.k8s.api.apps.v1.Deployment", "io.k8s.api.core.v1.Container",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
                 "io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity",
                 "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler", "io.k8s.api.discovery.v1.EndpointSlice"):
        assert name in defs, name
    container_ports = defs["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]
    assert container_ports["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    assert defs["io.k8s.api.core.v1.Container"]["required"] == ["name"]
    replicas = defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]
    assert replicas["type"] == "integer" and replicas["format"] == "int32"
    assert defs["io.k8s.api.coordination.v1.LeaseSpec"]["properties"]["renewTime"]["allOf"][0]["$ref"].endswith("MicroTime")


def test_patch_extensions_come_from_the_one_table():
    """Every strategy in the table is in the schemas, and the schemas have no other."""
    defs = definitions()
    seen = {}
    for name, schema in defs.items():
        for field, prop in schema.get("properties", {}).items():
            if "x-kubernetes-patch-strategy" in prop:
                seen[(name, field)] = (prop["x-kubernetes-patch-strategy"], prop.get("x-kubernetes-patch-merge-key"))
    expected = {
        (name, field): row
        for name, fields in PATCH_STRATEGIES.items() if name in defs
        for field, row in fields.items() if field in defs[name].get("properties", {})
    }
    assert seen == expected
    assert seen[("io.k8s.api.core.v1.PodSpec", "containers")] == ("merge", "name")
    assert seen[("io.k8s.api.core.v1.Container", "ports")] == ("merge", "containerPort")
    assert seen[("io.k8s.api.core.v1.ServiceSpec", "ports")] == ("merge", "port")
    assert seen[("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers")] == ("merge", None)
    assert ("io.k8s.api.core.v1.PodSpec", "tolerations") not in seen


def test_index_lists_each_group_version_with_a_hash():
    index = openapi_v3_index(REGISTRY)
    assert set(index["paths"]) == {
        "api/v1", "apis/apps/v1", "apis/batch/v1", "apis/autoscaling/v2", "apis/discovery.k8s.io/v1",
        "apis/coordination.k8s.io/v1", "apis/policy/v1", "apis/scheduling.k8s.io/v1",
    }
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    body, digest = openapi_v3_document_json(REGISTRY, "apps", "v1")
    assert url == f"/openapi/v3/apis/apps/v1?hash={digest}"
    assert json.loads(body) == openapi_v3_document(REGISTRY, "apps", "v1")
    assert openapi_v3_document(REGISTRY, "example.com", "v1") is None


def test_hash_changes_when_the_served_kinds_change():
    registry = Registry(list(REGISTRY))
    before = openapi_v3_index(registry)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    registry.add(KindInfo("apps", "v1", "ControllerRevision", "controllerrevisions"))
    after = openapi_v3_index(registry)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert before != after


def _documents():
    for group, version in {(k.group, k.version) for k in REGISTRY}:
        yield f"{group or 'core'}/{version}", openapi_v3_document(REGISTRY, group, version)


@pytest.mark.parametrize(("gv", "doc"), list(_documents()), ids=lambda x: x if isinstance(x, str) else "")
def test_documents_carry_what_kubectl_checks(gv, doc):
    assert doc["openapi"].startswith("3.0")
    schemas = doc["components"]["schemas"]
    patch_gvks = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            if path.endswith("/"):  # getAPIResources, like Kubernetes' has no GVK nor action
                continue
            assert "x-kubernetes-action" in op and "x-kubernetes-group-version-kind" in op, (path, method)
            if method == "patch":
                gvk = op["x-kubernetes-group-version-kind"]
                patch_gvks.add((gvk["group"], gvk["version"], gvk["kind"]))
                params = {(p["name"], p["in"]) for p in op["parameters"]}
                assert ("fieldValidation", "query") in params, path
                assert "application/strategic-merge-patch+json" in op["requestBody"]["content"], path
    for kind in REGISTRY:
        if f"{kind.group or 'core'}/{kind.version}" != gv:
            continue
        assert (kind.group, kind.version, kind.kind) in patch_gvks
        # kubectl apply looks the kind's schema up by this extension in the same document
        assert any({"group": kind.group, "kind": kind.kind, "version": kind.version}
                   in s.get("x-kubernetes-group-version-kind", []) for s in schemas.values())
    refs = set()

    def collect(value):
        if isinstance(value, dict):
            if "$ref" in value:
                refs.add(value["$ref"].removeprefix("#/components/schemas/"))
            for child in value.values():
                collect(child)
        elif isinstance(value, list):
            for child in value:
                collect(child)

    collect(doc)
    assert refs <= set(schemas), refs - set(schemas)


def test_operations_are_named_like_kube_apiserver():
    doc = openapi_v3_document(REGISTRY, "apps", "v1")
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert item["get"]["operationId"] == "readAppsV1NamespacedDeployment"
    assert item["patch"]["operationId"] == "patchAppsV1NamespacedDeployment"
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale", "version": "v1"}
    core = openapi_v3_document(REGISTRY, "", "v1")
    eviction = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert eviction["operationId"] == "createCoreV1NamespacedPodEviction"
    assert eviction["x-kubernetes-group-version-kind"] == {"group": "policy", "kind": "Eviction", "version": "v1"}
    assert core["paths"]["/api/v1/nodes/{name}"]["get"]["operationId"] == "readCoreV1Node"
    assert core["paths"]["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"


# ---------------------------------------------------------------------------- unknown fields

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, labels: {app: nginx}, annotations: {a: b}}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: "25%"}}
  selector: {matchLabels: {app: nginx}, matchExpressions: [{key: tier, operator: In, values: [web]}]}
  template:
    metadata: {labels: {app: nginx, tier: web}}
    spec:
      terminationGracePeriodSeconds: 30
      nodeSelector: {disk: ssd}
      tolerations: [{key: k, operator: Exists, effect: NoSchedule}]
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: nginx}}}
      volumes: [{name: data, emptyDir: {sizeLimit: 1Gi}}, {name: cfg, configMap: {name: cfg, items: [{key: a, path: a}]}}]
      initContainers: [{name: init, image: busybox, command: [sh, -c, "true"]}]
      containers:
      - name: nginx
        image: nginx:1.25
        imagePullPolicy: IfNotPresent
        ports: [{containerPort: 80, name: http, protocol: TCP}]
        env:
        - {name: A, value: "1"}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        envFrom: [{configMapRef: {name: cfg}}]
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi}}
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe: {httpGet: {path: /, port: http}, initialDelaySeconds: 2, periodSeconds: 5}
        livenessProbe: {tcpSocket: {port: 80}}
        lifecycle: {preStop: {exec: {command: [sleep, "5"]}}}
        securityContext: {runAsNonRoot: false, capabilities: {add: [NET_ADMIN]}}
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  type: NodePort
  selector: {app: nginx}
  ports: [{port: 80, targetPort: http, nodePort: 30080, protocol: TCP, name: http}]
  sessionAffinity: None
---
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  backoffLimit: 4
  completions: 3
  parallelism: 2
  ttlSecondsAfterFinished: 100
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl, command: [perl, "-Mbignum=bpi", "-wle", "print bpi(2000)"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "*/1 * * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 3
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: hello, image: busybox, args: [/bin/sh, -c, date]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: fluentd, namespace: kube-system}
spec:
  selector: {matchLabels: {name: fluentd}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {name: fluentd}}
    spec:
      tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
      hostNetwork: true
      containers:
      - name: fluentd
        image: fluentd
        volumeMounts: [{name: varlog, mountPath: /var/log, readOnly: true}]
      volumes: [{name: varlog, hostPath: {path: /var/log, type: Directory}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx, volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: nginx}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nginx}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies: [{type: Percent, value: 100, periodSeconds: 15}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: nginx}
spec: {minAvailable: 1, selector: {matchLabels: {app: nginx}}}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: u1, controller: true}]}
spec:
  containers: [{name: c, image: busybox, stdin: true, tty: true}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}]
  containerStatuses: [{name: c, ready: true, restartCount: 0, image: busybox, imageID: "", state: {running: {startedAt: "2026-01-01T00:00:00Z"}}}]
---
apiVersion: v1
kind: Secret
metadata: {name: s}
type: Opaque
data: {k: dmFsdWU=}
stringData: {other: plain}
"""


def _gvk(obj):
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version, obj["kind"]


@pytest.mark.parametrize("manifest", list(yaml.safe_load_all(MANIFESTS)), ids=lambda m: m["kind"])
def test_valid_manifests_have_no_unknown_fields(manifest):
    assert unknown_fields(manifest, *_gvk(manifest)) == []


UNKNOWN_CASES = [
    ({"spec": {"foo": 1}}, ["spec.foo"]),
    ({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "imagee": "x"}]}}}},
     ["spec.template.spec.containers[1].imagee"]),
    ({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostport": 1}]}]}}}},
     ["spec.template.spec.containers[0].ports[0].hostport"]),
    ({"metadata": {"name": "x", "lables": {"a": "b"}}}, ["metadata.lables"]),
    ({"metadata": {"labels": {"any-key": "is fine"}, "annotations": {"also": "fine"}}}, []),
    ({"replicas": 3}, ["replicas"]),
    ({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1, "surge": 2}}, "selector": {"matchLabel": {}}}},
     ["spec.strategy.rollingUpdate.surge", "spec.selector.matchLabel"]),
    ({"spec": {"template": {"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "nvidia.com/gpu": 1}}}]}}}}, []),
]


@pytest.mark.parametrize(("patch", "expected"), UNKNOWN_CASES)
def test_unknown_fields_are_named_by_path(patch, expected):
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", **patch}
    assert unknown_fields(obj, "apps", "v1", "Deployment") == expected


def test_unknown_fields_respects_preserve_unknown_fields_and_free_form_objects():
    managed = {"metadata": {"managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}}
    assert unknown_fields(managed, "apps", "v1", "Deployment") == []
    # an unknown kind has no schema: nothing is reported
    assert unknown_fields({"spec": {"anything": 1}}, "example.com", "v1", "Widget") == []


def test_schemas_match_what_the_python_client_serializes():
    """An object built with the official client's models has no unknown fields in our schemas."""
    from kubernetes import client

    deployment = client.V1Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            strategy=client.V1DeploymentStrategy(
                type="RollingUpdate", rolling_update=client.V1RollingUpdateDeployment(max_surge="25%")),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="nginx", image="nginx",
                    ports=[client.V1ContainerPort(container_port=80)],
                    env=[client.V1EnvVar(name="A", value_from=client.V1EnvVarSource(
                        field_ref=client.V1ObjectFieldSelector(field_path="metadata.name")))],
                    resources=client.V1ResourceRequirements(limits={"cpu": "500m"}),
                )]),
            ),
        ),
    )
    body = client.ApiClient().sanitize_for_serialization(deployment)
    assert body["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    assert unknown_fields(body, "apps", "v1", "Deployment") == []
    hpa = client.V2HorizontalPodAutoscaler(
        api_version="autoscaling/v2", kind="HorizontalPodAutoscaler", metadata=client.V1ObjectMeta(name="h"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            max_replicas=3, scale_target_ref=client.V2CrossVersionObjectReference(kind="Deployment", name="web"),
            metrics=[client.V2MetricSpec(type="Resource", resource=client.V2ResourceMetricSource(
                name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=50)))]),
    )
    assert unknown_fields(client.ApiClient().sanitize_for_serialization(hpa), "autoscaling", "v2",
                          "HorizontalPodAutoscaler") == []


# ---------------------------------------------------------------------------- the real kubectl
#
# A stand-in server that serves only what this module and its neighbours own: discovery (from the
# registry), /openapi/v3 (ours), create/get/patch of Deployments (patches applied by
# clusterctl.api.patch) and Table output (clusterctl.api.tables). The real kubectl 1.32 is driven
# against it: if it finds fieldValidation on our PATCH operations it sends fieldValidation=Strict
# instead of validating client-side, and `apply` of an edited manifest computes its strategic
# merge patch from our schemas' patch extensions.

import asyncio  # noqa: E402
import shutil  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from aiohttp import web  # noqa: E402

from clusterctl.api.patch import apply_strategic_merge_patch  # noqa: E402
from clusterctl.api.tables import to_table  # noqa: E402


def _discovery_resources(group: str, version: str) -> dict:
    resources = []
    for kind in REGISTRY:
        if (kind.group, kind.version) != (group, version):
            continue
        resources.append({"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                          "kind": kind.kind, "verbs": list(kind.verbs), "shortNames": list(kind.short_names)})
        for sub in kind.subresources:
            resources.append({"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                              "kind": kind.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


class StandIn:
    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str, str, str]] = []  # method, path, query, content type
        self.patches: list[dict] = []
        self.revision = 1

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.query_string, request.content_type))
        path = request.path.rstrip("/")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0+clusterctl.test",
                                      "platform": "linux/amd64"})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = sorted({k.group for k in REGISTRY if k.group})
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in
                                         sorted({k.version for k in REGISTRY if k.group == g})],
                 "preferredVersion": {"groupVersion": f"{g}/{next(k.version for k in REGISTRY if k.group == g)}",
                                      "version": next(k.version for k in REGISTRY if k.group == g)}}
                for g in groups]})
        if path == "/api/v1":
            return web.json_response(_discovery_resources("", "v1"))
        if path.startswith("/apis/") and path.count("/") == 3:
            _, _, group, version = path.split("/")
            return web.json_response(_discovery_resources(group, version))
        if path == "/openapi/v3":
            return web.json_response(openapi_v3_index(REGISTRY))
        if path.startswith("/openapi/v3/"):
            key = path.removeprefix("/openapi/v3/")
            parts = key.split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            found = openapi_v3_document_json(REGISTRY, group, version)
            if found is None:
                return web.json_response({"kind": "Status", "code": 404}, status=404)
            return web.Response(body=found[0], content_type="application/json")
        if path.startswith("/apis/apps/v1/namespaces/default/deployments"):
            return await self.deployments(request, path)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                  "reason": "NotFound", "message": f"{path} not found"}, status=404)

    async def deployments(self, request: web.Request, path: str) -> web.Response:
        name = path.rsplit("/", 1)[1] if path.count("/") == 7 else None
        if request.method == "GET" and name is None:
            objects = list(self.objects.values())
            if "as=Table" in request.headers.get("Accept", ""):
                kind = REGISTRY.by_kind("apps", "Deployment")
                return web.json_response(to_table(kind, objects, wide=True, now=datetime.now(timezone.utc)))
            return web.json_response({"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": objects})
        if request.method == "GET":
            if name not in self.objects:
                return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                          "reason": "NotFound", "details": {"name": name, "group": "apps",
                                                                            "kind": "deployments"},
                                          "message": f'deployments.apps "{name}" not found'}, status=404)
            return web.json_response(self.objects[name])
        body = await request.json()
        if request.method == "POST":
            name = body["metadata"]["name"]
            obj = body
            status = 201
        elif request.method == "PATCH":
            assert request.content_type == "application/strategic-merge-patch+json"
            self.patches.append(body)
            obj = apply_strategic_merge_patch(self.objects[name], body, group="apps", version="v1", kind="Deployment")
            status = 200
        else:
            return web.json_response({"kind": "Status", "code": 405}, status=405)
        self.revision += 1
        obj["metadata"].update(namespace="default", uid="uid-1", resourceVersion=str(self.revision),
                               creationTimestamp="2026-01-01T00:00:00Z", generation=self.revision)
        self.objects[name] = obj
        return web.json_response(obj, status=status)


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        ports: [{containerPort: 80}]
"""


async def _kubectl(kubeconfig, *args, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubeconfig.parent / "cache"), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_real_kubectl_uses_our_openapi_for_validation_and_apply(tmp_path):
    assert shutil.which("kubectl"), "kubectl 1.32 is part of this machine kind"
    stand_in = StandIn()
    server = web.Server(stand_in.handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u"}}],
        "users": [{"name": "u", "user": {}}],
    }))
    try:
        manifest = tmp_path / "web.yaml"
        manifest.write_text(DEPLOYMENT)
        code, out, err = await _kubectl(kubeconfig, "apply", "-f", str(manifest))
        assert code == 0, err
        posts = [r for r in stand_in.requests if r[0] == "POST"]
        assert posts and "fieldValidation=Strict" in posts[0][2], stand_in.requests

        # edit: new image, env B dropped, a sidecar added; kubectl diffs with our patch extensions
        manifest.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26")
                            .replace(', {name: B, value: "2"}', "")
                            + "      - {name: log, image: busybox}\n")
        code, out, err = await _kubectl(kubeconfig, "apply", "-f", str(manifest))
        assert code == 0, err
        assert "error calculating patch from openapi" not in err
        assert ("GET", "/openapi/v3/apis/apps/v1", ) == stand_in.requests[
            [r[1] for r in stand_in.requests].index("/openapi/v3/apis/apps/v1")][:2]
        patch = stand_in.patches[-1]
        pod_spec = patch["spec"]["template"]["spec"]
        assert pod_spec["$setElementOrder/containers"] == [{"name": "nginx"}, {"name": "log"}]
        nginx = next(c for c in pod_spec["containers"] if c["name"] == "nginx")
        assert {"$patch": "delete", "name": "B"} in nginx["env"]
        stored = stand_in.objects["web"]["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in stored] == ["nginx", "log"]
        assert stored[0]["image"] == "nginx:1.26" and stored[0]["env"] == [{"name": "A", "value": "1"}]

        # server-side Table output, printed by kubectl
        code, out, err = await _kubectl(kubeconfig, "get", "deployments", "-n", "default")
        assert code == 0, err
        assert out.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert out.split("\n")[1].split()[:4] == ["web", "0/2", "0", "0"]
        code, out, err = await _kubectl(kubeconfig, "get", "deployments", "-n", "default", "-o", "wide")
        assert code == 0, err
        assert out.split("\n")[0].split()[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
        assert "nginx,log" in out and "app=web" in out

        # explain renders our schemas
        code, out, err = await _kubectl(kubeconfig, "explain", "deployment.spec.strategy.rollingUpdate")
        assert code == 0, err
        assert "maxSurge" in out and "IntOrString" in out or "<IntOrString>" in out
    finally:
        await runner.cleanup()


def test_preserve_unknown_fields_stops_the_walk():
    from clusterctl.api.openapi import _walk

    schema = {"properties": {"spec": {"properties": {"free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                                     "strict": {"properties": {"a": {"type": "string"}}}}}}}
    found: list[str] = []
    _walk({"spec": {"free": {"anything": {"deep": 1}}, "strict": {"a": "x", "b": 1}, "other": 2}}, schema, "", found)
    assert found == ["spec.strict.b", "spec.other"]


def test_core_document_carries_subresource_kinds():
    schemas = openapi_v3_document(REGISTRY, "", "v1")["components"]["schemas"]
    assert "io.k8s.api.policy.v1.Eviction" in schemas and "io.k8s.api.core.v1.Binding" in schemas
    apps = openapi_v3_document(REGISTRY, "apps", "v1")["components"]["schemas"]
    assert {"group": "autoscaling", "kind": "Scale", "version": "v1"} in \
        apps["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"]
