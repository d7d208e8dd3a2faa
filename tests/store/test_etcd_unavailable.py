"""The etcd store when etcd cannot answer: a member without a leader (a real 3-member cluster
losing its quorum, members paused with SIGSTOP), and writes whose answer is lost on the way back
(a loopback proxy that lets the request reach etcd and drops the reply). etcd runs with TLS and
client certificates (peers too), as deployed; the proxy ends TLS on both sides.

Reads and writes are retried with backoff within ``retry_budget``, then ``StoreUnavailable``;
a write retried after a lost answer is told apart from someone else's write by its value.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import urllib.error
import urllib.request

import pytest

from clusterctl.store import KeyNotFound, RevisionConflict, StoreError
from clusterctl.store.etcd_process import LocalEtcdCluster
from clusterctl.store.base import StoreUnavailable
from clusterctl.store.etcd_store import EtcdStore

KEY = "/registry/core/configmaps/default/a"


@pytest.fixture
def cluster(tmp_path):
    # short raft timings, so losing and regaining a leader takes a fraction of a second
    with LocalEtcdCluster(tmp_path / "etcd", size=3, heartbeat_ms=50, election_ms=500, tls=True) as etcd:
        yield etcd


def _has_leader(member) -> bool:
    request = urllib.request.Request(member.endpoint + "/v3/kv/range", data=b'{"key":"AA=="}', method="POST",
                                     headers={"Grpc-Metadata-hasleader": "true"})
    try:
        # short: a member still waiting on its (paused) leader holds the request until this times out
        with urllib.request.urlopen(request, timeout=2, context=member.client_ssl_context()) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        body = exc.read()
        assert exc.code == 503, (exc, body)
        if b"request timed out" in body:
            return True  # taken while it still believed in its leader; timed out waiting on it: ask again
        assert b"no leader" in body, (exc, body)
        return False
    except TimeoutError:
        return True  # still waiting on a leader it has not yet noticed is gone
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return True  # connect or TLS handshake slow (a loaded machine): ask again
        raise


async def _wait_leaderless(member) -> None:
    deadline = time.monotonic() + 30
    while await asyncio.to_thread(_has_leader, member):
        assert time.monotonic() < deadline, f"{member.endpoint} still has a leader with 2 of 3 members paused"
        await asyncio.sleep(0.1)


async def test_without_a_leader_calls_retry_then_raise_store_unavailable(cluster):
    first, *others = cluster.members
    store = EtcdStore([first.endpoint], prefix="/noleader", retry_budget=1.0, **cluster.store_options())
    await store.start()
    try:
        created = await store.create(KEY, {"v": 1})
        watch = store.watch("/registry/", after_revision=created.mod_revision)
        waiting = asyncio.ensure_future(watch.__anext__())
        deadline = time.monotonic() + 30
        while not store._watch_responses:  # the watch stream is open before the quorum goes (a 0.2 s sleep raced it)
            assert time.monotonic() < deadline, "the watch stream never opened"
            await asyncio.sleep(0.02)
        for member in others:
            member.pause()
        await _wait_leaderless(first)
        # a watch on a member cut off from its cluster ends (the client re-watches) instead of
        # silently missing what the majority writes; a new one is refused after the budget
        with pytest.raises(StoreError, match="ended"):
            await asyncio.wait_for(waiting, 30)
        with pytest.raises(StoreUnavailable, match="no leader"):
            await asyncio.wait_for(store.watch("/registry/", after_revision=created.mod_revision).__anext__(), 30)

        retries = store.stats["retries"]
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no leader") as err:
            await store.get(KEY)
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 9, elapsed  # retried for the 1 s budget, not the 10 s request timeout (loose: a loaded machine)
        assert store.stats["retries"] - retries >= 3
        assert not err.value.outcome_unknown and err.value.retry_after >= 1

        # reads queued behind a failing merged read share its verdict: one budget, not one each
        store.retry_budget = 4.0
        started = time.monotonic()
        outcomes = await asyncio.gather(*(store.get(f"{KEY}{i}") for i in range(5)), return_exceptions=True)
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        # budget 4 s; one budget after another would be >= 8 s (3.5 s of slack for a loaded machine)
        assert time.monotonic() - started < 7.5
        store.retry_budget = 1.0

        with pytest.raises(StoreUnavailable, match="no leader") as err:
            await store.update(KEY, {"v": 2}, expected_revision=created.mod_revision)
        assert not err.value.outcome_unknown  # "no leader" comes before any proposal: not applied

        # the quorum comes back while a write is retrying: the write goes through
        store.retry_budget = 30.0  # a new leader election on a loaded machine can take seconds
        write = asyncio.create_task(store.update(KEY, {"v": 3}, expected_revision=created.mod_revision))
        await asyncio.sleep(0.3)
        assert not write.done()
        others[0].resume()
        updated = await asyncio.wait_for(write, 45)
        assert (await store.get(KEY)) == updated and updated.value == {"v": 3}
    finally:
        for member in others:
            member.resume()
        await store.close()


class AnswerDroppingProxy:
    """Loopback proxy to etcd that forwards every request and, for ``/v3/kv/txn``, waits for
    etcd's answer (the write is done) and then closes the client connection instead of passing it on.

    It ends TLS on both sides: it serves with a member certificate of etcd's CA (the store verifies
    it as it would etcd) and reaches etcd with the test client certificate."""

    def __init__(self, target_port: int, *, serving: ssl.SSLContext | None = None,
                 upstream: ssl.SSLContext | None = None, answer_with: bytes | None = None):
        self.target_port = target_port
        #: instead of closing, answer the txn with this whole HTTP response (then close)
        self.answer_with = answer_with
        self.serving = serving
        self.upstream = upstream
        self.dropped = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.serving)
        scheme = "https" if self.serving else "http"
        return f"{scheme}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port, ssl=self.upstream)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                up_writer.write(head + body)
                await up_writer.drain()
                if head.startswith(b"POST /v3/kv/txn "):
                    await up_reader.read(1)  # etcd has answered: the txn is applied (or refused)
                    self.dropped += 1
                    if self.answer_with is not None:
                        writer.write(self.answer_with)
                        await writer.drain()
                    return
                await _relay_response(up_reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            up_writer.close()


async def _relay_response(up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await up_reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:")), None)
    writer.write(head)
    if length is not None:
        writer.write(await up_reader.readexactly(length))
    else:  # chunked
        while True:
            size_line = await up_reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            writer.write(size_line + await up_reader.readexactly(size + 2))
            if size == 0:
                break
    await writer.drain()


#: what etcd's gateway answered when its own gRPC connection failed as a peer member stopped (seen
#: in CI: the write's fate is unknown; it took the API server down while it was still starting)
TRANSPORT_ERROR = b'{"error":"OK: HTTP status code 200; transport: missing content-type field","code":2,' \
                  b'"message":"OK: HTTP status code 200; transport: missing content-type field"}'
TRANSPORT_ERROR_RESPONSE = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(TRANSPORT_ERROR)) + TRANSPORT_ERROR


@pytest.fixture(params=["dropped", "transport-error"])
async def lossy_store(request, etcd_server):
    """A store whose first endpoint loses every txn answer (the connection closes, or the gateway's
    transport error comes instead); the second is etcd itself."""
    serving = None
    if etcd_server.member_tls is not None:  # serve as etcd does: a member certificate of its CA
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(etcd_server.member_tls.cert_file, etcd_server.member_tls.key_file)
    proxy = AnswerDroppingProxy(etcd_server.client_port, serving=serving, upstream=etcd_server.client_ssl_context(),
                                answer_with=TRANSPORT_ERROR_RESPONSE if request.param == "transport-error" else None)
    url = await proxy.start()
    stores: list[EtcdStore] = []

    async def make(prefix: str) -> EtcdStore:
        store = EtcdStore([url, etcd_server.endpoint], prefix=prefix, **etcd_server.store_options())
        await store.start()
        stores.append(store)
        return store

    yield proxy, make
    direct = EtcdStore([etcd_server.endpoint], prefix="", **etcd_server.store_options())
    await direct.start()
    for store in stores:
        with contextlib.suppress(KeyNotFound):  # the next parameter starts from an empty key
            await direct.delete(store.prefix + KEY)
        await store.close()
    await direct.close()
    await proxy.stop()


async def test_a_write_whose_answer_was_lost_is_reported_as_done_once(lossy_store, etcd_server):
    proxy, make = lossy_store
    direct = EtcdStore([etcd_server.endpoint], prefix="/lost", **etcd_server.store_options())
    await direct.start()
    try:
        created = await (await make("/lost")).create(KEY, {"v": 1})
        assert proxy.dropped == 1
        stored = await direct.get(KEY)
        assert stored == created and stored.create_revision == created.mod_revision

        updated = await (await make("/lost")).update(KEY, {"v": 2}, expected_revision=created.mod_revision)
        assert proxy.dropped == 2
        assert (await direct.get(KEY)) == updated and updated.mod_revision > created.mod_revision
        assert updated.create_revision == created.create_revision
    finally:
        await direct.close()


async def test_a_real_conflict_stays_a_conflict_after_a_lost_answer(lossy_store, etcd_server):
    proxy, make = lossy_store
    direct = EtcdStore([etcd_server.endpoint], prefix="/lost-conflict", **etcd_server.store_options())
    await direct.start()
    try:
        created = await direct.create(KEY, {"v": 1})
        newer = await direct.update(KEY, {"v": 2}, expected_revision=created.mod_revision)
        with pytest.raises(RevisionConflict) as err:
            await (await make("/lost-conflict")).update(KEY, {"v": 3}, expected_revision=created.mod_revision)
        assert proxy.dropped == 1 and err.value.current == newer

        with pytest.raises(KeyNotFound):  # the lost delete did happen: the key is gone
            await (await make("/lost-conflict")).delete(KEY, expected_revision=newer.mod_revision)
        assert proxy.dropped == 2 and await direct.get(KEY) is None
    finally:
        await direct.close()
