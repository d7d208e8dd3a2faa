"""Where each kind lives in the REST tree: a static table of built-in kinds plus discovery.

A ``ResourceType`` is (group, version, kind, plural, namespaced). Callers name a resource the way
people do — ``"pods"``, ``"Pod"``, ``"po"``, ``"deployments.apps"`` — or by ``(apiVersion, kind)``
taken from an object. The static table answers for every kind the API server ships without a
round-trip; anything else (a kind added later) is found by the client's discovery fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    """One REST collection: ``/api/v1/namespaces/{ns}/pods`` is (``""``, ``v1``, Pod, pods, True)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = field(default=(), compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def base_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The collection, object or subresource path; ``namespace=None`` lists across namespaces."""
        parts = [self.base_path()]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


def _rt(api_version: str, kind: str, plural: str, namespaced: bool = True, *short: str) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group, version, kind, plural, namespaced, tuple(short))


BUILTIN: tuple[ResourceType, ...] = (
    _rt("v1", "Namespace", "namespaces", False, "ns"),
    _rt("v1", "Node", "nodes", False, "no"),
    _rt("v1", "Pod", "pods", True, "po"),
    _rt("v1", "Service", "services", True, "svc"),
    _rt("v1", "Endpoints", "endpoints", True, "ep"),
    _rt("v1", "ConfigMap", "configmaps", True, "cm"),
    _rt("v1", "Secret", "secrets", True),
    _rt("v1", "Event", "events", True, "ev"),
    _rt("v1", "ServiceAccount", "serviceaccounts", True, "sa"),
    _rt("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True),
    _rt("apps/v1", "Deployment", "deployments", True, "deploy"),
    _rt("apps/v1", "ReplicaSet", "replicasets", True, "rs"),
    _rt("apps/v1", "DaemonSet", "daemonsets", True, "ds"),
    _rt("apps/v1", "StatefulSet", "statefulsets", True, "sts"),
    _rt("apps/v1", "ControllerRevision", "controllerrevisions", True),
    _rt("batch/v1", "Job", "jobs", True),
    _rt("batch/v1", "CronJob", "cronjobs", True, "cj"),
    _rt("coordination.k8s.io/v1", "Lease", "leases", True),
    _rt("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False, "pc"),
    _rt("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, "pdb"),
    _rt("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, "hpa"),
)


class ResourceTable:
    """Name → ``ResourceType`` lookups; discovery adds entries at run time."""

    def __init__(self, types: tuple[ResourceType, ...] | list[ResourceType] = BUILTIN) -> None:
        self._by_gvk: dict[tuple[str, str], ResourceType] = {}
        self._by_name: dict[str, list[ResourceType]] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._by_gvk.setdefault((rt.api_version, rt.kind), rt)
        names = {rt.plural, rt.singular, rt.kind, *rt.short_names}
        if rt.group:
            names |= {f"{rt.plural}.{rt.group}", f"{rt.singular}.{rt.group}", f"{rt.kind}.{rt.group}"}
        for name in names:
            bucket = self._by_name.setdefault(name.lower(), [])
            if rt not in bucket:
                bucket.append(rt)

    def lookup(self, resource: str, api_version: str | None = None) -> ResourceType | None:
        """Find by ``(apiVersion, kind)`` or by plural/singular/kind/short name (case-insensitive)."""
        if api_version is not None:
            hit = self._by_gvk.get((api_version, resource))
            if hit is not None:
                return hit
        candidates = self._by_name.get(resource.lower(), [])
        if api_version is not None:
            candidates = [rt for rt in candidates if rt.api_version == api_version]
        return candidates[0] if candidates else None
