"""CronJobs on an injected clock: fires on schedule, honours Forbid, suspend and the job naming rule."""

from __future__ import annotations

import asyncio
import time

from clusterctl.controllers import pods as P
from clusterctl.controllers.cronjob import schedule_times


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_schedule_times_in_a_time_zone():
    # 09:00 in Paris on 1970-01-01 is 08:00 UTC
    latest, count, nxt = schedule_times("0 9 * * *", "Europe/Paris", 0, 86400)
    assert (latest, count, nxt) == (8 * 3600, 1, 86400 + 8 * 3600)
    latest, count, _ = schedule_times("*/5 * * * *", None, 0, 12 * 60)
    assert (latest, count) == (600, 2)


async def jobs(env) -> list[dict]:
    return sorted((await env.api.list("jobs", namespace="default"))["items"], key=lambda j: j["metadata"]["name"])


async def test_cronjob_fires_on_schedule_and_honours_forbid(env):
    clock = FakeClock(time.time())
    await env.start(controllers=("cronjob",), cronjob_resync=0.05, clock=clock)
    created = await env.api.create({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "default"},
                          "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                                   "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                                                                                  "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    await asyncio.sleep(0.3)
    assert await jobs(env) == [], "nothing before the first tick"

    # the controller counts ticks after the CronJob's creationTimestamp (whole seconds, real time): the first
    # tick is the next minute after it, not after the clock was read (a minute could turn in between)
    first_tick = (int(P.parse_time(created["metadata"]["creationTimestamp"]) // 60) + 1) * 60
    assert clock.now < first_tick
    clock.now = first_tick + 1
    got = await env.wait_for("first job", lambda: _count(env, 1))
    assert got[0]["metadata"]["name"] == f"tick-{first_tick // 60}"
    assert got[0]["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    async def status():
        cj = await env.api.get("cronjobs", "tick", namespace="default")
        s = cj.get("status") or {}
        return s if s.get("lastScheduleTime") and len(s.get("active") or []) == 1 else None
    await env.wait_for("lastScheduleTime and active", status)
    # the controller's own job cache must hold the running job before the next tick, else Forbid has nothing to see
    await env.seen_by_controllers("first job in the controller's cache", "jobs", f"default/{got[0]['metadata']['name']}", lambda j: True)

    # Forbid: the next tick comes while the first job still runs → no second job
    clock.now = first_tick + 61
    await asyncio.sleep(0.5)
    assert len(await jobs(env)) == 1

    # the first job finishes: the due tick now runs (it stays due until a deadline would pass)
    await env.patch("jobs", got[0]["metadata"]["name"], {"status": {"conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "completionTime": "2026-01-01T00:00:00Z", "startTime": "2026-01-01T00:00:00Z", "succeeded": 1}},
        namespace="default", subresource="status")
    got = await env.wait_for("second job after the first finished", lambda: _count(env, 2))
    await env.seen_by_controllers("second job in the controller's cache", "jobs", f"default/{got[1]['metadata']['name']}", lambda j: True)
    assert got[1]["metadata"]["name"] == f"tick-{first_tick // 60 + 1}"

    # suspended: ticks pass, nothing runs
    await env.patch("cronjobs", "tick", {"spec": {"suspend": True, "concurrencyPolicy": "Allow"}}, namespace="default")
    # the tick must not come before the controller knows of the suspension (a fixed sleep raced it on a busy machine)
    await env.seen_by_controllers("suspend in the controller's cache", "cronjobs", "default/tick", lambda cj: cj["spec"].get("suspend"))
    clock.now = first_tick + 121
    await asyncio.sleep(0.5)
    assert len(await jobs(env)) == 2
    # Allow runs alongside the still-active second job
    await env.patch("cronjobs", "tick", {"spec": {"suspend": False}}, namespace="default")
    clock.now = first_tick + 181
    got = await env.wait_for("third job alongside the active one", lambda: _count(env, 3))
    assert got[2]["metadata"]["name"] == f"tick-{first_tick // 60 + 3}"


async def _count(env, n: int):
    items = await jobs(env)
    return items if len(items) == n else None
