"""The controller base against the real server: reconcile on change, requeue policy, Events."""

from __future__ import annotations

import asyncio
from collections import Counter

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import NotFound, PermanentError, TemporaryError
from clusterctl.client.informer import Informer
from clusterctl.client.rest import ApiClient, split_key


class MirrorController(Controller):
    """Keeps ``mirror-<name>`` equal to every ConfigMap labelled ``mirror=yes``."""

    name = "mirror"

    def __init__(self, client: ApiClient) -> None:
        super().__init__(client, workers=3)
        self.configmaps = self.watch(Informer(client, "configmaps", namespace="default", label_selector="mirror=yes"))
        self.calls: Counter[str] = Counter()
        self.events = EventRecorder(client, component="mirror")

    async def reconcile(self, key: str) -> None:
        self.calls[key] += 1
        ns, name = split_key(key)
        source = self.configmaps.get(key)
        if source is None:
            try:
                await self.client.delete("configmaps", f"mirror-{name}", namespace=ns)
            except NotFound:
                pass
            return
        mode = source["metadata"].get("annotations", {}).get("mode")
        if mode == "flaky" and self.calls[key] < 3:
            raise TemporaryError("not yet", delay=0.05)
        if mode == "broken":
            await self.events.record(source, "Warning", "InvalidSpec", "cannot mirror a broken ConfigMap")
            raise PermanentError("broken spec")
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"mirror-{name}", "namespace": ns}, "data": source.get("data") or {}}
        try:
            current = await self.client.get("configmaps", f"mirror-{name}", namespace=ns)
        except NotFound:
            await self.client.create(body)
            return
        if current.get("data") != body["data"]:
            await self.client.update(dict(current, data=body["data"]))


def source(name: str, data: dict, mode: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "labels": {"mirror": "yes"}}
    if mode:
        meta["annotations"] = {"mode": mode}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


async def eventually(check, timeout: float = 30.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if await check():
                return
        except NotFound:
            pass
        assert asyncio.get_running_loop().time() < end, "condition not reached"
        await asyncio.sleep(0.05)


async def test_reconcile_requeue_policy_and_events(api: ApiClient) -> None:
    ctl = MirrorController(api)
    task = asyncio.create_task(ctl.run())
    try:
        await api.create(source("a", {"k": "1"}))
        await api.create(source("flaky", {"k": "2"}, mode="flaky"))
        await api.create(source("broken", {"k": "3"}, mode="broken"))

        async def mirrored(name: str, data: dict) -> bool:
            return (await api.get("configmaps", f"mirror-{name}", namespace="default")).get("data") == data

        await eventually(lambda: mirrored("a", {"k": "1"}))
        await eventually(lambda: mirrored("flaky", {"k": "2"}))
        assert ctl.calls["default/flaky"] == 3, "TemporaryError brings the key back until it succeeds"

        await api.patch("configmaps", "a", {"data": {"k": "changed"}}, namespace="default")
        await eventually(lambda: mirrored("a", {"k": "changed"}))
        await api.delete("configmaps", "a", namespace="default")

        async def mirror_gone() -> bool:
            try:
                await api.get("configmaps", "mirror-a", namespace="default")
            except NotFound:
                return True
            return False

        await eventually(mirror_gone)

        async def broken_events() -> list:  # the broken key was reconciled (waited for, not assumed)
            return (await api.list("events", namespace="default", field_selector="involvedObject.name=broken"))["items"]
        await eventually(broken_events)
        await asyncio.sleep(0.3)  # room for a wrongful requeue
        assert ctl.calls["default/broken"] == 1, "PermanentError is not requeued"
        events = await broken_events()
        assert [(e["type"], e["reason"], e["source"]["component"]) for e in events] == [("Warning", "InvalidSpec", "mirror")]
        assert ctl.queue.num_requeues("default/flaky") == 0, "success forgets the key's backoff"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_event_recorder_counts_repeats(api: ApiClient) -> None:
    obj = await api.create(source("x", {}))
    rec = EventRecorder(api, component="tester")
    for _ in range(3):
        await rec.record(obj, "Normal", "Synced", "all good")
    events = (await api.list("events", namespace="default", field_selector="involvedObject.name=x"))["items"]
    assert len(events) == 1 and events[0]["count"] == 3 and events[0]["involvedObject"]["uid"] == obj["metadata"]["uid"]


async def test_shared_informer_factory_gives_one_watch_to_many_controllers(api: ApiClient) -> None:
    from clusterctl.client.informer import InformerFactory, index_pods_by_node

    factory = InformerFactory(api)
    a = factory.informer("pods", indexers={"node": index_pods_by_node})
    b = factory.informer("pods")
    assert a is b and "node" in a.indexer._index_funcs
    assert factory.informer("pods", namespace="kube-system") is not a
    factory.start()
    try:
        await asyncio.wait_for(factory.wait_for_sync(), 30)
        first_task = a.start()
        assert a.start() is first_task, "starting a shared informer twice runs it once"
    finally:
        await factory.stop()
    assert not a.is_started
