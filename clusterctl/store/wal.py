"""The write-ahead log of the tinydb backend: framed, checksummed JSON lines in numbered segments.

Every acknowledged write is appended here and fsync'd before the store applies it in memory.
One record is one line::

    <payload length, 8 hex digits> <crc32 of payload, 8 hex digits> <payload JSON>\\n

The length and checksum let recovery tell a *torn tail* (the last append was cut short by a
crash or power loss: it was never acknowledged, so it is truncated with a warning) from
*corruption in the middle* (a bad record followed by valid ones: something damaged acknowledged
data, so recovery stops with ``CorruptLog`` naming the file and offset instead of loading it).

The log is split into segments ``wal-<seq>.log``. Folding the log into a snapshot rotates to a
new segment first; once the snapshot is durably renamed into place, the segments it covers are
deleted. Only the newest segment can legitimately have a torn tail.

All methods here are blocking (file I/O); the store calls them from a dedicated thread.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import orjson

from clusterctl.store.base import CorruptLog, StoreError

log = logging.getLogger(__name__)

_HEADER_LEN = 18  # "llllllll cccccccc "
_SEGMENT_RE = re.compile(r"^wal-(\d{16})\.log$")


def segment_name(seq: int) -> str:
    return f"wal-{seq:016d}.log"


def frame(payload: bytes) -> bytes:
    """One log record: length and crc32 header, the payload, a newline."""
    return b"%08x %08x " % (len(payload), zlib.crc32(payload)) + payload + b"\n"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """The log segments in ``directory``, oldest first."""
    found = []
    for entry in os.scandir(directory):
        match = _SEGMENT_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), Path(entry.path)))
    found.sort()
    return found


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class TornTail:
    """A cut-short final record: where it starts and how many bytes follow."""

    path: Path
    offset: int
    length: int


def _parse_at(data: bytes, offset: int) -> tuple[bytes, int] | None:
    """The payload of a well-formed record at ``offset`` and the next offset, or None."""
    header = data[offset : offset + _HEADER_LEN]
    if len(header) < _HEADER_LEN or header[8:9] != b" " or header[17:18] != b" ":
        return None
    try:
        length = int(header[0:8], 16)
        crc = int(header[9:17], 16)
    except ValueError:
        return None
    start = offset + _HEADER_LEN
    end = start + length
    if end >= len(data) or data[end : end + 1] != b"\n":
        return None
    payload = data[start:end]
    if zlib.crc32(payload) != crc:
        return None
    return payload, end + 1


def _valid_record_after(data: bytes, offset: int) -> int | None:
    """The offset of some well-formed record after a bad one at ``offset``, if any."""
    pos = data.find(b"\n", offset)
    while pos != -1 and pos + 1 < len(data):
        if _parse_at(data, pos + 1) is not None:
            return pos + 1
        pos = data.find(b"\n", pos + 1)
    return None


def read_segment(path: Path, *, is_last: bool) -> tuple[list[tuple[int, dict]], TornTail | None]:
    """Decode every record of one segment: ``([(offset, record), ...], torn tail or None)``.

    Raises ``CorruptLog`` for a bad record followed by valid ones, for a bad record in a segment
    that is not the newest, and for a record whose checksum holds but whose JSON does not parse.
    """
    torn: list[TornTail] = []
    records = list(scan_segment(path, is_last=is_last, torn=torn))
    return records, (torn[0] if torn else None)


def scan_segment(path: Path, *, is_last: bool, torn: list[TornTail]) -> Iterator[tuple[int, dict]]:
    """``read_segment`` one record at a time (recovery applies each before decoding the next, so
    a segment's records never all exist as dicts at once); a torn tail is appended to ``torn``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read write-ahead log {path}: {exc.strerror or exc}") from exc
    offset = 0
    while offset < len(data):
        parsed = _parse_at(data, offset)
        if parsed is None:
            later = _valid_record_after(data, offset)
            if later is not None:
                raise CorruptLog(
                    f"write-ahead log {path} is corrupt at byte offset {offset}: a damaged record is "
                    f"followed by valid ones (next valid record at offset {later}); refusing to load it")
            if not is_last:
                raise CorruptLog(
                    f"write-ahead log {path} is corrupt at byte offset {offset}: a damaged record at the "
                    f"end of a segment that is not the newest; refusing to load it")
            torn.append(TornTail(path, offset, len(data) - offset))
            return
        payload, next_offset = parsed
        try:
            record = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise CorruptLog(f"write-ahead log {path} is corrupt at byte offset {offset}: "
                             f"checksum matches but the record is not JSON ({exc})") from exc
        yield offset, record
        offset = next_offset


def truncate_torn_tail(torn: TornTail) -> None:
    """Cut a torn final record off (it was never acknowledged) and say so."""
    log.warning("write-ahead log %s: torn final record at byte offset %d (%d bytes, never acknowledged); "
                "truncating it", torn.path, torn.offset, torn.length)
    try:
        with open(torn.path, "r+b") as handle:
            handle.truncate(torn.offset)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StoreError(f"cannot truncate torn tail of {torn.path}: {exc.strerror or exc}") from exc


class WalFailed(StoreError):
    """An append could not be made durable; ``broken`` says the log cannot take more appends."""

    def __init__(self, message: str, *, broken: bool):
        super().__init__(message)
        self.broken = broken


class SegmentWriter:
    """Appends framed records to the newest segment, fsync'd; rotates to a new segment on demand."""

    def __init__(self, directory: Path, seq: int):
        self.directory = directory
        self.seq = seq
        self.path = directory / segment_name(seq)
        self._fd = -1
        self.size = 0
        self.records = 0
        self._open()

    def _open(self) -> None:
        existed = self.path.exists()
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self.size = os.fstat(self._fd).st_size
            if not existed:
                fsync_dir(self.directory)  # the new segment's name must survive a crash before any record does
        except OSError as exc:
            raise StoreError(f"cannot open write-ahead log {self.path}: {exc.strerror or exc}") from exc

    def append(self, data: bytes, count: int) -> None:
        """Write and fsync ``data`` (whole records). On failure nothing of it stays in the log."""
        start = self.size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            message = f"write-ahead log {self.path}: {exc.strerror or exc}; the write was not applied"
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                raise WalFailed(message + " (and the partial record could not be cut off)", broken=True) from exc
            raise WalFailed(message, broken=False) from exc
        try:
            os.fsync(self._fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: what is on disk is
            # unknown, so the log takes no more appends (recovery sorts it out on restart).
            raise WalFailed(f"write-ahead log {self.path}: fsync failed: {exc.strerror or exc}; "
                            f"the write was not acknowledged and the store stops taking writes",
                            broken=True) from exc
        self.size = start + len(data)
        self.records += count

    def rotate(self) -> int:
        """Close this segment and start the next one; returns the sequence number of the closed one."""
        closed = self.seq
        self.close()
        self.seq += 1
        self.path = self.directory / segment_name(self.seq)
        self.records = 0
        self._open()
        return closed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def remove_segments_through(directory: Path, seq: int) -> None:
    """Delete segments numbered ``<= seq`` (their records are in a durable snapshot)."""
    for number, path in list_segments(directory):
        if number <= seq:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
    fsync_dir(directory)


def iter_records(directory: Path, *, repair: bool) -> Iterator[dict]:
    """Every record of every segment, oldest first, handling a torn tail of the newest segment.

    With ``repair`` a torn tail is truncated (with a warning); without it, it is only logged.
    """
    segments = list_segments(directory)
    for index, (_, path) in enumerate(segments):
        tails: list[TornTail] = []
        for _, record in scan_segment(path, is_last=index == len(segments) - 1, torn=tails):
            yield record
        torn = tails[0] if tails else None
        if torn is not None:
            if repair:
                truncate_torn_tail(torn)
            else:
                log.warning("write-ahead log %s: torn final record at byte offset %d (%d bytes, never "
                            "acknowledged); ignored", torn.path, torn.offset, torn.length)
