"""The Job controller: run pods until ``completions`` succeed, or give up as Kubernetes does.

``reconcile(namespace/job)`` counts the job's pods (owner uid): active (not finished, not being
deleted), succeeded, failed — for ``restartPolicy: OnFailure`` container restarts count as
failures too, since the kubelet retries in place. Then, in order:
- finished (condition Complete or Failed): any pod still active is deleted (one created just
  before the job finished shows up later), and ``ttlSecondsAfterFinished`` is left to do —
  delete the Job (Background, its pods follow) once that many seconds passed since it finished;
- ``activeDeadlineSeconds`` passed since ``startTime`` → Failed, reason ``DeadlineExceeded``;
- failures > ``backoffLimit`` → Failed, reason ``BackoffLimitExceeded``;
- ``completions`` succeeded (or, without completions, any success and nothing running) →
  Complete, ``completionTime`` set; a Failed or Complete job's active pods are deleted;
- ``suspend`` → active pods deleted, condition Suspended;
- else keep ``min(parallelism, completions - succeeded)`` pods active; after a failure a new pod
  waits ``backoff_base * 2**(failures-1)`` seconds (10 s doubling, capped at 6 min — injectable),
  counted from the newest failure.
Pods are ``<job>-<5 random chars>``, labelled ``job-name``/``controller-uid`` (+ the
``batch.kubernetes.io/`` forms) by the API server's defaulting of the template.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.expectations import Expectations
from clusterctl.controllers.shared import SharedInformers


def finished_condition(job: Obj) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return cond
    return None


def _finished_at(pod: Obj) -> float:
    times = [P.parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for cs in (pod.get("status") or {}).get("containerStatuses") or []]
    times = [t for t in times if t]
    return max(times) if times else (P.parse_time(P.meta(pod).get("creationTimestamp")) or 0.0)


class JobController(Controller):
    name = "job-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 2, clock: Callable[[], float] = time.time,
                 backoff_base: float = 10.0, backoff_cap: float = 360.0) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.jobs = informers.get("jobs")
        self.pods = informers.get("pods")
        self.expectations = Expectations()
        self.events = EventRecorder(client, component=self.name)
        self._failed_seen: dict[str, float] = {}
        self.watch(self.jobs)
        self.pods.add_handler(on_add=self._pod_added, on_update=lambda _o, n: self._pod_changed(n), on_delete=self._pod_deleted)

    def _owner_key(self, pod: Obj) -> str | None:
        return P.controller_key(pod, "Job")

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key and (pod.get("status") or {}).get("phase") == "Failed":
            # finishedAt has one-second resolution; our own observation time bounds the backoff from below
            self._failed_seen.setdefault(P.meta(pod).get("uid"), self.clock())
        if key:
            if P.is_terminating(pod):
                self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        self._failed_seen.pop(P.meta(pod).get("uid"), None)
        key = self._owner_key(pod)
        if key:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def backoff(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.backoff_cap, self.backoff_base * 2 ** (failures - 1))

    async def reconcile(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.forget(key)
            return
        if P.is_terminating(job):
            return
        now = self.clock()
        spec, status = job.get("spec") or {}, dict(job.get("status") or {})
        if finished_condition(job) is not None:
            # a finished job has no active pods: one whose creation was still in flight when the job
            # finished (not yet in the cache then, e.g. a 1 s deadline on a loaded machine) goes now
            await self.delete_pods(key, [p for p in self.pods.by_index("owner", P.meta(job).get("uid")) if P.is_active(p)])
            await self.expire(job, now)
            return
        pods = self.pods.by_index("owner", P.meta(job).get("uid"))
        active = [p for p in pods if P.is_active(p)]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        failed = len(failed_pods)
        if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure":
            failed += sum(P.restarts(p) for p in pods)
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        suspended = bool(spec.get("suspend"))
        stamp = P.format_time(now)
        if not status.get("startTime") and not suspended:
            status["startTime"] = stamp
        start = P.parse_time(status.get("startTime"))
        conditions = list(status.get("conditions") or [])
        outcome: tuple[str, str, str] | None = None
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and start is not None and not suspended and now - start >= int(deadline):
            outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif failed > int(spec.get("backoffLimit", 6)):
            outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif (completions is not None and succeeded >= int(completions)) or (completions is None and succeeded > 0 and not active):
            outcome = ("Complete", "", "")
        if outcome is not None or suspended:
            await self.delete_pods(key, active)
            active = []
        elif self.expectations.satisfied(key):
            want = parallelism if completions is None else min(parallelism, int(completions) - succeeded)
            if succeeded > 0 and completions is None:
                want = 0  # a work-queue job: once one succeeded, no new pods
            missing = want - len(active)
            if missing > 0:
                wait = 0.0
                if failed_pods:
                    last = max(max(_finished_at(p), self._failed_seen.get(P.meta(p).get("uid"), 0.0)) for p in failed_pods)
                    wait = last + self.backoff(failed) - now
                if wait > 0:
                    self.queue.add_after(key, wait)
                else:
                    await self.create_pods(job, key, missing)
            elif missing < 0:
                await self.delete_pods(key, sorted(active, key=P.deletion_rank)[:-missing])
        if suspended:
            conditions = P.set_condition(conditions, {"type": "Suspended", "status": "True", "reason": "JobSuspended",
                                                      "message": "Job suspended", "lastProbeTime": stamp}, stamp)
        elif any(c.get("type") == "Suspended" for c in conditions):
            conditions = P.set_condition(conditions, {"type": "Suspended", "status": "False", "reason": "JobResumed",
                                                      "message": "Job resumed", "lastProbeTime": stamp}, stamp)
        if outcome is not None:
            kind, reason, message = outcome
            cond = {"type": kind, "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp}
            if reason:
                cond.update(reason=reason, message=message)
            conditions = P.set_condition(conditions, cond, stamp)
            if kind == "Complete":
                status["completionTime"] = stamp
            await self.events.record(job, "Normal" if kind == "Complete" else "Warning", reason or "Completed", message or "Job completed")
        status.update(active=len(active), succeeded=succeeded, failed=failed, ready=sum(1 for p in active if P.is_ready(p)))
        if conditions:
            status["conditions"] = conditions
        if deadline is not None and start is not None and outcome is None and not suspended:
            self.queue.add_after(key, max(0.01, start + int(deadline) - now))
        if status != (job.get("status") or {}):
            m = P.meta(job)
            try:
                await self.client.patch("jobs", m["name"], {"status": status}, namespace=m.get("namespace"), subresource="status")
            except NotFound:
                return
        if outcome is not None and spec.get("ttlSecondsAfterFinished") is not None:
            self.queue.add_after(key, float(spec["ttlSecondsAfterFinished"]) + 0.01)

    async def expire(self, job: Obj, now: float) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        cond = finished_condition(job) or {}
        done = P.parse_time((job.get("status") or {}).get("completionTime") or cond.get("lastTransitionTime")) or now
        left = done + int(ttl) - now
        if left > 0:
            self.queue.add_after(object_key(job), left + 0.01)
            return
        m = P.meta(job)
        try:
            await self.client.delete("jobs", m["name"], namespace=m.get("namespace"), propagation_policy="Background",
                                     preconditions={"uid": m.get("uid")})
        except (NotFound, Conflict):
            pass

    async def create_pods(self, job: Obj, key: str, count: int) -> None:
        self.expectations.expect_creations(key, count)
        m = P.meta(job)
        template = (job.get("spec") or {}).get("template") or {}

        async def one() -> None:
            for _ in range(5):
                pod = P.pod_from_template(template, name=f"{m['name'][:57]}-{P.random_suffix()}", namespace=m["namespace"], owner=job)
                try:
                    await self.client.create(pod)
                    return
                except AlreadyExists:
                    continue
            raise RuntimeError(f"no free pod name for job {key}")

        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for _ in errors:
            self.expectations.creation_observed(key)
        if errors:
            await self.events.record(job, "Warning", "FailedCreate", f"Error creating: {errors[0]}")
            raise errors[0]

    async def delete_pods(self, key: str, pods: list[Obj]) -> None:
        if not pods:
            return
        self.expectations.expect_deletions(key, [object_key(p) for p in pods])
        for pod in pods:
            m = P.meta(pod)
            try:
                await self.client.delete("pods", m["name"], namespace=m.get("namespace"), preconditions={"uid": m.get("uid")})
            except (NotFound, Conflict):
                self.expectations.deletion_observed(key, object_key(pod))
