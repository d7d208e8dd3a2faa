"""The log's writer thread: records durable in order, calls ordered with them, batches shared."""

from __future__ import annotations

import asyncio

from clusterctl.store.group_commit import GroupCommitter
from clusterctl.store.wal import SegmentWriter, frame, read_segment


async def test_records_and_calls_come_back_in_log_order(tmp_path):
    loop = asyncio.get_running_loop()
    seen: list = []
    done = asyncio.Event()

    def on_batch(tokens: list, error) -> None:
        assert error is None
        seen.extend(tokens)
        if seen and seen[-1] == 199:
            done.set()

    segment = SegmentWriter(tmp_path, 1)
    committer = GroupCommitter(segment, loop, on_batch, max_batch=64)
    try:
        sizes_at_call: list[int] = []
        for i in range(200):
            committer.submit(frame(b'{"i":%d}' % i), i)
            if i == 99:  # runs after the first 100 records are durable, reported right after them
                committer.call(lambda: segment.records, lambda result, error: sizes_at_call.append((result, len(seen))))
        await asyncio.wait_for(done.wait(), 30)
        assert seen == list(range(200))
        assert sizes_at_call == [(100, 100)]
        records, torn = read_segment(segment.path, is_last=True)
        assert [record["i"] for _, record in records] == list(range(200)) and torn is None
        assert segment.records == 200
    finally:
        committer.stop()
        segment.close()


async def test_a_failed_call_is_reported_on_the_loop(tmp_path):
    loop = asyncio.get_running_loop()
    segment = SegmentWriter(tmp_path, 1)
    committer = GroupCommitter(segment, loop, lambda tokens, error: None)
    got = loop.create_future()
    try:
        committer.call(lambda: 1 / 0, lambda result, error: got.set_result(error))
        assert isinstance(await asyncio.wait_for(got, 30), ZeroDivisionError)
    finally:
        committer.stop()
        segment.close()
