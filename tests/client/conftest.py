from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clusterctl.client.rest import ApiClient
from tests.client.live import control_plane


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[ApiClient, Path]]:
    """(admin client, kubeconfig path) of a fresh real control plane."""
    async with control_plane(tmp_path) as pair:
        yield pair


@pytest.fixture
async def api(cluster: tuple[ApiClient, Path]) -> ApiClient:
    return cluster[0]
