"""Fixtures: a real control plane (subprocess, TLS, tokens) and official-client handles on it.

``control_plane`` is shared by a test module (tests use their own names/namespaces);
``fresh_control_plane`` is a private one for tests that restart, kill or compact.
Other areas can reuse these through ``clusterctl.api.testing.start_control_plane``.
"""

from __future__ import annotations

import pytest

from clusterctl.api.testing import FAST_TIMINGS, ControlPlane, api_client, start_control_plane


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory) -> ControlPlane:
    cp = start_control_plane(tmp_path_factory.mktemp("control-plane"), timings=FAST_TIMINGS)
    yield cp
    cp.stop()


@pytest.fixture
def fresh_control_plane(tmp_path) -> ControlPlane:
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS)
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def kube(control_plane):
    from kubernetes import client
    api = api_client(control_plane)
    yield client.CoreV1Api(api), client.AppsV1Api(api)
    api.close()
