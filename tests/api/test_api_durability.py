"""Durability at the API level: concurrent writers over HTTPS, the server SIGKILLed at random
moments (seeded) 20 times; after each restart every acknowledged write is there, and nothing
changed that was not written (an in-flight, unacknowledged write may or may not have landed)."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time

from clusterctl.api.testing import FAST_TIMINGS, start_control_plane

WRITERS = 4
KILLS = 20
ACKS_PER_ROUND = 8  # x 20 rounds: > 100 acknowledged writes on any machine
NS = "durable"


class Writer(threading.Thread):
    def __init__(self, cp, wid: int, round_: int, rng: random.Random, expected: dict, stop: threading.Event):
        super().__init__(daemon=True)
        self.cp, self.wid, self.round, self.rng, self.expected, self.stop = cp, wid, round_, rng, expected, stop
        self.error: str | None = None
        self.pending: tuple[str, object] | None = None   # (name, value-or-None) in flight when the server died
        self.acked = 0

    def _request(self, conn, method: str, path: str, body: dict | None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.cp.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def run(self) -> None:
        # 30 s: a slow answer on a loaded machine is not a dead server (a killed one resets at once)
        conn = http.client.HTTPSConnection("127.0.0.1", self.cp.port, context=self.cp.ssl_context(), timeout=30)
        base = f"/api/v1/namespaces/{NS}/configmaps"
        seq = 0
        while not self.stop.is_set():
            # a copy (atomic under the GIL): iterating the shared dict while another writer adds to it raises
            mine = [n for n, v in self.expected.copy().items() if n.startswith(f"w{self.wid}-") and v is not None]
            op = self.rng.choice(["create", "create", "update", "update", "delete"] if mine else ["create"])
            seq += 1
            value = f"{self.wid}-{seq}"
            if op == "create":
                name = f"w{self.wid}-{self.round}-{seq}"
                method, path, body, result = "POST", base, {"metadata": {"name": name}, "data": {"v": value}}, value
            elif op == "update":
                name = self.rng.choice(mine)
                method, path, body, result = "PUT", f"{base}/{name}", {"metadata": {"name": name}, "data": {"v": value}}, value
            else:
                name = self.rng.choice(mine)
                method, path, body, result = "DELETE", f"{base}/{name}", None, None
            self.pending = (name, result)
            try:
                status, payload = self._request(conn, method, path, body)
            except (OSError, http.client.HTTPException):
                return  # the server died with this write in flight: it stays pending
            if not 200 <= status < 300:
                self.error = f"{method} {path}: {status} {payload[:300]!r}"
                return
            self.expected[name] = result
            self.pending = None
            self.acked += 1


def _actual(cp) -> dict:
    items = cp.request("GET", f"/api/v1/namespaces/{NS}/configmaps").json()["items"]
    return {i["metadata"]["name"]: i["data"]["v"] for i in items}


def test_acknowledged_writes_survive_sigkill(tmp_path):
    rng = random.Random(20261126)
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS)
    started = time.monotonic()
    try:
        assert cp.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}}).status == 201
        expected: dict[str, object] = {}
        total_acked = 0
        for round_ in range(KILLS):
            stop = threading.Event()
            writers = [Writer(cp, w, round_, random.Random(rng.random()), expected, stop) for w in range(WRITERS)]
            for w in writers:
                w.start()
            # some progress first, however slow a loaded machine makes it (a fixed window could end
            # before the TLS handshakes did), then a seeded-random moment
            deadline = time.monotonic() + 60
            while sum(w.acked for w in writers) < ACKS_PER_ROUND and any(w.is_alive() for w in writers):
                assert time.monotonic() < deadline, "the writers acknowledged nothing for 60 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.35))
            cp.kill()
            stop.set()
            for w in writers:
                w.join(30)
                assert not w.is_alive(), f"writer {w.wid} still running 30 s after the server was killed"
            cp.start()
            assert not [w.error for w in writers if w.error], [w.error for w in writers if w.error]
            actual = _actual(cp)
            pending = {w.pending[0]: w.pending[1] for w in writers if w.pending}
            for name in set(expected) | set(actual) | set(pending):
                got = actual.get(name)
                allowed = {expected.get(name)}
                if name in pending:
                    allowed.add(pending[name])
                assert got in allowed, f"round {round_}: {name} is {got!r}, acknowledged {expected.get(name)!r}"
                expected[name] = got   # an unacknowledged write that landed is now the truth
            total_acked += sum(w.acked for w in writers)
        assert total_acked > 100, "the writers made too little progress to mean anything"
    finally:
        cp.stop()
    print(f"{KILLS} kills, {total_acked} acknowledged writes in {time.monotonic() - started:.1f} s")
