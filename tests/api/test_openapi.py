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
