"""Integration: the real proxy process in front of a real upstream that misbehaves on purpose.

The upstream is a small aiohttp server in a thread of the test (its routes answer, hang, break the connection
or send a broken body); the proxy runs as ``python -m resources.loopback_proxy`` on a socket the test holds,
as the supervisor does. Every upstream failure must be a 502/503 with the API's error body, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from resources.loopback_proxy import RELOAD_EVERY_S, STATUS_PATH
from resources.process_tree import free_port, stop_tree

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 1024 * 1024


class Upstream:
    """A real HTTP server on a free port, run by an event loop in a thread; ``ready`` drives its /readyz."""

    def __init__(self) -> None:
        self.port = free_port()
        self.ready = True
        self.loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=64 * MAX_BODY)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_post("/echo", self.echo)
        app.router.add_post("/hang", self.hang)
        app.router.add_post("/break", self.break_connection)
        app.router.add_post("/short", self.short_body)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.loop.run_forever()

    async def readyz(self, _: web.Request) -> web.Response:
        if self.ready == "hang":
            await asyncio.sleep(30)
        return web.Response(status=200 if self.ready else 503)

    async def echo(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def hang(self, _: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def break_connection(self, request: web.Request) -> web.Response:
        request.transport.close()  # the connection breaks before any answer (like a killed worker)
        await asyncio.sleep(1)
        return web.Response(text="never")

    async def short_body(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"only this")
        request.transport.close()  # announced 1000 bytes, sends 9: a broken payload
        return resp

    def close(self) -> None:
        async def shutdown() -> None:
            await self.runner.cleanup()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, Upstream, Path]]:
    upstream = Upstream()
    state = tmp_path / "upstream.json"
    state.write_text(json.dumps({"upstream": f"http://127.0.0.1:{upstream.port}"}))
    sock = socket.create_server(("127.0.0.1", 0))
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "resources.loopback_proxy", "--fd", str(sock.fileno()), "--state", str(state),
           "--max-body-bytes", str(MAX_BODY), "--read-timeout-s", "1.5", "--connect-grace-s", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, pass_fds=(sock.fileno(),), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, upstream, state
    finally:
        stop_tree(proc.pid)
        sock.close()
        upstream.close()


def error(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"detail"} and body["detail"][0]["msg"]
    return resp.status_code, body["detail"][0]["type"]


def test_forwards_and_reports_its_upstream(proxied):
    url, upstream, _ = proxied
    assert httpx.post(url + "/echo", content=b"hello").content == b"hello"
    status = httpx.get(url + STATUS_PATH).json()
    assert status["upstream"] == f"http://127.0.0.1:{upstream.port}" and status["ready"] is True


def test_bodies_stream_both_ways_and_an_interim_100_continue_is_passed_on(proxied):
    url, _, _ = proxied
    chunks = [bytes([i]) * (64 * 1024) for i in range(15)]  # chunked, no Content-Length: 960 KiB
    streamed = httpx.post(url + "/echo", content=iter(chunks), timeout=10)
    assert streamed.status_code == 200 and streamed.content == b"".join(chunks)
    body = b"z" * (512 * 1024)  # the upstream answers "100 Continue" first: it is not the end of the exchange
    resp = httpx.post(url + "/echo", content=body, headers={"Expect": "100-continue"}, timeout=10)
    assert resp.status_code == 200 and resp.content == body
    assert httpx.post(url + "/echo", content=b"after").content == b"after"


def test_every_upstream_failure_is_a_502_or_503_never_a_500(proxied):
    url, _, state = proxied
    t0 = time.monotonic()
    assert error(httpx.post(url + "/hang", timeout=10)) == (503, "upstream_timeout")
    assert 1.4 < time.monotonic() - t0 < 5  # the read timeout, not the upstream's 30 s
    assert error(httpx.post(url + "/break", timeout=10)) == (502, "upstream_broken")  # retried once, then named
    assert error(httpx.post(url + "/short", timeout=10)) == (502, "upstream_broken")
    good, nowhere = state.read_text(), f"http://127.0.0.1:{free_port()}"  # nothing listens there
    state.write_text(json.dumps({"upstream": nowhere}))
    # a switch as the supervisor makes it: the status reports the new upstream, every later request goes there
    assert httpx.get(url + STATUS_PATH).json()["upstream"] == nowhere
    assert error(httpx.post(url + "/echo", content=b"x", timeout=10)) == (503, "upstream_unavailable")
    state.write_text(good)  # unconfirmed, it is seen within RELOAD_EVERY_S by the requests themselves
    time.sleep(2 * RELOAD_EVERY_S)
    assert httpx.post(url + "/echo", content=b"back").content == b"back"


def test_oversized_bodies_get_a_413_before_they_are_read(proxied):
    url, _, _ = proxied
    assert error(httpx.post(url + "/echo", content=b"x" * (MAX_BODY + 1))) == (413, "body_too_large")
    chunked = httpx.post(url + "/echo", content=iter([b"x" * MAX_BODY, b"y"]))  # no Content-Length
    assert error(chunked) == (413, "body_too_large")
    assert httpx.post(url + "/echo", content=b"x" * MAX_BODY).status_code == 200


def test_readyz_answers_within_a_second_from_the_proxys_own_view(proxied):
    url, upstream, _ = proxied
    for state, code in (("hang", 503), (False, 503), (True, 200)):
        upstream.ready = state
        deadline = time.monotonic() + 5
        while True:
            t0 = time.monotonic()
            resp = httpx.get(url + "/readyz", timeout=5)
            assert time.monotonic() - t0 < 1.0  # even while the upstream's /readyz hangs
            if resp.status_code == code or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert resp.status_code == code, (state, resp.text)
