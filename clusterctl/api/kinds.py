"""The kinds registry: every resource the API server serves, one small entry each.

A ``KindInfo`` says where a kind lives (group/version, plural, namespaced), how people name it
(singular, short names, categories), which subresources it has, and which functions default and
validate it (``clusterctl.api.validation``). Discovery, REST routing, the OpenAPI document and
Table output are all derived from this list, so adding a kind is one entry here plus its
``default_*``/``validate_*`` functions.

Store keys: ``/registry/<group or "core">/<plural>/<namespace>/<name>`` (no namespace segment for
cluster-scoped kinds); see ``KindInfo.key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from clusterctl.api import validation as v

#: Verbs of a normal resource, as discovery lists them.
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "eviction": ("create",),
}
#: The kind each subresource speaks, when not the parent's own kind.
SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
}

Validator = Callable[[dict, "dict | None"], list]
Defaulter = Callable[[dict], None]


@dataclass(frozen=True)
class KindInfo:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    #: validate(obj, old_or_None) -> list[FieldError]
    validate: Validator | None = None
    #: default(obj) fills defaults in place (runs on create and update, like Kubernetes)
    default: Defaulter | None = None
    #: for kinds with a status subresource: keep the status a create sends (Node: kubelets register with status)
    keep_status_on_create: bool = False
    #: top-level fields besides metadata/status whose change bumps metadata.generation
    spec_fields: tuple[str, ...] = ("spec",)
    #: scale subresource: where replicas live in spec/status and whether the selector is a LabelSelector
    scale_selector_path: tuple[str, ...] = ("spec", "selector")
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def qualified_plural(self) -> str:
        """``deployments.apps``; plain plural for the core group (as Kubernetes' messages say)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def store_group(self) -> str:
        return self.group or "core"

    def prefix(self, namespace: str | None = None) -> str:
        """The store prefix listing this kind (in one namespace, or everywhere)."""
        base = f"/registry/{self.store_group}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.store_group}/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.store_group}/{self.plural}/{name}"

    def base_path(self, namespace: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


class Registry:
    """All served kinds, looked up by (group, version, plural) or (group, kind)."""

    def __init__(self, kinds: list[KindInfo]):
        self._kinds = list(kinds)
        self._by_resource = {(k.group, k.version, k.plural): k for k in kinds}
        self._by_kind: dict[tuple[str, str], KindInfo] = {}
        for k in kinds:   # the first registration of a kind is its stored version
            self._by_kind.setdefault((k.group, k.kind), k)
        self._by_gvk = {(k.group, k.version, k.kind): k for k in kinds}

    def __iter__(self) -> Iterator[KindInfo]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def add(self, info: KindInfo) -> None:
        self._kinds.append(info)
        self._by_resource[(info.group, info.version, info.plural)] = info
        self._by_kind.setdefault((info.group, info.kind), info)
        self._by_gvk[(info.group, info.version, info.kind)] = info

    def by_resource(self, group: str, version: str, plural: str) -> KindInfo | None:
        return self._by_resource.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> KindInfo | None:
        return self._by_kind.get((group, kind))

    def by_gvk(self, group: str, version: str, kind: str) -> KindInfo | None:
        return self._by_gvk.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> KindInfo | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, in registration order (core group is ""). Cached; ``add`` resets it."""
        cached = self.__dict__.get("_gv")
        if cached is not None and cached[0] == len(self._kinds):
            return cached[1]
        out: dict[str, list[str]] = {}
        for k in self._kinds:
            versions = out.setdefault(k.group, [])
            if k.version not in versions:
                versions.append(k.version)
        self._gv = (len(self._kinds), out)
        return out

    def in_group_version(self, group: str, version: str) -> list[KindInfo]:
        return [k for k in self._kinds if k.group == group and k.version == version]


def builtin_kinds() -> list[KindInfo]:
    """The kinds Kubernetes' built-in API serves that clusterctl implements."""
    return [
        # core/v1
        KindInfo("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",),
                 subresources=("status",), validate=v.validate_namespace, default=v.default_namespace,
                 keep_status_on_create=True),
        KindInfo("", "v1", "Node", "nodes", namespaced=False, short_names=("no",), subresources=("status",),
                 validate=v.validate_node, default=v.default_node, keep_status_on_create=True),
        KindInfo("", "v1", "Pod", "pods", short_names=("po",), categories=("all",),
                 subresources=("status", "binding", "eviction"), validate=v.validate_pod, default=v.default_pod),
        KindInfo("", "v1", "Service", "services", short_names=("svc",), categories=("all",),
                 subresources=("status",), validate=v.validate_service, default=v.default_service),
        KindInfo("", "v1", "Endpoints", "endpoints", short_names=("ep",), validate=v.validate_generic,
                 spec_fields=("subsets",)),
        KindInfo("", "v1", "ConfigMap", "configmaps", short_names=("cm",), validate=v.validate_configmap,
                 spec_fields=("data", "binaryData")),
        KindInfo("", "v1", "Secret", "secrets", validate=v.validate_secret, default=v.default_secret,
                 spec_fields=("data", "type")),
        KindInfo("", "v1", "Event", "events", short_names=("ev",), validate=v.validate_event,
                 default=v.default_event, spec_fields=()),
        KindInfo("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",),
                 validate=v.validate_generic, spec_fields=()),
        # discovery.k8s.io/v1
        KindInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", validate=v.validate_endpointslice,
                 default=v.default_endpointslice, spec_fields=("endpoints", "ports", "addressType")),
        # apps/v1
        KindInfo("apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=("all",),
                 subresources=("status", "scale"), validate=v.validate_deployment, default=v.default_deployment),
        KindInfo("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=("all",),
                 subresources=("status", "scale"), validate=v.validate_replicaset, default=v.default_replicaset),
        KindInfo("apps", "v1", "DaemonSet", "daemonsets", short_names=("ds",), categories=("all",),
                 subresources=("status",), validate=v.validate_daemonset, default=v.default_daemonset),
        KindInfo("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=("all",),
                 subresources=("status", "scale"), validate=v.validate_statefulset, default=v.default_statefulset),
        # batch/v1
        KindInfo("batch", "v1", "Job", "jobs", categories=("all",), subresources=("status",),
                 validate=v.validate_job, default=v.default_job),
        KindInfo("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), categories=("all",),
                 subresources=("status",), validate=v.validate_cronjob, default=v.default_cronjob),
        # autoscaling/v2
        KindInfo("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
                 categories=("all",), subresources=("status",), validate=v.validate_hpa, default=v.default_hpa),
        # coordination.k8s.io/v1
        KindInfo("coordination.k8s.io", "v1", "Lease", "leases", validate=v.validate_generic),
        # policy/v1
        KindInfo("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=("pdb",),
                 subresources=("status",), validate=v.validate_pdb),
        # scheduling.k8s.io/v1
        KindInfo("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False,
                 short_names=("pc",), validate=v.validate_priorityclass, default=v.default_priorityclass,
                 spec_fields=("value", "globalDefault", "preemptionPolicy")),
    ]


def _hpa_v1_to_v2(obj: dict) -> dict:
    from clusterctl.api.conversion import hpa_v1_to_v2
    return hpa_v1_to_v2(obj)


def _hpa_v2_to_v1(obj: dict) -> dict:
    from clusterctl.api.conversion import hpa_v2_to_v1
    return hpa_v2_to_v1(obj)


def compat_kinds() -> list[KindInfo]:
    """Kinds the server also serves but whose OpenAPI schemas are not published yet (so they stay
    out of ``default_registry``, the set the OpenAPI documents and their tests describe)."""
    return [
        KindInfo("apps", "v1", "ControllerRevision", "controllerrevisions", validate=v.validate_generic,
                 spec_fields=("data", "revision")),
        KindInfo("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
                 subresources=("status",), verbs=("create", "delete", "get", "list", "patch", "update"),
                 extra={"storage": ("autoscaling", "HorizontalPodAutoscaler"), "to_storage": _hpa_v1_to_v2,
                        "from_storage": _hpa_v2_to_v1}),
    ]


def default_registry() -> Registry:
    """The kinds with published schemas (OpenAPI, tables): Kubernetes' built-ins we implement."""
    return Registry(builtin_kinds())


def server_registry() -> Registry:
    """Everything the API server serves: ``default_registry`` plus ``compat_kinds``."""
    return Registry(builtin_kinds() + compat_kinds())
