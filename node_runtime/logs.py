"""Container log files on the node: where they live, rotation, and reading them back for clients.

Layout (kubelet-like): ``<data_dir>/logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log``, one
file per container instance, written directly by the runtime (the container's stdout/stderr fd),
so logs survive an agent restart and cost the agent nothing while a container runs. ``--previous``
reads the instance before the current one. ``rotate()`` caps each current file at ``max_bytes``
by copy-truncate into ``<attempt>.log.1`` (one rotated generation kept) and keeps only the two
newest instances per container. Reading supports tailLines, limitBytes, sinceSeconds (by file
mtime), timestamps (the agent does not timestamp each line as the container writes it; with
``timestamps`` every line is prefixed with the file's last-modified time, said plainly in the docs)
and follow (polling the file, switching to a newer instance when the container restarts).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import AsyncIterator

from node_runtime.errors import NodeRuntimeError


class LogNotFound(NodeRuntimeError):
    """No log for that container (instance)."""


class LogStore:
    def __init__(self, root: Path, *, max_bytes: int = 10 << 20):
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.root / f"{namespace}_{name}_{uid}"

    def path(self, namespace: str, name: str, uid: str, container: str, attempt: int) -> Path:
        d = self.pod_dir(namespace, name, uid) / container
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{attempt}.log"

    def instances(self, namespace: str, name: str, uid: str, container: str) -> list[Path]:
        d = self.pod_dir(namespace, name, uid) / container
        if not d.is_dir():
            return []
        logs = [p for p in d.glob("*.log") if p.stem.isdigit()]
        return sorted(logs, key=lambda p: int(p.stem))

    def find(self, namespace: str, name: str, uid: str, container: str, *, previous: bool = False) -> Path:
        inst = self.instances(namespace, name, uid, container)
        want = 2 if previous else 1
        if len(inst) < want:
            what = "previous terminated container" if previous else "container"
            raise LogNotFound(f'{what} "{container}" in pod "{name}" not found')
        return inst[-want]

    def remove_pod(self, namespace: str, name: str, uid: str) -> None:
        shutil.rmtree(self.pod_dir(namespace, name, uid), ignore_errors=True)

    def rotate(self) -> None:
        for pod_dir in self.root.iterdir():
            for cdir in pod_dir.iterdir() if pod_dir.is_dir() else []:
                inst = sorted((p for p in cdir.glob("*.log") if p.stem.isdigit()), key=lambda p: int(p.stem))
                for old in inst[:-2]:
                    old.unlink(missing_ok=True)
                    Path(str(old) + ".1").unlink(missing_ok=True)
                if inst and inst[-1].stat().st_size > self.max_bytes:
                    cur = inst[-1]
                    shutil.copyfile(cur, str(cur) + ".1")
                    os.truncate(cur, 0)

    @staticmethod
    def read(path: Path, *, tail_lines: int | None = None, limit_bytes: int | None = None, since_seconds: float | None = None,
             timestamps: bool = False) -> bytes:
        try:
            st = path.stat()
            if since_seconds is not None and st.st_mtime < time.time() - since_seconds:
                return b""
            rotated = Path(str(path) + ".1")
            data = (rotated.read_bytes() if rotated.exists() else b"") + path.read_bytes()
        except OSError as exc:
            raise LogNotFound(f"cannot read log {path.name}: {exc.strerror}") from exc
        if tail_lines is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
        if timestamps:
            stamp = _stamp(st.st_mtime).encode()
            data = b"".join(stamp + b" " + line for line in data.splitlines(keepends=True))
        if limit_bytes is not None:
            data = data[:limit_bytes]
        return data

    async def follow(self, path: Path, next_instance, *, start: int, poll: float = 0.1, timestamps: bool = False,
                     alive=lambda: True) -> AsyncIterator[bytes]:
        """Yield bytes appended to ``path`` from offset ``start``; when ``next_instance()`` returns a
        newer file (the container restarted), continue there; stop when ``alive()`` turns False."""
        pos = start
        while True:
            try:
                size = path.stat().st_size
            except OSError:
                size = pos
            if size < pos:  # rotated (copy-truncate)
                pos = 0
            if size > pos:
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read(size - pos)
                pos += len(chunk)
                if timestamps:
                    stamp = _stamp(time.time()).encode()
                    chunk = b"".join(stamp + b" " + line for line in chunk.splitlines(keepends=True))
                yield chunk
                continue
            newer = next_instance()
            if newer is not None and newer != path:
                path, pos = newer, 0
                continue
            if not alive():
                return
            await asyncio.sleep(poll)


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e9):09d}Z"
