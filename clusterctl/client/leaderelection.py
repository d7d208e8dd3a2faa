"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection``.

One candidate at a time holds the Lease (``spec.holderIdentity``) and renews ``spec.renewTime``
every ``retry_period``. Safety — two candidates never both lead — rests on three rules:
- every write is a compare-and-set on the Lease's resourceVersion (409 → we lost the race);
- a candidate only takes a Lease whose record it has seen *unchanged* for ``lease_duration`` on
  its own clock (client-go's "observed time": no trust in other machines' clocks);
- a leader that cannot renew within ``renew_deadline`` (< ``lease_duration``) stops leading
  before anyone else may take over.
Leadership runs ``on_started_leading()`` as a task that is cancelled when leadership is lost;
``on_stopped_leading()`` is then called. On cancellation a leader releases the Lease (empty
holder) so a successor does not wait out the duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from clusterctl.client.errors import AlreadyExists, ApiConnectionError, ApiError, Conflict, NotFound
from clusterctl.client.rest import ApiClient, Obj

log = logging.getLogger(__name__)


def micro_time(now: float | None = None) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaign for one Lease; see the module docstring."""

    def __init__(
        self,
        client: ApiClient,
        *,
        lease_name: str,
        namespace: str = "kube-system",
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], Awaitable[Any]] | None = None,
        on_stopped_leading: Callable[[], Any] | None = None,
        on_new_leader: Callable[[str], Any] | None = None,
        release_on_cancel: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        self.client = client
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self._clock = clock
        self._sleep = sleep
        self._observed: Obj | None = None
        self._observed_spec_key: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self.is_leader = False
        self.observed_leader = ""

    async def run(self) -> None:
        """Campaign, lead, and campaign again after losing; until cancelled."""
        holding = False
        try:
            while True:
                await self._acquire()
                holding = True
                await self._lead()
                holding = False  # stepped down: the lease is no longer ours to release
        finally:
            if holding and self.release_on_cancel:
                await asyncio.shield(self._release())
            self.is_leader = False

    async def _acquire(self) -> None:
        while True:
            if await self.try_acquire_or_renew():
                log.info("leader election %s/%s: %s is now the leader", self.namespace, self.lease_name, self.identity)
                return
            await self._sleep(self.retry_period)

    async def _lead(self) -> None:
        self.is_leader = True
        task = asyncio.create_task(self.on_started_leading()) if self.on_started_leading else None
        try:
            while True:
                await self._sleep(self.retry_period)
                if task is not None and task.done():
                    # Leadership work finished on its own (or crashed): keep the lease but say why.
                    if not task.cancelled() and task.exception() is not None:
                        log.error("leader work of %s failed", self.identity, exc_info=task.exception())
                        break
                # A renewal that hangs must not outlive the deadline: cap it by the time left.
                left = self.renew_deadline - (self._clock() - self._last_renew)
                try:
                    async with asyncio.timeout(max(left, 0.001)):  # not wait_for: 3.11's can swallow a cancel
                        renewed = await self.try_acquire_or_renew()
                except TimeoutError:
                    renewed = False
                if renewed:
                    continue
                if self._clock() - self._last_renew >= self.renew_deadline - self.retry_period:
                    log.warning("leader election %s/%s: %s failed to renew within %.1fs; stepping down",
                                self.namespace, self.lease_name, self.identity, self.renew_deadline)
                    break
        finally:
            self.is_leader = False
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if self.on_stopped_leading is not None:
                result = self.on_stopped_leading()
                if asyncio.iscoroutine(result):
                    await result

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the lease afterwards."""
        now_local = self._clock()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "renewTime": micro_time(), "acquireTime": micro_time()}
        try:
            lease = await self.client.get("leases", self.lease_name, namespace=self.namespace)
        except NotFound:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.lease_name, "namespace": self.namespace},
                    "spec": dict(spec, leaseTransitions=0)}
            try:
                created = await self.client.create(body)
            except (AlreadyExists, Conflict):
                return False
            except (ApiError, ApiConnectionError) as exc:
                log.warning("leader election: creating lease failed: %s", exc)
                return False
            self._observe(created, now_local)
            self._last_renew = now_local
            return True
        except (ApiError, ApiConnectionError) as exc:
            log.warning("leader election: reading lease failed: %s", exc)
            return False

        old = lease.get("spec") or {}
        self._observe(lease, now_local)
        holder = old.get("holderIdentity") or ""
        if holder and holder != self.identity and self._clock() < self._observed_at + self.lease_duration:
            return False  # someone else holds it and we have not seen it stale for a full duration
        new_spec = dict(old)
        new_spec.update(holderIdentity=self.identity, leaseDurationSeconds=spec["leaseDurationSeconds"], renewTime=spec["renewTime"])
        if holder != self.identity:
            new_spec["acquireTime"] = spec["acquireTime"]
            new_spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
        updated = dict(lease, spec=new_spec)
        try:
            result = await self.client.update(updated)
        except Conflict:
            return False
        except (ApiError, ApiConnectionError) as exc:
            log.warning("leader election: updating lease failed: %s", exc)
            return False
        self._observe(result, now_local)
        self._last_renew = now_local
        return True

    def _observe(self, lease: Obj, now_local: float) -> None:
        spec = lease.get("spec") or {}
        key = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"), spec.get("leaseTransitions"))
        if key != self._observed_spec_key:
            self._observed_spec_key = key
            self._observed_at = now_local
            holder = spec.get("holderIdentity") or ""
            if holder != self.observed_leader:
                self.observed_leader = holder
                if self.on_new_leader is not None:
                    self.on_new_leader(holder)
        self._observed = lease

    async def _release(self) -> None:
        # A renewal cancelled in flight may have reached the server after all: the lease we read
        # then is newer than the one we hold, so a conflict means "read again", not "give up"
        # (giving up leaves the followers waiting for a whole lease duration).
        for _ in range(3):
            try:
                lease = await self.client.get("leases", self.lease_name, namespace=self.namespace)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                spec = dict(spec, holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time())
                await self.client.update(dict(lease, spec=spec))
                return
            except Conflict:
                continue
            except (ApiError, ApiConnectionError) as exc:
                log.warning("leader election: releasing lease failed: %s", exc)
                return
        log.warning("leader election: releasing lease %s/%s failed: it kept changing under us", self.namespace, self.lease_name)
