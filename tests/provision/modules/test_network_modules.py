"""wait_for, uri and setup on a real lab host; servers run on the lab host's own loopback only."""

from __future__ import annotations

import asyncio
import random

import pytest

from clusterctl.provision.modules import wait_for
from clusterctl.provision.modules.uri import parse_http_response
from tests.provision.modules.conftest import run_module

pytestmark = pytest.mark.lab

CGI = """#!/bin/sh
body=$(cat)
printf 'Content-Type: application/json\\r\\nX-Test: yes\\r\\n\\r\\n'
printf '{"method": "%s", "body": %s, "query": "%s"}' "$REQUEST_METHOD" "${body:-null}" "$QUERY_STRING"
"""


@pytest.fixture
async def http_server(conn, scratch, on_host):
    """busybox httpd on 127.0.0.1:<port> inside the lab host: static files + a JSON echo CGI."""
    port = random.randint(20000, 40000)
    root = f"{scratch}/www"
    await on_host(f"mkdir -p {root}/cgi-bin && printf 'static page\\n' > {root}/index.html")
    await conn.put(CGI.encode(), f"{root}/cgi-bin/echo")
    await on_host(f"chmod 755 {root}/cgi-bin/echo")
    await on_host(f"setsid busybox httpd -f -p 127.0.0.1:{port} -h {root} </dev/null >/dev/null 2>&1 & echo $! > {scratch}/httpd.pid")
    # up to 30 s: a loaded machine can take seconds to start it (the old 100 x 0.02 s did not)
    await on_host(f"for i in $(seq 1500); do bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null && exit 0; sleep 0.02; done; exit 1")
    yield port
    await conn.run(f"kill $(cat {scratch}/httpd.pid) 2>/dev/null; true")


@pytest.mark.parametrize("client", ["curl", "wget", "devtcp", None])
async def test_uri_get_post_and_status(make_ctx, http_server, client):
    base = f"http://127.0.0.1:{http_server}"
    extra = {"_client": client} if client else {}
    res = await run_module(make_ctx(), "uri", {"url": f"{base}/index.html", "return_content": True, **extra})
    assert not res["failed"], res
    assert res["status"] == 200 and res["content"] == "static page\n" and res["changed"] is False
    res = await run_module(make_ctx(), "uri", {"url": f"{base}/cgi-bin/echo?x=1", "method": "POST", "body": {"a": [1, "two"]},
                                               "body_format": "json", "headers": {"X-Req": "1"}, **extra})
    assert not res["failed"], res
    assert res["json"] == {"method": "POST", "body": {"a": [1, "two"]}, "query": "x=1"} and res["x_test"] == "yes"
    res = await run_module(make_ctx(), "uri", {"url": f"{base}/missing", **extra})
    assert res["failed"] and res["status"] == 404 and "404" in res["msg"]
    res = await run_module(make_ctx(), "uri", {"url": f"{base}/missing", "status_code": [200, 404], **extra})
    assert not res["failed"] and res["status"] == 404


async def test_uri_skipped_in_check_mode_and_connection_refused(make_ctx, http_server):
    assert (await run_module(make_ctx(check_mode=True), "uri", {"url": f"http://127.0.0.1:{http_server}/"}))["skipped"]
    res = await run_module(make_ctx(), "uri", {"url": "http://127.0.0.1:1/", "timeout": 2})
    assert res["failed"] and res["status"] == -1


def test_parse_http_response_keeps_the_last_response():
    text = "RC 0\n--HEADERS--\nHTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n--BODY--\naGk=\n"
    parsed = parse_http_response(text)
    assert parsed["status"] == 200 and parsed["headers"] == {"Content-Type": "text/plain"} and parsed["body"] == b"hi"


async def test_wait_for_port_and_path(make_ctx, http_server, scratch, on_host):
    # waits that must succeed get 30 s (each probe is a command over SSH on a possibly loaded machine)
    ok = await run_module(make_ctx(), "wait_for", {"port": http_server, "timeout": 30, "sleep": 0.05})
    assert not ok["failed"] and ok["changed"] is False
    ok = await run_module(make_ctx(), "wait_for", {"port": http_server, "state": "drained", "timeout": 30, "sleep": 0.05})
    assert not ok["failed"]
    closed = random.randint(41000, 50000)
    res = await run_module(make_ctx(), "wait_for", {"port": closed, "timeout": 0.3, "sleep": 0.05, "connect_timeout": 1})
    assert res["failed"] and res["msg"] == f"Timeout when waiting for 127.0.0.1:{closed}"
    assert not (await run_module(make_ctx(), "wait_for", {"port": closed, "state": "stopped", "timeout": 30, "sleep": 0.05}))["failed"]

    # the file appears (with the text) only once the wait has been going for a while: it waits
    # for it (no timing assumed: the test writes the file after seeing the wait still running)
    waiting = asyncio.create_task(run_module(make_ctx(), "wait_for", {"path": f"{scratch}/flag", "search_regex": "ready: (yes|no)",
                                                                      "timeout": 60, "sleep": 0.05}))
    await on_host(f"echo 'not yet' > {scratch}/flag")
    await asyncio.sleep(0.5)
    assert not waiting.done(), waiting.result()
    await on_host(f"echo 'ready: yes' > {scratch}/flag")
    res = await asyncio.wait_for(waiting, 90)
    assert not res["failed"] and res["elapsed"] > 0, res
    waiting = asyncio.create_task(run_module(make_ctx(), "wait_for", {"path": f"{scratch}/flag", "state": "absent",
                                                                      "timeout": 60, "sleep": 0.05}))
    await asyncio.sleep(0.5)
    assert not waiting.done(), waiting.result()
    await on_host(f"rm {scratch}/flag")
    res = await asyncio.wait_for(waiting, 90)
    assert not res["failed"], res


async def test_wait_for_timeout_on_an_injected_clock(make_ctx, scratch, monkeypatch):
    now = [1000.0]
    polls = []

    async def fake_sleep(seconds):
        polls.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(wait_for, "CLOCK", lambda: now[0])
    monkeypatch.setattr(wait_for, "SLEEP", fake_sleep)
    res = await run_module(make_ctx(), "wait_for", {"path": f"{scratch}/never", "timeout": 30, "delay": 5, "msg": "gave up"})
    assert res["failed"] and res["msg"] == "gave up" and res["elapsed"] == 30
    assert polls[0] == 5 and len(polls) == 26  # delay, then one poll a second (default sleep) until the deadline


async def test_setup_returns_facts(make_ctx, lab3):
    res = await run_module(make_ctx(), "setup", {"gather_subset": "min"})
    facts = res["ansible_facts"]
    assert res["changed"] is False and facts["hostname"] == "h1" and facts["os_family"] == "Debian"
    assert lab3.hosts[0].ip in facts["all_ipv4_addresses"] and facts["pkg_mgr"] == "apt"
    assert facts["gather_subset"] == ["min"]
    only = (await run_module(make_ctx(), "setup", {"filter": "ansible_distribution*"}))["ansible_facts"]
    assert set(only) == {"distribution", "distribution_version", "distribution_major_version", "distribution_release", "distribution_file_variety"}
