"""Container log files: instances (--previous), tail/limit/timestamps, rotation, follow across a restart."""

from __future__ import annotations

import asyncio

import pytest

from node_runtime.logs import LogNotFound, LogStore


def test_instances_read_and_rotate(tmp_path):
    store = LogStore(tmp_path / "logs", max_bytes=50)
    for attempt in range(3):
        store.path("ns", "p", "uid", "c", attempt).write_text("".join(f"a{attempt}-{i}\n" for i in range(5)))
    assert store.find("ns", "p", "uid", "c").name == "2.log"
    assert store.find("ns", "p", "uid", "c", previous=True).name == "1.log"
    cur = store.find("ns", "p", "uid", "c")
    assert store.read(cur, tail_lines=2) == b"a2-3\na2-4\n"
    assert store.read(cur, limit_bytes=4) == b"a2-0"
    stamped = store.read(cur, tail_lines=1, timestamps=True).decode()
    assert stamped.endswith("Z a2-4\n") and stamped[:4].isdigit()
    cur.write_text("x" * 60 + "\n")
    store.rotate()
    assert [p.name for p in store.instances("ns", "p", "uid", "c")] == ["1.log", "2.log"]  # only two instances kept
    assert cur.stat().st_size == 0 and (cur.parent / "2.log.1").read_text() == "x" * 60 + "\n"
    assert store.read(cur) == b"x" * 60 + b"\n"  # the rotated generation is still served
    with pytest.raises(LogNotFound):
        store.find("ns", "p", "uid", "other")
    store.remove_pod("ns", "p", "uid")
    assert not store.pod_dir("ns", "p", "uid").exists()


async def test_follow_switches_to_the_new_instance(tmp_path):
    store = LogStore(tmp_path / "logs")
    first = store.path("ns", "p", "u", "c", 0)
    first.write_text("one\n")
    alive = [True]

    def newest():
        return store.instances("ns", "p", "u", "c")[-1]

    got = []

    async def reader():
        async for chunk in store.follow(first, newest, start=0, poll=0.01, alive=lambda: alive[0]):
            got.append(chunk)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.05)
    with open(first, "a") as f:
        f.write("two\n")
    await asyncio.sleep(0.05)
    store.path("ns", "p", "u", "c", 1).write_text("three\n")
    await asyncio.sleep(0.05)
    alive[0] = False
    await asyncio.wait_for(task, 30)  # it drains the old file and the new one before it stops
    assert b"".join(got) == b"one\ntwo\nthree\n"
