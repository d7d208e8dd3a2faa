"""Kubernetes' strategic-merge-patch metadata: the one table both patching and OpenAPI read.

For each definition (``io.k8s.api.core.v1.PodSpec``...) and JSON field, the field's patch strategy
(``merge``, ``replace``, ``retainKeys`` or ``merge,retainKeys``) and, for lists of objects, the merge
key. A list field that is not here is *atomic*: a patch replaces it whole (``tolerations``,
``envFrom``, ``args``, Endpoints ``subsets``...).

Extracted from the ``patchStrategy``/``patchMergeKey`` struct tags of ``k8s.io/api`` and
``k8s.io/apimachinery/pkg/apis/meta/v1`` (``generate.py extract-go`` prints this table) and kept
here by hand from then on. ``generate.py build`` copies it into ``definitions.json`` as the
``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key`` extensions, which is where both
``clusterctl.api.patch`` (server side) and kubectl (client side, from ``/openapi/v3``) read it.

Note on container ports: Kubernetes merges ``ports`` by ``containerPort`` only, so two entries with
the same number and different protocols collapse in a strategic merge patch. That is Kubernetes'
documented behaviour (kubernetes/kubernetes#39188) and we keep it, as kubectl computes its patches
assuming it.
"""

from __future__ import annotations

PATCH_STRATEGIES: dict[str, dict[str, tuple[str, str | None]]] = {
    'io.k8s.api.apps.v1.DaemonSetStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.apps.v1.DeploymentSpec': {
        'strategy': ('retainKeys', None),
    },
    'io.k8s.api.apps.v1.DeploymentStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.apps.v1.ReplicaSetStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.apps.v1.StatefulSetStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.batch.v1.JobSchedulingConfiguration': {
        'resourceClaims': ('merge', 'name'),
    },
    'io.k8s.api.batch.v1.JobStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.ComponentStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.Container': {
        'env': ('merge', 'name'),
        'ports': ('merge', 'containerPort'),
        'volumeDevices': ('merge', 'devicePath'),
        'volumeMounts': ('merge', 'mountPath'),
    },
    'io.k8s.api.core.v1.ContainerStatus': {
        'allocatedResourcesStatus': ('merge', 'name'),
        'volumeMounts': ('merge', 'mountPath'),
    },
    'io.k8s.api.core.v1.EphemeralContainer': {
        'env': ('merge', 'name'),
        'ports': ('merge', 'containerPort'),
        'volumeDevices': ('merge', 'devicePath'),
        'volumeMounts': ('merge', 'mountPath'),
    },
    'io.k8s.api.core.v1.EphemeralContainerCommon': {
        'env': ('merge', 'name'),
        'ports': ('merge', 'containerPort'),
        'volumeDevices': ('merge', 'devicePath'),
        'volumeMounts': ('merge', 'mountPath'),
    },
    'io.k8s.api.core.v1.NamespaceStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.NodeAllocatableResourceClaimStatus': {
        'mapping': ('merge', 'name'),
        'overhead': ('merge', 'name'),
    },
    'io.k8s.api.core.v1.NodeSpec': {
        'podCIDRs': ('merge', None),
    },
    'io.k8s.api.core.v1.NodeStatus': {
        'addresses': ('merge', 'type'),
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.PersistentVolumeClaimStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.PodSpec': {
        'containers': ('merge', 'name'),
        'ephemeralContainers': ('merge', 'name'),
        'evictionResponders': ('merge', 'name'),
        'hostAliases': ('merge', 'ip'),
        'imagePullSecrets': ('merge', 'name'),
        'initContainers': ('merge', 'name'),
        'resourceClaims': ('merge,retainKeys', 'name'),
        'schedulingGates': ('merge', 'name'),
        'topologySpreadConstraints': ('merge', 'topologyKey'),
        'volumes': ('merge,retainKeys', 'name'),
    },
    'io.k8s.api.core.v1.PodStatus': {
        'conditions': ('merge', 'type'),
        'hostIPs': ('merge', 'ip'),
        'nodeAllocatableResourceClaimStatuses': ('merge', 'resourceClaimName'),
        'podIPs': ('merge', 'ip'),
        'resourceClaimStatuses': ('merge,retainKeys', 'name'),
    },
    'io.k8s.api.core.v1.PodVolumeHealth': {
        'healthConditions': ('merge', 'status'),
    },
    'io.k8s.api.core.v1.ReplicationControllerStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.ServiceAccount': {
        'secrets': ('merge', 'name'),
    },
    'io.k8s.api.core.v1.ServiceSpec': {
        'ports': ('merge', 'port'),
    },
    'io.k8s.api.core.v1.ServiceStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.api.core.v1.VolumeHealthStatus': {
        'healthConditions': ('merge', 'status'),
    },
    'io.k8s.api.policy.v1.PodDisruptionBudgetSpec': {
        'selector': ('replace', None),
    },
    'io.k8s.api.policy.v1.PodDisruptionBudgetStatus': {
        'conditions': ('merge', 'type'),
    },
    'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': {
        'finalizers': ('merge', None),
        'ownerReferences': ('merge', 'uid'),
    },
}
