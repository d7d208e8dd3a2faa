"""Jobs: completions and parallelism, retries up to backoffLimit with growing delay, deadline, TTL."""

from __future__ import annotations

import time

from clusterctl.controllers import pods as P
from clusterctl.controllers.job import JobController
from clusterctl.sim.hollow import ANNOTATION_COMPLETE_AFTER, ANNOTATION_EXIT_CODE


def job(name: str, *, exit_code: int = 0, after: float = 0.1, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {**spec, "template": {"metadata": {"annotations": {ANNOTATION_COMPLETE_AFTER: str(after), ANNOTATION_EXIT_CODE: str(exit_code)}},
                                          "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}


def condition(j: dict, kind: str) -> dict | None:
    return next((c for c in (j.get("status") or {}).get("conditions") or [] if c["type"] == kind and c["status"] == "True"), None)


def test_backoff_doubles_and_caps():
    c = JobController.__new__(JobController)
    c.backoff_base, c.backoff_cap = 10.0, 360.0
    assert [c.backoff(n) for n in (0, 1, 2, 3, 6, 7, 20)] == [0, 10, 20, 40, 320, 360, 360]


async def test_completions_parallelism_and_ttl(env):
    await env.start(controllers=("job",))
    await env.add_nodes("job-", 2)
    # No TTL until the test has read the finished job: with a TTL of a second a loaded machine can
    # delete it between two polls. ttlSecondsAfterFinished is mutable, as in Kubernetes.
    await env.api.create(job("count", completions=4, parallelism=2))

    async def complete():
        j = await env.api.get("jobs", "count", namespace="default")
        return j if condition(j, "Complete") else None
    j = await env.wait_for("job complete", complete)
    assert j["status"]["succeeded"] == 4 and j["status"]["active"] == 0 and j["status"]["completionTime"]
    pods = await env.pods(selector="job-name=count")
    assert len(pods) == 4 and all(p["metadata"]["labels"]["controller-uid"] == j["metadata"]["uid"] for p in pods)

    await env.api.patch("jobs", "count", {"spec": {"ttlSecondsAfterFinished": 1}}, namespace="default")

    async def expired():
        names = [x["metadata"]["name"] for x in (await env.api.list("jobs", namespace="default"))["items"]]
        return "count" not in names
    await env.wait_for("job deleted by ttlSecondsAfterFinished", expired, timeout=30)


async def test_job_retries_to_backoff_limit_then_fails(env):
    await env.start(controllers=("job",), job_backoff_base=0.2, job_backoff_cap=0.5)
    await env.add_nodes("jobf-", 1)
    started = time.monotonic()
    await env.api.create(job("doomed", exit_code=1, backoffLimit=2))

    async def failed():
        j = await env.api.get("jobs", "doomed", namespace="default")
        return j if condition(j, "Failed") else None
    j = await env.wait_for("job failed", failed)
    cond = condition(j, "Failed")
    assert cond["reason"] == "BackoffLimitExceeded"
    assert j["status"]["failed"] == 3 and j["status"]["active"] == 0
    pods = await env.pods(selector="job-name=doomed")
    assert len(pods) == 3, "backoffLimit 2 = 3 attempts, no more"
    assert time.monotonic() - started >= 0.2 + 0.4, "retries waited the growing backoff"


async def test_active_deadline(env):
    await env.start(controllers=("job",))
    await env.add_nodes("jobd-", 1)
    await env.api.create(job("slow", after=60, activeDeadlineSeconds=1))

    async def failed():
        j = await env.api.get("jobs", "slow", namespace="default")
        return j if condition(j, "Failed") else None
    j = await env.wait_for("deadline", failed)
    assert condition(j, "Failed")["reason"] == "DeadlineExceeded"
    await env.wait_for("pods removed", lambda: _no_active(env, "slow"))


async def _no_active(env, name: str):
    return not [p for p in await env.pods(selector=f"job-name={name}") if P.is_active(p)]
