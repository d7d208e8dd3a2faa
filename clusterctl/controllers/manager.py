"""The controller manager: every controller of ``clusterctl.controllers`` in one process, behind one Lease.

``run_controllers(client, config=...)`` campaigns for the Lease
``kube-system/clusterctl-controller-manager`` (``clusterctl.client.leaderelection``); while it
leads, it starts one set of shared informers and every enabled controller on them. Losing the
lease cancels them all; the next term starts from fresh caches and fresh controller objects —
which also restarts the node lifecycle controller's observation clocks (its eviction guard).
``control_plane_component`` wraps it for ``clusterctl control-plane``'s ``components`` list.

Every timing is a field of ``ControllerManagerConfig`` so tests never wait for Kubernetes' real
grace periods; ``from_dict`` reads the control-plane config's ``controllers:`` section.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clusterctl.client.controller import Controller
from clusterctl.client.leaderelection import LeaderElector
from clusterctl.client.rest import ApiClient
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)

ALL_CONTROLLERS = ("replicaset", "deployment", "endpoints", "endpointslice", "garbagecollector", "nodeipam", "nodelifecycle",
                   "daemonset", "job", "statefulset", "cronjob", "horizontalpodautoscaling", "disruption")


@dataclass
class ControllerManagerConfig:
    """Knobs of every controller; defaults are Kubernetes'."""

    controllers: tuple[str, ...] = ALL_CONTROLLERS
    workers: int = 4
    # leader election
    leader_elect: bool = True
    lease_namespace: str = "kube-system"
    lease_name: str = "clusterctl-controller-manager"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{os.uname().nodename}_{uuid.uuid4().hex[:8]}")
    # node IPAM
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    # node lifecycle
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 50.0
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 3
    # garbage collection sweep
    gc_interval: float = 30.0
    # job backoff: 10 s doubling, capped at 6 min
    job_backoff_base: float = 10.0
    job_backoff_cap: float = 360.0
    # cronjob
    cronjob_resync: float = 10.0
    # hpa
    hpa_sync_period: float = 15.0
    hpa_tolerance: float = 0.1
    hpa_downscale_stabilization: float = 300.0
    # clocks (tests inject fakes)
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ControllerManagerConfig:
        known = set(cls.__dataclass_fields__)
        kwargs: dict[str, Any] = {}
        for key, value in (data or {}).items():
            snake = "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_")
            if snake not in known or snake in ("clock", "monotonic"):
                raise ValueError(f"controllers: unknown setting {key!r}")
            kwargs[snake] = tuple(value) if snake == "controllers" else value
        return cls(**kwargs)


def build_controllers(client: ApiClient, informers: SharedInformers, cfg: ControllerManagerConfig, **extra: Any) -> list[Controller]:
    """The enabled controllers, wired to ``informers`` (not started)."""
    built: list[Controller] = []
    enabled = set(cfg.controllers)
    if "replicaset" in enabled:
        from clusterctl.controllers.replicaset import ReplicaSetController
        built.append(ReplicaSetController(client, informers, workers=cfg.workers, clock=cfg.clock))
    if "deployment" in enabled:
        from clusterctl.controllers.deployment import DeploymentController
        built.append(DeploymentController(client, informers, workers=cfg.workers, clock=cfg.clock))
    if "endpoints" in enabled or "endpointslice" in enabled:
        from clusterctl.controllers.endpoints import EndpointsController
        built.append(EndpointsController(client, informers, workers=cfg.workers, endpoints="endpoints" in enabled,
                                         slices="endpointslice" in enabled))
    if "garbagecollector" in enabled:
        from clusterctl.controllers.gc import GarbageCollector
        built.append(GarbageCollector(client, informers, interval=cfg.gc_interval))
    if "nodeipam" in enabled:
        from clusterctl.controllers.nodeipam import NodeIpamController
        built.append(NodeIpamController(client, informers, cluster_cidr=cfg.cluster_cidr, mask_size=cfg.node_cidr_mask_size))
    if "nodelifecycle" in enabled:
        from clusterctl.controllers.nodelifecycle import NodeLifecycleController
        built.append(NodeLifecycleController(client, informers, monitor_period=cfg.node_monitor_period,
                                             grace_period=cfg.node_monitor_grace_period,
                                             unhealthy_zone_threshold=cfg.unhealthy_zone_threshold,
                                             large_cluster_size_threshold=cfg.large_cluster_size_threshold,
                                             clock=cfg.clock, monotonic=cfg.monotonic))
    optional = {
        "daemonset": ("clusterctl.controllers.daemonset", "DaemonSetController", {}),
        "job": ("clusterctl.controllers.job", "JobController", {"backoff_base": cfg.job_backoff_base, "backoff_cap": cfg.job_backoff_cap}),
        "statefulset": ("clusterctl.controllers.statefulset", "StatefulSetController", {}),
        "disruption": ("clusterctl.controllers.disruption", "DisruptionController", {}),
        "cronjob": ("clusterctl.controllers.cronjob", "CronJobController", {"resync": cfg.cronjob_resync}),
        "horizontalpodautoscaling": ("clusterctl.controllers.hpa", "HorizontalPodAutoscalerController",
                                     {"sync_period": cfg.hpa_sync_period, "tolerance": cfg.hpa_tolerance,
                                      "downscale_stabilization": cfg.hpa_downscale_stabilization, **({"metrics": extra["metrics"]} if "metrics" in extra else {})}),
    }
    for name, (module, cls_name, kwargs) in optional.items():
        if name not in enabled:
            continue
        try:
            mod = __import__(module, fromlist=[cls_name])
        except ModuleNotFoundError as exc:
            if exc.name == module:
                log.warning("controller %s is not available in this build", name)
                continue
            raise
        built.append(getattr(mod, cls_name)(client, informers, clock=cfg.clock, **kwargs))
    return built


class ControllerManager:
    """One leadership term's worth of informers and controllers (see ``run_controllers``)."""

    def __init__(self, client: ApiClient, cfg: ControllerManagerConfig, **extra: Any) -> None:
        self.client = client
        self.cfg = cfg
        self.informers = SharedInformers(client)
        self.controllers = build_controllers(client, self.informers, cfg, **extra)

    def get(self, cls: type) -> Any:
        return next(c for c in self.controllers if isinstance(c, cls))

    async def run(self) -> None:
        self.informers.start()
        try:
            await self.informers.wait_for_sync()
            await asyncio.gather(*(c.run() for c in self.controllers))
        finally:
            await self.informers.stop()


async def run_controllers(client: ApiClient, *, config: ControllerManagerConfig | dict[str, Any] | None = None,
                          on_term: Callable[[ControllerManager], Any] | None = None) -> None:
    """Run every enabled controller until cancelled; behind the Lease when ``leader_elect``.

    ``on_term(manager)`` is called at the start of each leadership term (tests use it to reach
    the running controllers).
    """
    cfg = config if isinstance(config, ControllerManagerConfig) else ControllerManagerConfig.from_dict(config)

    async def lead() -> None:
        manager = ControllerManager(client, cfg)  # fresh caches and clocks each term
        if on_term is not None:
            on_term(manager)
        await manager.run()

    if not cfg.leader_elect:
        await lead()
        return
    elector = LeaderElector(client, lease_name=cfg.lease_name, namespace=cfg.lease_namespace, identity=cfg.identity,
                            lease_duration=cfg.lease_duration, renew_deadline=cfg.renew_deadline, retry_period=cfg.retry_period,
                            on_started_leading=lead)
    await elector.run()


def control_plane_component(config: ControllerManagerConfig | dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """An ``async def component(ctx)`` for ``clusterctl control-plane`` (reaches the API through ``ctx.kubeconfig``).

    With no explicit config it reads the control-plane config's ``controllers:`` section when
    there is one (``ctx.config.controllers`` or ``ctx.config.extra['controllers']``).
    """

    async def controller_manager_component(ctx: Any) -> None:
        settings = config
        if settings is None:
            cp_cfg = getattr(ctx, "config", None)
            settings = getattr(cp_cfg, "controllers", None) or (getattr(cp_cfg, "extra", None) or {}).get("controllers") or {}
        kubeconfig = getattr(ctx, "kubeconfig", None) or ctx.config.path(ctx.config.kubeconfig)
        client = ApiClient.from_kubeconfig(str(kubeconfig), max_connections=64)
        try:
            await run_controllers(client, config=settings)
        finally:
            await asyncio.shield(client.close())

    return controller_manager_component


#: for the control-plane config's ``components`` list: ``"clusterctl.controllers.manager:controller_manager_component"``
controller_manager_component = control_plane_component()
