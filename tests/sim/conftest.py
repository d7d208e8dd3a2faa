from tests.client.conftest import api, cluster  # noqa: F401  (real control plane fixtures)
