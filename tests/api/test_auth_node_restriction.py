"""``auth.authorize_node_create``: a node token registers only its own Node (Kubernetes'
NodeRestriction), so no node can publish an address or an agent certificate for a peer."""

from __future__ import annotations

import pytest

from clusterctl.api import auth, errors

NODE = auth.User("system:node:n1", ("system:nodes", "system:authenticated"))
ADMIN = auth.User("admin", ("system:masters",))
CREATE_NODE = auth.Request("create", "nodes", "", None, None, None)


def node(name: str | None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name} if name else {}}


def test_a_node_creates_its_own_node():
    auth.authorize(NODE, CREATE_NODE)
    auth.authorize_node_create(NODE, CREATE_NODE, node("n1"))


@pytest.mark.parametrize("name", ["n2", None, ""])
def test_a_node_cannot_create_another_nodes_object(name):
    with pytest.raises(errors.ApiError) as refused:
        auth.authorize_node_create(NODE, CREATE_NODE, node(name))
    assert refused.value.code == 403
    assert 'node "n1" may only create its own Node object' in refused.value.message
    assert 'User "system:node:n1" cannot create resource "nodes"' in refused.value.message


def test_admins_and_other_requests_are_not_its_business():
    auth.authorize_node_create(ADMIN, CREATE_NODE, node("anything"))
    auth.authorize_node_create(NODE, auth.Request("create", "events", "", "default", None, None), node("n2"))
    auth.authorize_node_create(NODE, auth.Request("patch", "nodes", "", None, "n1", None), node("n2"))
