"""``clusterctl store status|compact|backup|restore`` run as the real command on real data dirs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from clusterctl.store.tinydb_store import TinyDBStore
from clusterctl.store.wal import list_segments

# The `clusterctl` entry point, run with this interpreter (the console script does the same).
CLUSTERCTL = [sys.executable, "-c", "import sys; from clusterctl.cli import main; sys.exit(main())"]
PODS = "/registry/core/pods/"


def clusterctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLUSTERCTL, "store", *args], capture_output=True, text=True, timeout=60)


def fill(data_dir: Path, count: int) -> dict:
    async def go():
        store = TinyDBStore(data_dir, snapshot_on_close=False)
        await store.start()
        for i in range(count):
            await store.create(PODS + f"default/p{i}", {"i": i})
        await store.delete(PODS + "default/p0")
        await store.close()
    asyncio.run(go())
    return read(data_dir)


def read(data_dir: Path) -> dict:
    async def go():
        store = TinyDBStore(data_dir, snapshot_on_close=False)
        await store.start()
        try:
            return {"revision": store.revision, "items": (await store.list("/")).items}
        finally:
            await store.close()
    return asyncio.run(go())


def test_status_reports_revision_keys_log_and_snapshot(tmp_path):
    fill(tmp_path, 10)
    result = clusterctl("status", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["revision"] == 11 and status["keys"] == 9
    assert status["log_bytes"] > 0 and status["log_records"] == 11
    assert status["snapshot_age_s"] is None and status["running"] is None
    text = clusterctl("status", "--data-dir", str(tmp_path)).stdout
    assert "revision: 11" in text and "keys: 9" in text


def test_status_of_a_running_store_reports_the_owner(tmp_path):
    fill(tmp_path, 3)

    async def go():
        store = TinyDBStore(tmp_path)
        await store.start()
        try:
            return await asyncio.to_thread(clusterctl, "status", "--data-dir", str(tmp_path), "--json")
        finally:
            await store.close()
    result = asyncio.run(go())
    assert result.returncode == 0, result.stderr
    assert "in use by pid" in json.loads(result.stdout)["running"]
    compact = asyncio.run(_run_while_open(tmp_path, "compact", "--data-dir", str(tmp_path)))
    assert compact.returncode == 1 and "in use by pid" in compact.stderr


async def _run_while_open(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    store = TinyDBStore(data_dir)
    await store.start()
    try:
        return await asyncio.to_thread(clusterctl, *args)
    finally:
        await store.close()


def test_compact_folds_the_log_into_the_snapshot(tmp_path):
    before = fill(tmp_path, 20)
    result = clusterctl("compact", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"revision": 21, "keys": 19, "folded_records": 21}
    assert list_segments(tmp_path) == []
    assert read(tmp_path) == before
    status = json.loads(clusterctl("status", "--data-dir", str(tmp_path), "--json").stdout)
    assert status["log_records"] == 0 and status["snapshot_revision"] == 21 and status["snapshot_age_s"] >= 0


def test_backup_and_restore_round_trip(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    before = fill(source, 15)
    backup_file = tmp_path / "backup.json"
    result = clusterctl("backup", str(backup_file), "--data-dir", str(source))
    assert result.returncode == 0, result.stderr and backup_file.is_file()

    result = clusterctl("restore", str(backup_file), "--data-dir", str(target))
    assert result.returncode == 0, result.stderr
    assert read(target) == before

    fill(tmp_path / "other", 2)
    refused = clusterctl("restore", str(backup_file), "--data-dir", str(tmp_path / "other"))
    assert refused.returncode == 1 and "not empty" in refused.stderr and "--force" in refused.stderr
    forced = clusterctl("restore", str(backup_file), "--data-dir", str(tmp_path / "other"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert read(tmp_path / "other") == before


def test_backup_of_a_running_store_is_consistent(tmp_path):
    async def go():
        store = TinyDBStore(tmp_path / "live")
        await store.start()
        try:
            for i in range(5):
                await store.create(PODS + f"default/p{i}", {"i": i})
            await store.backup(tmp_path / "live-backup.json")
            return (await store.list("/")).items
        finally:
            await store.close()
    items = asyncio.run(go())
    restored = clusterctl("restore", str(tmp_path / "live-backup.json"), "--data-dir", str(tmp_path / "copy"))
    assert restored.returncode == 0, restored.stderr
    assert read(tmp_path / "copy")["items"] == items


def test_restore_refuses_a_damaged_backup(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"items": {"1": {"k": "/x"')
    result = clusterctl("restore", str(bad), "--data-dir", str(tmp_path / "target"))
    assert result.returncode == 1 and "snapshot" in result.stderr and str(bad) in result.stderr
    assert not (tmp_path / "target").exists()


def test_status_and_compact_of_an_etcd_backend(etcd_server):
    from clusterctl.store.etcd_store import EtcdStore

    async def fill():
        store = EtcdStore([etcd_server.endpoint], prefix="/cli", **etcd_server.store_options())
        await store.start()
        for i in range(3):
            await store.create(PODS + f"default/p{i}", {"i": i})
        revision = store.revision
        await store.close()
        return revision
    revision = asyncio.run(fill())
    tls = etcd_server.client_tls
    credentials = ["--etcd-ca-file", tls.ca_file, "--etcd-cert-file", tls.cert_file, "--etcd-key-file", tls.key_file]
    result = clusterctl("status", "--etcd", etcd_server.endpoint, "--prefix", "/cli", "--json", *credentials)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["keys"] == 3 and status["revision"] >= revision and status["backend"] == "etcd"
    result = clusterctl("compact", "--etcd", etcd_server.endpoint, "--prefix", "/cli", "--json", *credentials)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["compacted_to"] >= revision
