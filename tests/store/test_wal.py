"""The log's record framing and how damage is classified (torn tail vs corruption)."""

from __future__ import annotations

import pytest

from clusterctl.store import CorruptLog
from clusterctl.store.wal import frame, read_segment, segment_name


def records(*numbers: int) -> bytes:
    return b"".join(frame(b'{"r":%d}' % n) for n in numbers)


def test_frame_carries_length_and_crc32():
    assert frame(b'{"r":1}') == b'00000007 %08x {"r":1}\n' % __import__("zlib").crc32(b'{"r":1}')


def test_clean_segment_reads_every_record(tmp_path):
    path = tmp_path / segment_name(1)
    path.write_bytes(records(1, 2, 3))
    decoded, torn = read_segment(path, is_last=True)
    assert [record["r"] for _, record in decoded] == [1, 2, 3] and torn is None


@pytest.mark.parametrize("cut", [1, 10, 20, 25])
def test_cut_short_final_record_is_a_torn_tail(tmp_path, cut):
    whole = records(1, 2)
    path = tmp_path / segment_name(1)
    path.write_bytes(whole + records(3)[:cut])
    decoded, torn = read_segment(path, is_last=True)
    assert [record["r"] for _, record in decoded] == [1, 2]
    assert torn.offset == len(whole) and torn.length == cut


def test_garbage_after_a_crash_is_a_torn_tail(tmp_path):
    path = tmp_path / segment_name(1)
    path.write_bytes(records(1) + b"\x00" * 4096)  # what a filesystem may leave after power loss
    decoded, torn = read_segment(path, is_last=True)
    assert len(decoded) == 1 and torn.length == 4096


def test_bad_checksum_before_valid_records_is_corruption(tmp_path):
    data = bytearray(records(1, 2, 3))
    second = len(records(1))
    data[second + 20] ^= 0x01
    path = tmp_path / segment_name(1)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLog, match=f"offset {second}"):
        read_segment(path, is_last=True)


def test_torn_tail_in_an_older_segment_is_corruption(tmp_path):
    path = tmp_path / segment_name(1)
    path.write_bytes(records(1, 2) + records(3)[:15])
    with pytest.raises(CorruptLog, match="not the newest"):
        read_segment(path, is_last=False)


def test_checksummed_record_that_is_not_json_is_corruption(tmp_path):
    path = tmp_path / segment_name(1)
    path.write_bytes(records(1) + frame(b"{not json"))
    with pytest.raises(CorruptLog, match="not JSON"):
        read_segment(path, is_last=True)
