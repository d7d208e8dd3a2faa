"""The etcd store's HTTP/1.1 client: answer framings (Content-Length, chunked, ended by close),
keep-alive reuse, and the two failure kinds (not sent / answer lost). Against a real etcd and a
small scripted loopback server for the framings etcd does not pick on demand."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from clusterctl.store.etcd_http import GatewayAnswerLost, GatewayClient, GatewayConnectError
from clusterctl.store.etcd_process import free_port
from clusterctl.store.etcd_store import _b64


async def test_small_and_large_etcd_answers_on_reused_connections(etcd_server):
    client = GatewayClient(ssl_context=etcd_server.client_ssl_context())  # mTLS, as the store does
    try:
        base = etcd_server.endpoint + "/v3/kv"
        value = _b64(b"x" * 3000)
        for i in range(40):  # ~120 KB under one prefix: a large (chunked) range answer
            put = orjson.dumps({"key": _b64(b"/http/k%02d" % i), "value": value})
            status, _ = await client.post(base + "/put", put, timeout=5)
            assert status == 200
        whole = orjson.dumps({"key": _b64(b"/http/"), "range_end": _b64(b"/http0")})
        status, body = await client.post(base + "/range", whole, timeout=5)
        reply = orjson.loads(body)
        assert status == 200 and len(reply["kvs"]) == 40 and reply["kvs"][-1]["value"] == value
        assert len(client._idle[etcd_server.endpoint]) == 1  # one connection (one handshake) did all of it
        status, body = await client.post(base + "/range", b"{not json", timeout=5)
        assert status == 400 and b"error" in body
    finally:
        client.close()


async def _scripted_server(answers: list[bytes]):
    """Answers each request (read up to its blank line + Content-Length body) with the next script."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                seen.append(head + await reader.readexactly(length))
                answer = answers.pop(0)
                if answer == b"DROP":
                    return
                for piece in range(0, len(answer), 7):  # in small pieces, as a slow network would
                    writer.write(answer[piece:piece + 7])
                    await writer.drain()
                if b"Connection: close" in answer:
                    return
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


async def test_framings_and_failures():
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\n{\"a\r\n5;ext=1\r\n\":12}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"1\r\n%s\r\n" % bytes([c]) for c in b'{"many":"small chunks"}') + b"0\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"closed\":true}",
        b"DROP",
    ]
    server, url, seen = await _scripted_server(answers)
    client = GatewayClient(headers={"Grpc-Metadata-hasleader": "true"})
    try:
        assert await client.post(url + "/v3/kv/range", b'{"k":1}', timeout=5) == (200, b'{"a":12}')
        assert await client.post(url + "/v3/kv/range", b"{}", timeout=5) == (200, b'{"many":"small chunks"}')
        assert await client.post(url + "/v3/kv/range", b"{}", timeout=5) == (503, b"{}")
        assert await client.post(url + "/v3/kv/txn", b"{}", timeout=5) == (200, b'{"closed":true}')
        assert seen[0].startswith(b"POST /v3/kv/range HTTP/1.1\r\n") and b"Grpc-Metadata-hasleader: true\r\n" in seen[0]
        assert seen[0].endswith(b'Content-Length: 7\r\n\r\n{"k":1}')
        with pytest.raises(GatewayAnswerLost):
            await client.post(url + "/v3/kv/txn", b"{}", timeout=5)
        assert len(seen) == 5
    finally:
        client.close()
        server.close()
        await server.wait_closed()
    with pytest.raises(GatewayConnectError, match="cannot connect"):
        await GatewayClient().post(f"http://127.0.0.1:{free_port()}/v3/kv/range", b"{}", timeout=5)


async def test_a_silent_server_is_an_answer_lost_after_the_timeout():
    async def silent(reader, writer):
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    client = GatewayClient()
    try:
        with pytest.raises(GatewayAnswerLost, match="within 0.2 s"):
            await client.post(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v3/kv/range", b"{}", timeout=0.2)
        assert not client._busy and not any(client._idle.values())
    finally:
        client.close()
        server.close()
        await server.wait_closed()
