"""Fixtures shared by every test area.

Lab hosts (``clusterctl.lab``): real sshd hosts in network namespaces on this machine. Both
fixtures need root, iproute2 and openssh-server; without them they fail with the lab's one-line
message (never skip: CI runs as root on a machine that has them). Mark tests that use them
``@pytest.mark.lab``.

What a ``Lab`` gives a test: ``lab.hosts`` (``LabHost``: ``name`` h1..hN, ``ip``, ``netns``,
``data_dir``), ``lab.inventory_path`` (Ansible INI, group ``nodes``), ``lab.known_hosts_path``
(the hosts' real keys), ``lab.key_path`` (root's key on every host), ``lab.ssh_argv(name, *cmd)``,
``lab.exec_argv(name, *cmd)`` (run inside a host without SSH), and the faults
``lab.stop(name)`` / ``lab.start(name)`` (power off/on, disk and host key kept; a stopped
host refuses connections), ``lab.kill_sshd(name)`` (host up, sshd and its sessions dead) and
``lab.cut(name)`` / ``lab.heal(name)`` (network away/back: packets are dropped, connections
time out).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from clusterctl.lab import Lab


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing test's report says which of its control planes had died under it, with the
    exit status and the end of the server's log (a crash would otherwise show only as
    "connection refused")."""
    from clusterctl.api import testing
    outcome = yield
    report = outcome.get_result()
    if report.when == "setup":
        testing.UNEXPECTED_EXITS.clear()
    if report.failed and call.when in ("call", "teardown"):
        testing.note_dead_control_planes()  # still referenced, not yet stopped
        for text in testing.UNEXPECTED_EXITS:
            report.sections.append(("control plane exited", text))
        testing.UNEXPECTED_EXITS.clear()


@pytest.fixture
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], Lab]]:
    """A factory ``make(n) -> Lab``: each call brings up a fresh lab of ``n`` hosts in its own
    temporary dir (its own slot, subnet and names, so it never collides with concurrent labs).
    Every lab made is torn down (``down``) when the test ends, whatever the test did to it.
    Use it for tests that break hosts (stop, cut, install things) or need their own count."""
    labs: list[Lab] = []

    def make(n: int) -> Lab:
        lab = Lab(tmp_path_factory.mktemp("lab"), owner_pid=os.getpid())
        labs.append(lab)
        lab.up(n)
        return lab

    yield make
    errors = []
    for lab in labs:
        try:
            lab.down()
        except Exception as exc:  # tear down the others anyway, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def lab3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab of 3 hosts (h1, h2, h3) shared by the whole test session, torn down at its end.
    For read-mostly tests: don't stop/cut its hosts or leave state that others would trip on
    (write under a unique path, e.g. named after the test); use ``lab_factory`` to break hosts."""
    lab = Lab(tmp_path_factory.mktemp("lab3"), owner_pid=os.getpid())
    lab.up(3)
    try:
        yield lab
    finally:
        lab.down()
