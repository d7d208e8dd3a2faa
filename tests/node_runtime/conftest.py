"""Fixtures for node runtime tests: a real Debian docker-registry on loopback and busybox rootfs dirs."""

from __future__ import annotations

import pytest

from node_runtime.images.registry_process import start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A real distribution registry on 127.0.0.1:<free port> for the whole session."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()
