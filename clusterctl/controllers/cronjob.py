"""The CronJob controller: create a Job per schedule tick, with Kubernetes' policies.

``reconcile(namespace/cronjob)`` on the controller's injectable wall ``clock`` (tests move a
fake clock; they never wait for real minutes):
1. the jobs it owns (controller uid) are split into active and finished; ``status.active``,
   ``lastSuccessfulTime`` follow them; finished jobs beyond ``successfulJobsHistoryLimit`` /
   ``failedJobsHistoryLimit`` are deleted, oldest first;
2. the most recent schedule time in (lastScheduleTime or creation, now] is computed with
   croniter in ``spec.timeZone`` (UTC by default); a time older than
   ``startingDeadlineSeconds`` is missed, not run (event ``MissSchedule``);
3. ``suspend`` → nothing new; ``Forbid`` with an active job → skip (the tick stays due until its
   deadline passes, as Kubernetes); ``Replace`` → the active jobs are deleted first; ``Allow`` →
   run alongside;
4. the Job is named ``<cronjob>-<scheduled time in unix minutes>`` — creating it twice is an
   AlreadyExists, so a retried reconcile never runs a tick twice — and ``lastScheduleTime`` set.
The key is requeued for the next tick (or ``resync`` seconds, whichever is sooner).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound, PermanentError
from clusterctl.client.rest import ApiClient, Obj
from clusterctl.controllers import pods as P
from clusterctl.controllers.job import finished_condition
from clusterctl.controllers.shared import SharedInformers

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100


def schedule_times(schedule: str, tz: str | None, after: float, until: float) -> tuple[float | None, int, float]:
    """(most recent tick in (after, until] or None, how many ticks were in that window, the next tick after ``until``)."""
    try:
        zone = ZoneInfo(tz) if tz else timezone.utc
    except ZoneInfoNotFoundError as exc:
        raise PermanentError(f"unknown timeZone {tz!r}") from exc
    try:
        it = croniter(schedule, datetime.fromtimestamp(after, tz=zone))
    except (ValueError, KeyError) as exc:
        raise PermanentError(f"unparseable schedule {schedule!r}: {exc}") from exc
    latest, count = None, 0
    while True:
        t = it.get_next(datetime).timestamp()
        if t > until:
            return latest, count, t
        latest, count = t, count + 1
        if count > MAX_MISSED * 10:
            # far behind: jump to the window's end rather than walking every tick
            it = croniter(schedule, datetime.fromtimestamp(until - 1, tz=zone))


class CronJobController(Controller):
    name = "cronjob-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 2, clock: Callable[[], float] = time.time,
                 resync: float = 10.0) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.resync = resync
        self.cronjobs = informers.get("cronjobs")
        self.jobs = informers.get("jobs")
        self.events = EventRecorder(client, component=self.name, clock=clock)
        self.watch(self.cronjobs)
        self.watch(self.jobs, self._owner_key)

    def _owner_key(self, job: Obj) -> str | None:
        return P.controller_key(job, "CronJob")

    async def reconcile(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None or P.is_terminating(cj):
            return
        now = self.clock()
        spec, old_status = cj.get("spec") or {}, cj.get("status") or {}
        status = dict(old_status)
        jobs = self.jobs.by_index("owner", P.meta(cj).get("uid"))
        active = [j for j in jobs if finished_condition(j) is None and not P.is_terminating(j)]
        finished = [j for j in jobs if finished_condition(j) is not None]
        successes = [P.parse_time((j.get("status") or {}).get("completionTime")) for j in finished if finished_condition(j)["type"] == "Complete"]
        successes = [t for t in successes if t]
        if successes:
            last = max(successes)
            if (P.parse_time(status.get("lastSuccessfulTime")) or 0) < last:
                status["lastSuccessfulTime"] = P.format_time(last)
        await self.cleanup(spec, finished)

        after = P.parse_time(status.get("lastScheduleTime")) or P.parse_time(P.meta(cj).get("creationTimestamp")) or now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            after = max(after, now - int(deadline) - 1)
        scheduled, count, next_tick = schedule_times(spec.get("schedule") or "", spec.get("timeZone"), after, now)
        if scheduled is not None and count > MAX_MISSED:
            await self.events.record(cj, "Warning", "TooManyMissedTimes", f"too many missed start times: {count}")
        if scheduled is not None and not spec.get("suspend"):
            if deadline is not None and now - scheduled > int(deadline):
                await self.events.record(cj, "Warning", "MissSchedule", f"Missed scheduled time to start a job: {P.format_time(scheduled)}")
            else:
                policy = spec.get("concurrencyPolicy") or "Allow"
                if policy == "Forbid" and active:
                    await self.events.record(cj, "Normal", "JobAlreadyActive",
                                             "Not starting job because prior execution is running and concurrency policy is Forbid")
                else:
                    if policy == "Replace":
                        for job in active:
                            await self._delete(job)
                        active = []
                    job = await self.create_job(cj, scheduled)
                    if job is not None:
                        active.append(job)
                    status["lastScheduleTime"] = P.format_time(scheduled)
        status["active"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": P.meta(j)["name"], "namespace": P.meta(j).get("namespace"),
                             "uid": P.meta(j).get("uid"), "resourceVersion": P.meta(j).get("resourceVersion")} for j in active] or None
        if status.get("active") is None:
            status.pop("active", None)
        if _differs(old_status, status):
            m = P.meta(cj)
            try:
                await self.client.patch("cronjobs", m["name"], {"status": {**status, "active": status.get("active")}},
                                        namespace=m.get("namespace"), subresource="status")
            except NotFound:
                return
        self.queue.add_after(key, max(0.01, min(self.resync, next_tick - now)))

    async def create_job(self, cj: Obj, scheduled: float) -> Obj | None:
        m = P.meta(cj)
        template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        name = f"{m['name'][:52]}-{int(scheduled // 60)}"
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": m.get("namespace"), "labels": dict(tmeta.get("labels") or {}),
                            "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: P.format_time(scheduled)},
                            "ownerReferences": [P.owner_reference(cj)]},
               "spec": template.get("spec") or {}}
        try:
            created = await self.client.create(job)
        except AlreadyExists:
            return None  # this tick ran already (a retried reconcile)
        await self.events.record(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        return created

    async def cleanup(self, spec: dict[str, Any], finished: list[Obj]) -> None:
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)), ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            if limit is None:
                continue
            done = sorted((j for j in finished if finished_condition(j)["type"] == kind),
                          key=lambda j: P.parse_time((j.get("status") or {}).get("startTime") or P.meta(j).get("creationTimestamp")) or 0.0)
            for job in done[:max(0, len(done) - int(limit))]:
                await self._delete(job)

    async def _delete(self, job: Obj) -> None:
        m = P.meta(job)
        try:
            await self.client.delete("jobs", m["name"], namespace=m.get("namespace"), propagation_policy="Background",
                                     preconditions={"uid": m.get("uid")})
        except (NotFound, Conflict):
            pass


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = set(old) | set(new)
    return any(old.get(k) != new.get(k) for k in keys)


