"""Two electors on one real Lease: exactly one leads at any time; the other takes over."""

from __future__ import annotations

import asyncio
import time

from clusterctl.client.leaderelection import LeaderElector
from clusterctl.client.rest import ApiClient


class Timeline:
    def __init__(self) -> None:
        self.intervals: dict[str, list[list[float]]] = {}

    def elector(self, api: ApiClient, identity: str, *, lease_duration: float = 1.5, renew_deadline: float = 1.0, **kw) -> LeaderElector:
        async def lead() -> None:
            self.intervals.setdefault(identity, []).append([time.monotonic(), float("inf")])
            await asyncio.Event().wait()

        def stopped() -> None:
            self.intervals[identity][-1][1] = time.monotonic()

        return LeaderElector(api, lease_name="test-lock", namespace="default", identity=identity, lease_duration=lease_duration,
                             renew_deadline=renew_deadline, retry_period=0.2, on_started_leading=lead, on_stopped_leading=stopped, **kw)

    def assert_never_both(self) -> None:
        spans = sorted((s, e, who) for who, ivs in self.intervals.items() for s, e in ivs)
        for (s1, e1, w1), (s2, e2, w2) in zip(spans, spans[1:]):
            assert e1 <= s2, f"{w1} led until {e1} but {w2} started at {s2}"


async def wait_for(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end
        await asyncio.sleep(0.02)


async def test_one_leader_and_release_on_cancel_hands_over_quickly(api: ApiClient) -> None:
    tl = Timeline()
    # a long lease, so "taken at once" and "taken after expiry" are far apart even on a busy machine
    a, b = (tl.elector(api, who, lease_duration=30.0, renew_deadline=10.0) for who in ("a", "b"))
    ta, tb = asyncio.create_task(a.run()), asyncio.create_task(b.run())
    try:
        await wait_for(lambda: a.is_leader or b.is_leader)
        await asyncio.sleep(1.0)  # several renew periods: the follower must stay a follower
        assert a.is_leader != b.is_leader
        leader, follower, task = (a, b, ta) if a.is_leader else (b, a, tb)
        started = time.monotonic()
        task.cancel()  # releases the lease
        await asyncio.gather(task, return_exceptions=True)
        await wait_for(lambda: follower.is_leader, timeout=25)
        # loose on purpose (a loaded machine): without the release the follower would wait out the 30 s lease
        assert time.monotonic() - started < 15, "a released lease is taken without waiting out its duration"
        lease = await api.get("leases", "test-lock", namespace="default")
        assert lease["spec"]["holderIdentity"] == follower.identity and lease["spec"]["leaseTransitions"] >= 1
        tl.assert_never_both()
    finally:
        for t in (ta, tb):
            t.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)


async def test_a_silent_leader_is_replaced_only_after_the_lease_expires(api: ApiClient) -> None:
    tl = Timeline()
    a = tl.elector(api, "a", release_on_cancel=False)
    ta = asyncio.create_task(a.run())
    await wait_for(lambda: a.is_leader)
    ta.cancel()  # a dies without releasing: its lease stays until it expires
    await asyncio.gather(ta, return_exceptions=True)
    tl.intervals["a"][-1][1] = time.monotonic()
    b = tl.elector(api, "b")
    tb = asyncio.create_task(b.run())
    try:
        began = time.monotonic()
        await wait_for(lambda: b.is_leader, timeout=30)
        assert time.monotonic() - began >= 1.5, "the lease must be observed unchanged for its full duration"
        tl.assert_never_both()
    finally:
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)
