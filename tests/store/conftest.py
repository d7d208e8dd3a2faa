"""Fixtures for the store tests: a real local etcd (one per session) and a ``store`` fixture
parametrized over both backends, so one conformance suite checks both.

``etcd_server`` starts Debian's ``etcd`` on free loopback ports with a temporary data directory
(``clusterctl.store.etcd_process.LocalEtcd``), with TLS and client certificates as deployed.
Each etcd-backed store gets its own key prefix, so tests sharing the one etcd never see each
other's keys.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from clusterctl.store import Store, open_store
from clusterctl.store.etcd_process import LocalEtcd

_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEtcd]:
    with LocalEtcd(tmp_path_factory.mktemp("etcd")) as etcd:
        yield etcd


@pytest.fixture(params=["tinydb", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    if request.param == "tinydb":
        config = {"backend": "tinydb", "data_dir": str(tmp_path / "store")}
    else:
        etcd = request.getfixturevalue("etcd_server")
        config = etcd.store_config(prefix=f"/test-{next(_prefixes)}")  # TLS + client certificate
    backend = open_store(config)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()
