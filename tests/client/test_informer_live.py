"""Informers against the real server: sync, indexes, resume after a break, re-list after 410."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clusterctl.client.informer import Informer
from clusterctl.client.rest import ApiClient
from tests.client.live import control_plane


def cm(name: str, value: str = "v") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}}


async def until(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


async def test_informer_follows_changes_and_indexes(api: ApiClient) -> None:
    await api.create(cm("before"))
    informer = Informer(api, "configmaps", namespace="default")
    seen: list[tuple[str, str]] = []
    informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                         on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                         on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_for_sync(), 30)
        assert informer.get("default/before") is not None
        await api.create(cm("after"))
        await api.patch("configmaps", "before", {"data": {"k": "x"}}, namespace="default")
        await api.delete("configmaps", "after", namespace="default")
        await until(lambda: ("delete", "after") in seen)
        assert seen == [("add", "before"), ("add", "after"), ("update", "before"), ("delete", "after")]
        assert [o["metadata"]["name"] for o in informer.by_index("namespace", "default")] == ["before"]
    finally:
        task.cancel()


async def test_informer_resumes_and_relists_after_410_with_synthetic_events(tmp_path: Path) -> None:
    # A tiny watch history, so a short absence is enough to be compacted past.
    async with control_plane(tmp_path, store={"backend": "tinydb", "history_events": 5}) as (api, _):
        for name in ("a", "b", "c"):
            await api.create(cm(name))
        informer = Informer(api, "configmaps", namespace="default")
        seen: list[tuple[str, str]] = []
        informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                             on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                             on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
        task = asyncio.create_task(informer.run())
        await asyncio.wait_for(informer.wait_for_sync(), 30)
        await api.patch("configmaps", "a", {"data": {"k": "1"}}, namespace="default")
        await until(lambda: ("update", "a") in seen)
        task.cancel()  # the informer is away (e.g. its connection broke)...
        await asyncio.gather(task, return_exceptions=True)
        resumed_from = informer.last_resource_version

        # ...a short absence: it resumes from its resourceVersion without a re-list
        await api.patch("configmaps", "b", {"data": {"k": "1"}}, namespace="default")
        seen.clear()
        task = asyncio.create_task(informer.run())
        await until(lambda: ("update", "b") in seen)
        assert informer.relists == 0 and seen == [("update", "b")]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        # ...a long absence: more changes than the server keeps → 410 → re-list with a synthetic diff
        await api.delete("configmaps", "c", namespace="default")
        await api.create(cm("d"))
        for i in range(10):
            await api.patch("configmaps", "a", {"data": {"k": f"x{i}"}}, namespace="default")
        seen.clear()
        task = asyncio.create_task(informer.run())
        try:
            await until(lambda: informer.relists == 1 and ("add", "d") in seen)
            assert sorted(seen) == [("add", "d"), ("delete", "c"), ("update", "a")]
            assert informer.get("default/a")["data"]["k"] == "x9"
            assert int(informer.last_resource_version) > int(resumed_from)
            await api.create(cm("e"))  # and it keeps watching after the re-list
            await until(lambda: ("add", "e") in seen)
        finally:
            task.cancel()
