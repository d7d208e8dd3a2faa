"""The pod lifecycle on this node: one ``PodWorker`` per pod bound to the node.

A worker drives its pod to its spec and reports status: sandbox (the pod's network namespace
from ``PodNetwork``, volumes, /etc/hosts and resolv.conf), image pulls (ErrImagePull, then
ImagePullBackOff with doubling back-off), init containers in order, then every app container
in its own loop — start, probes (startup gates liveness and readiness; liveness failure
restarts; readiness drives Ready), wait, and restart per ``restartPolicy`` with CrashLoopBackOff
(base doubling to a ceiling, reset after a long enough run). A pod marked for deletion gets its
preStop hooks, SIGTERM, the rest of its grace period, SIGKILL; then its sandbox is torn down and
the pod object deleted with gracePeriodSeconds=0, as kubelet does. Cancelling a worker (agent
shutdown) leaves its containers running; the next agent adopts them through the runtime's labels.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl.client.errors import ApiConnectionError, ApiError, Conflict, NotFound
from node_runtime.errors import ImagePullError, NodeRuntimeError
from node_runtime.images.pull_secrets import credentials_for, pod_credentials
from node_runtime.images.reference import parse_reference
from node_runtime.podspec import (
    ContainerConfigError, argv_for, container_env, field_value, hosts_file, limits, qos_class, resolv_conf,
    restart_policy, run_as, termination_grace,
)
from node_runtime.probes import ProbeTarget, ProbeWorker, check
from node_runtime.runtime.process import ContainerConfig
from node_runtime.status import ContainerRecord, pod_status, rfc3339, same_status
from node_runtime.volumes import PodVolumes, VolumeError

if TYPE_CHECKING:
    from node_runtime.agent import Agent

log = logging.getLogger(__name__)

LABEL_UID = "io.clusterctl.pod.uid"
LABEL_POD = "io.clusterctl.pod.name"
LABEL_NS = "io.clusterctl.pod.namespace"
LABEL_CONTAINER = "io.clusterctl.container.name"
LABEL_ATTEMPT = "io.clusterctl.container.attempt"
LABEL_IMAGE_ID = "io.clusterctl.image.id"


class Backoff:
    """CrashLoopBackOff / ImagePullBackOff delays: 0 first, then base doubling to ``ceiling``."""

    def __init__(self, base: float, ceiling: float, reset_after: float):
        self.base, self.ceiling, self.reset_after = base, ceiling, reset_after
        self.current = 0.0

    def next(self, ran_for: float = 0.0) -> float:
        if ran_for >= self.reset_after:
            self.current = 0.0
        delay = self.current
        self.current = self.base if self.current == 0 else min(self.ceiling, self.current * 2)
        return delay


def _default_pull_policy(image: str) -> str:
    try:
        ref = parse_reference(image)
    except Exception:  # noqa: BLE001 - the pull reports the bad name
        return "IfNotPresent"
    return "Always" if ref.tag == "latest" and not ref.digest else "IfNotPresent"


class PodWorker:
    def __init__(self, agent: Agent, pod: dict):
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.namespace: str = meta.get("namespace", "default")
        spec = pod.get("spec") or {}
        self.init = [ContainerRecord(c["name"], c.get("image", ""), init=True) for c in spec.get("initContainers") or []]
        self.containers = [ContainerRecord(c["name"], c.get("image", "")) for c in spec.get("containers") or []]
        self._restore(pod.get("status") or {})
        self.address = None
        self.volumes: PodVolumes | None = None
        self.sandbox_ready = False
        self.init_failed = False
        self.pod_dir = agent.config.dir("pods") / self.uid
        self._dirty = asyncio.Event()
        self._flushed = asyncio.Event()
        self._deleted = asyncio.Event()
        self._progressed = asyncio.Event()  # some container left ContainerCreating (see _status_loop)
        self._gone = False                 # the API object no longer exists
        self._last_written: dict | None = None
        self._stopping: set[str] = set()   # runtime ids being stopped by the worker itself
        self._pull_secret_warnings: set[str] = set()   # image pull Secret problems already reported
        self.task: asyncio.Task | None = None
        self.running_at: float | None = None
        self.created_at = time.time()
        self.marks: dict[str, float] = {"seen": time.monotonic()}   # when each step finished (for benchmarks)

    # ------------------------------------------------------------------ wiring

    def _restore(self, status: dict) -> None:
        """Keep restart counts, last states and start time from the status an earlier run reported."""
        self.start_time = status.get("startTime")
        by_name = {c["name"]: c for c in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])}
        for rec in self.init + self.containers:
            old = by_name.get(rec.name)
            if not old:
                continue
            rec.restart_count = int(old.get("restartCount") or 0)
            rec.last_state = old.get("lastState") or {}
            rec.image_id = old.get("imageID") or ""
            term = (old.get("state") or {}).get("terminated")
            if rec.init and term and term.get("exitCode") == 0:
                rec.done, rec.state = True, {"terminated": term}
        if status.get("phase") in ("Succeeded", "Failed"):
            self.finished_status = status
        else:
            self.finished_status = None

    def update(self, pod: dict) -> None:
        self.pod = pod
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._deleted.set()

    def gone(self) -> None:
        """The pod object was deleted outright (no graceful deletion seen)."""
        self._gone = True
        self._deleted.set()

    def mark_dirty(self) -> None:
        self._flushed.clear()
        self._dirty.set()
        if not self._progressed.is_set() and any(
                (r.state.get("waiting") or {}).get("reason") != "ContainerCreating" for r in self.init + self.containers):
            self._progressed.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod {self.namespace}/{self.name}")

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        writer = asyncio.create_task(self._status_loop(), name=f"status {self.name}")
        lifecycle = asyncio.create_task(self._lifecycle(), name=f"lifecycle {self.name}")
        try:
            if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
                self._deleted.set()
            await self._deleted.wait()
            lifecycle.cancel()
            await asyncio.gather(lifecycle, return_exceptions=True)
            await self._terminate()
        finally:
            lifecycle.cancel()
            writer.cancel()
            await asyncio.gather(lifecycle, writer, return_exceptions=True)

    async def _lifecycle(self) -> None:
        try:
            await self._lifecycle_inner()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a pod's bug must not take the agent down
            log.exception("pod %s/%s: lifecycle failed", self.namespace, self.name)

    async def _lifecycle_inner(self) -> None:
        if self.finished_status is not None and not self.agent.adopted_for(self.uid):
            return  # finished in an earlier run: nothing to do until it is deleted
        await self._setup_sandbox()
        self.mark_dirty()
        for rec in self.init:
            if rec.done:
                continue
            await self._run_container(rec)
            if self.init_failed:
                self.mark_dirty()
                return
        runners = [asyncio.create_task(self._run_container(rec), name=f"container {self.name}/{rec.name}") for rec in self.containers]
        refresher = asyncio.create_task(self._refresh_volumes())
        try:
            await asyncio.gather(*runners)
        finally:
            refresher.cancel()
            for r in runners:
                r.cancel()
            await asyncio.gather(refresher, *runners, return_exceptions=True)

    async def _setup_sandbox(self) -> None:
        delay = Backoff(0.5, 10.0, 1e9)
        while True:
            try:
                self.address = await self.agent.network.setup(self.pod)
                self.pod_dir.mkdir(parents=True, exist_ok=True)
                (self.pod_dir / "etc-hosts").write_text(hosts_file(self.pod, self.address.pod_ip))
                (self.pod_dir / "resolv.conf").write_text(resolv_conf(self.pod, self.agent.config.cluster_dns,
                                                                      self.agent.config.cluster_domain))
                self.volumes = PodVolumes(self.pod_dir / "volumes", self.pod, lookup=self.agent.lookup,
                                          field_value=lambda path: field_value(self._pod_with_ips(), path))
                await self.volumes.setup()
                break
            except asyncio.CancelledError:
                raise
            except (NodeRuntimeError, OSError) as exc:
                log.warning("pod %s/%s: sandbox: %s", self.namespace, self.name, exc)
                for rec in self.init + self.containers:
                    if not rec.done:
                        rec.state = {"waiting": {"reason": "ContainerCreating", "message": str(exc)[:500]}}
                self.mark_dirty()
                await asyncio.sleep(delay.next() or 0.2)
        self.sandbox_ready = True
        self.start_time = self.start_time or rfc3339()
        self.marks["sandbox"] = time.monotonic()

    def _pod_with_ips(self) -> dict:
        status = dict(self.pod.get("status") or {})
        if self.address is not None:
            status.update(podIP=self.address.pod_ip, podIPs=[{"ip": self.address.pod_ip}])
        status.update(hostIP=self.agent.node_ip, hostIPs=[{"ip": self.agent.node_ip}])
        return dict(self.pod, status=status)

    async def _refresh_volumes(self) -> None:
        while True:
            await asyncio.sleep(self.agent.config.timings.configmap_sync)
            try:
                if self.volumes is not None:
                    await self.volumes.refresh()
            except asyncio.CancelledError:
                raise
            except (NodeRuntimeError, ApiError, ApiConnectionError, OSError) as exc:
                log.warning("pod %s/%s: refreshing volumes: %s", self.namespace, self.name, exc)

    # ------------------------------------------------------------------ containers

    def _spec(self, rec: ContainerRecord) -> dict:
        key = "initContainers" if rec.init else "containers"
        return next(c for c in (self.pod["spec"].get(key) or []) if c["name"] == rec.name)

    async def _pull(self, rec: ContainerRecord, spec: dict):
        t = self.agent.config.timings
        backoff = Backoff(t.image_pull_backoff_base, t.image_pull_backoff_max, 1e18)
        backoff.next()
        policy = spec.get("imagePullPolicy") or _default_pull_policy(rec.image)
        while True:
            try:
                # read again on every attempt, as kubelet does: a Secret fixed later is picked up
                credentials, problems = await pod_credentials(self.pod, self.agent.pull_secret)
                for problem in problems:
                    if problem.message not in self._pull_secret_warnings:
                        self._pull_secret_warnings.add(problem.message)
                        log.warning("pod %s/%s: %s", self.namespace, self.name, problem.message)
                        self.agent.events.emit(self.pod, "Warning", "FailedToRetrieveImagePullSecret", problem.message)
                image = await self.agent.images.ensure(rec.image, policy, credentials=credentials_for(credentials, rec.image))
                ref = parse_reference(rec.image)
                rec.image_id = f"{ref.registry}/{ref.repository}@{image.manifest_digest}"
                return image
            except asyncio.CancelledError:
                raise
            except (ImagePullError, NodeRuntimeError, ValueError) as exc:
                rec.state = {"waiting": {"reason": "ErrImagePull", "message": str(exc)[:1000]}}
                self.mark_dirty()
                delay = backoff.next()
                try:
                    await asyncio.wait_for(self._flushed.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                rec.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{rec.image}": {exc}'[:1000]}}
                self.mark_dirty()
                await asyncio.sleep(max(0.0, delay))

    async def _container_config(self, rec: ContainerRecord, spec: dict, image, attempt: int) -> ContainerConfig:
        services = self.agent.services_in(self.namespace)
        env = await container_env(self._pod_with_ips(), spec, image.config, self.agent.lookup, services)
        argv = argv_for(spec, image.config, env)
        cpu, mem = limits(spec)
        uid, gid = run_as(self.pod, spec, image.config)
        assert self.volumes is not None and self.address is not None
        mounts = self.volumes.mounts_for(spec)
        targets = {m["target"] for m in mounts}
        if "/etc/hosts" not in targets:
            mounts.append({"source": str(self.pod_dir / "etc-hosts"), "target": "/etc/hosts", "type": "bind"})
        if "/etc/resolv.conf" not in targets:
            mounts.append({"source": str(self.pod_dir / "resolv.conf"), "target": "/etc/resolv.conf", "type": "bind"})
        layers = [str(p) for p in self.agent.images.layer_dirs(image)]
        log_path = self.agent.logs.path(self.namespace, self.name, self.uid, rec.name, attempt)
        hostname = (self.pod["spec"].get("hostname") or self.name)[:63]
        labels = {LABEL_UID: self.uid, LABEL_POD: self.name, LABEL_NS: self.namespace, LABEL_CONTAINER: rec.name,
                  LABEL_ATTEMPT: str(attempt), LABEL_IMAGE_ID: rec.image_id}
        cid = f"{self.uid}_{rec.name}_{attempt}_{secrets.token_hex(2)}"
        return ContainerConfig(id=cid, layers=layers, argv=argv, env=env, cwd=spec.get("workingDir") or image.config.get("WorkingDir") or "/",
                               hostname=hostname, uid=uid, gid=gid, netns=self.address.netns_path, mounts=mounts,
                               memory_bytes=mem, cpu_millis=cpu, log_path=str(log_path), labels=labels)

    def _reported_running(self, name: str, runtime_id: str) -> bool:
        status = self.pod.get("status") or {}
        for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            if cs.get("name") == name and cs.get("containerID") == f"{self.agent.runtime.name}://{runtime_id}":
                return "running" in (cs.get("state") or {})
        return False

    def _probe_target(self, rec: ContainerRecord, spec: dict) -> ProbeTarget:
        assert self.address is not None
        ports = {p["name"]: p["containerPort"] for p in spec.get("ports") or [] if p.get("name")}
        rid = rec.runtime_id
        return ProbeTarget(self.address.netns_path, self.address.probe_host or self.address.pod_ip,
                           lambda argv: self.agent.runtime.exec_argv(rid, argv), ports)

    async def _run_container(self, rec: ContainerRecord) -> None:
        t = self.agent.config.timings
        policy = restart_policy(self.pod)
        backoff = Backoff(t.crashloop_base, t.crashloop_max, t.crashloop_reset)
        first = True
        while True:
            spec = self._spec(rec)
            adopted = self.agent.take_adopted(self.uid, rec.name)
            if adopted is None and first:
                exited = self.agent.take_exited(self.uid, rec.name)
                if exited is not None:
                    if self._reported_running(rec.name, exited.id):
                        adopted = exited  # died while no agent watched: report it, then apply the restart policy
                    else:
                        await self.agent.runtime.remove(exited.id)
            if adopted is not None:
                rec.runtime_id = adopted.id
                rec.image_id = adopted.labels.get(LABEL_IMAGE_ID) or rec.image_id
                started_at = adopted.started_at
            else:
                attempt = rec.restart_count + (0 if first and not rec.last_state else 1)
                image = await self._pull(rec, spec)
                try:
                    cfg = await self._container_config(rec, spec, image, attempt)
                except asyncio.CancelledError:
                    raise
                except (ContainerConfigError, VolumeError, NodeRuntimeError, ApiError, ApiConnectionError) as exc:
                    rec.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)[:1000]}}
                    self.mark_dirty()
                    await asyncio.sleep(max(backoff.next(), 0.5 * t.crashloop_base))
                    continue
                try:
                    self.marks.setdefault("config", time.monotonic())
                    state = await self.agent.runtime.start(cfg)
                except asyncio.CancelledError:
                    raise
                except NodeRuntimeError as exc:
                    rec.state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)[:1000]}}
                    self.mark_dirty()
                    await asyncio.sleep(max(backoff.next(), 0.5 * t.crashloop_base))
                    continue
                rec.runtime_id = cfg.id
                rec.restart_count = attempt
                self.marks.setdefault("started", time.monotonic())
                started_at = state.started_at
            first = False
            rec.state = {"running": {"startedAt": rfc3339(started_at)}}
            probes = self._start_probes(rec, spec)
            self.mark_dirty()
            try:
                exit_status = await self.agent.runtime.wait(rec.runtime_id)
            finally:
                for p in probes:
                    p.cancel()
            rec.ready, rec.started = False, False
            reason = "ContainerStatusUnknown" if exit_status.reason == "Unknown" else exit_status.reason
            term: dict[str, Any] = {"exitCode": exit_status.code, "reason": reason, "startedAt": rfc3339(started_at),
                                    "finishedAt": rfc3339(exit_status.finished_at), "containerID": f"process://{rec.runtime_id}"}
            if exit_status.message:
                term["message"] = exit_status.message
            elif reason == "ContainerStatusUnknown":
                term["message"] = "The container exited while the node agent was not running; its exit code is unknown"
            rec.state = {"terminated": term}
            old_id = rec.runtime_id
            await self.agent.runtime.remove(old_id)
            if rec.init:
                restart = exit_status.code != 0 and policy != "Never"
                if exit_status.code == 0:
                    rec.done = True
                    self.mark_dirty()
                    return
                if not restart:
                    rec.done = True
                    self.init_failed = True
                    self.mark_dirty()
                    return
            else:
                restart = policy == "Always" or (policy == "OnFailure" and exit_status.code != 0)
            if not restart:
                rec.done = True
                self.mark_dirty()
                return
            rec.last_state = {"terminated": term}
            delay = backoff.next(exit_status.finished_at - started_at)
            if delay > 0:
                rec.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                         f"back-off {delay:g}s restarting failed container={rec.name} pod={self.name}_{self.namespace}({self.uid})"}}
                self.mark_dirty()
                await asyncio.sleep(delay)

    def _start_probes(self, rec: ContainerRecord, spec: dict) -> list[asyncio.Task]:
        t = self.agent.config.timings
        startup, liveness, readiness = spec.get("startupProbe"), spec.get("livenessProbe"), spec.get("readinessProbe")
        rec.has_readiness = bool(readiness)
        rec.started = startup is None
        rec.ready = not rec.init and startup is None and readiness is None
        if rec.init:
            return []
        target = self._probe_target(rec, spec)
        kw = {"scale": t.probe_scale, "default_period": t.probe_period, "default_timeout": t.probe_timeout}
        tasks: list[asyncio.Task] = []
        rid = rec.runtime_id

        def spawn(kind: str, probe: dict, cb) -> None:
            tasks.append(asyncio.create_task(ProbeWorker(kind, probe, target, cb, **kw).run(), name=f"{kind} {self.name}/{rec.name}"))

        def start_gated() -> None:
            if liveness:
                spawn("liveness", liveness, on_liveness)
            if readiness:
                spawn("readiness", readiness, on_readiness)

        async def on_startup(ok: bool, message: str) -> None:
            if ok and not rec.started and rec.runtime_id == rid:
                rec.started = True
                rec.ready = readiness is None
                self.mark_dirty()
                start_gated()
            elif not ok and rec.runtime_id == rid:
                log.info("pod %s/%s: container %s failed its startup probe: %s", self.namespace, self.name, rec.name, message)
                await self._kill_for_probe(rec, spec)

        async def on_liveness(ok: bool, message: str) -> None:
            if not ok and rec.runtime_id == rid:
                log.info("pod %s/%s: container %s failed liveness probe, will be restarted: %s", self.namespace, self.name, rec.name, message)
                await self._kill_for_probe(rec, spec)

        def on_readiness(ok: bool, message: str) -> None:
            if rec.runtime_id == rid and rec.running and rec.ready != ok:
                rec.ready = ok
                self.mark_dirty()

        if startup:
            spawn("startup", startup, on_startup)
        else:
            start_gated()
        return tasks

    async def _kill_for_probe(self, rec: ContainerRecord, spec: dict) -> None:
        rid = rec.runtime_id
        if rid is None:
            return
        grace = termination_grace(self.pod, self.agent.config.timings.default_grace) * self.agent.config.timings.grace_scale
        asyncio.create_task(self._stop_container(rid, spec, grace))

    async def _stop_container(self, rid: str, spec: dict, grace: float) -> None:
        if rid in self._stopping:
            return
        self._stopping.add(rid)
        try:
            deadline = time.monotonic() + grace
            pre = ((spec.get("lifecycle") or {}).get("preStop")) or {}
            if pre and self.agent.runtime.is_running(rid):
                if "sleep" in pre:
                    await asyncio.sleep(min(float(pre["sleep"].get("seconds", 0)) * self.agent.config.timings.grace_scale, grace))
                else:
                    rec = next((r for r in self.init + self.containers if r.runtime_id == rid), None)
                    if rec is not None:
                        ok, msg = await check(pre, self._probe_target(rec, spec), max(0.1, grace))
                        if not ok:
                            log.info("pod %s/%s: preStop hook failed: %s", self.namespace, self.name, msg)
            await self.agent.runtime.stop(rid, max(0.0, deadline - time.monotonic()))
        finally:
            self._stopping.discard(rid)

    # ------------------------------------------------------------------ termination

    async def _terminate(self) -> None:
        t = self.agent.config.timings
        grace = termination_grace(self.pod, t.default_grace) * t.grace_scale
        running = [(r.runtime_id, self._spec(r)) for r in self.init + self.containers
                   if r.runtime_id and self.agent.runtime.is_running(r.runtime_id)]
        for adopted in self.agent.pop_adopted(self.uid):
            running.append((adopted.id, {}))
        await asyncio.gather(*(self._stop_container(rid, spec, grace) for rid, spec in running), return_exceptions=True)
        for rid, _ in running:
            await self.agent.runtime.remove(rid)
        await self.teardown()
        if not self._gone:
            try:
                await self.agent.client.delete("pods", self.name, namespace=self.namespace, grace_period_seconds=0,
                                               preconditions={"uid": self.uid})
            except (NotFound, Conflict):
                pass
            except (ApiError, ApiConnectionError) as exc:
                log.warning("pod %s/%s: final delete failed: %s", self.namespace, self.name, exc)

    async def teardown(self) -> None:
        if self.volumes is None:
            self.volumes = PodVolumes(self.pod_dir / "volumes", self.pod, lookup=self.agent.lookup, field_value=lambda p: "")
            self.volumes.paths = {p.name: p for p in (self.pod_dir / "volumes").iterdir()} if (self.pod_dir / "volumes").is_dir() else {}
        try:
            await self.volumes.teardown()
        except NodeRuntimeError as exc:
            log.warning("pod %s/%s: %s", self.namespace, self.name, exc)
        try:
            await self.agent.network.teardown(self.pod)
        except NodeRuntimeError as exc:
            log.warning("pod %s/%s: %s", self.namespace, self.name, exc)
        self.agent.logs.remove_pod(self.namespace, self.name, self.uid)
        import shutil
        shutil.rmtree(self.pod_dir, ignore_errors=True)

    # ------------------------------------------------------------------ status

    def status(self) -> dict:
        return pod_status(
            self.pod, init=self.init, containers=self.containers, sandbox_ready=self.sandbox_ready,
            pod_ip=self.address.pod_ip if self.address else None, host_ip=self.agent.node_ip, start_time=self.start_time,
            qos=qos_class(self.pod), restart_policy=restart_policy(self.pod), init_failed=self.init_failed,
            runtime_scheme=self.agent.runtime.name, previous_status=self._last_written)

    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self._last_written is None and not self._progressed.is_set():
                # kubelet's status manager batches too: a pod that starts quickly gets one write
                # (Running) instead of ContainerCreating then Running — half the API writes in a burst
                try:
                    await asyncio.wait_for(self._progressed.wait(), self.agent.config.timings.status_coalesce)
                except asyncio.TimeoutError:
                    pass
            self._dirty.clear()
            if self._deleted.is_set():
                self._flushed.set()
                continue
            status = self.status()
            if same_status(self._last_written, status) or (self._last_written is None and same_status(self.pod.get("status"), status)):
                self._flushed.set()
                continue
            body = dict(status)
            for k in (self._last_written or self.pod.get("status") or {}):
                if k not in body:
                    body[k] = None
            if os.environ.get("NODE_RUNTIME_DEBUG_STATUS"):
                log.warning("status %s: %s", self.name, {k: v for k, v in status.items() if (self._last_written or {}).get(k) != v})
            self.marks.setdefault("write_begin", time.monotonic())
            try:
                await self.agent.write_pod_status(self.namespace, self.name, body)
                self._last_written = status
                if status["phase"] == "Running" and self.running_at is None:
                    self.running_at = time.time()
                    self.marks["running_written"] = time.monotonic()
                    if os.environ.get("NODE_RUNTIME_DEBUG_MARKS"):
                        m = self.marks
                        log.warning("marks %s %s", self.name, " ".join(f"{k}={v - m['seen']:.3f}" for k, v in m.items()))
                self._flushed.set()
            except NotFound:
                return
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError) as exc:
                log.warning("pod %s/%s: status write failed: %s", self.namespace, self.name, exc)
                await asyncio.sleep(0.5)
                self._dirty.set()
