"""The stable loopback URL of a deployment: a byte-forwarding HTTP/1.1 proxy in front of whichever Bento serves.

Run by the deployment's supervisor (``resources.serving_supervisor``), which owns the listening socket and
passes it on (``--fd``): when the proxy dies the socket stays open in the supervisor, connections queue in its
backlog, and the restarted proxy takes them, so a killed proxy refuses nothing. The upstream is read from a
JSON file (``{"upstream": "http://127.0.0.1:PORT"}``) that the supervisor replaces atomically, then confirms
with ``GET /__proxy__/status``, which reads the file at once and reports the upstream, the requests in flight per
upstream (the supervisor drains the old server on them before stopping it) and the upstream's readiness. Each
request chooses its upstream when its head is parsed and is counted there at once, so it goes wholly to the old or
wholly to the new server; requests look at the file at most every RELOAD_EVERY_S (a switch nobody confirms is
seen within that), every request after the confirming status goes to the new one.

Why it forwards bytes instead of re-making requests (as the aiohttp proxy before it did): on the 2 cores the
server shares with its callers, every microsecond of proxy CPU is taken from the server. The aiohttp proxy (a
server plus a client session, bodies read whole) spent 318 us of CPU per small /predict at concurrency 1 and
147 us at 32 (against a trivial upstream; the stable URL then measured 0.57x the server's requests/s); this one
spends 38 and 27 us. Each request is parsed by httptools (C) only to find where it starts and ends; its bytes go
to a keep-alive upstream connection pinned to the client connection as they come, in both directions, with
transport flow control, so a million-row ``/predict_file`` is never held whole (peak RSS +1 MiB for a 48 MiB
request and a 16 MiB answer, where the aiohttp proxy grew 150 MiB).

Where its CPU goes (2026-12-06, issue 21 point 6): its own Python per request, measured in process with stand-in
transports, was 10.5 us and is 6 (no ``stat`` of the state file per request, ~6 us on this VM: RELOAD_EVERY_S; no
``on_message_begin`` callback on either side; ``Exchange`` with slots). Against a trivial upstream, same run, the
proxy spends ~55 us of CPU per request and a bare splice that parses nothing ~35 (both inflated by the shared
machine): what remains is the second hop itself, 2 reads, 2 writes and the wakeups around them (perf: ~55 % of
the proxy's samples in the kernel), which no proxy logic removes; benchmarks/serving.py measures that floor
beside the proxy, in front of the real server. Tried and not kept: two proxy processes on the one socket (66 us
against 57 per request, no throughput gained on 2 cores); a higher scheduling priority (no change beyond noise);
a pool of idle upstream connections shared across client connections (a caller that opens a connection per
request sends ``Connection: close``, which a byte forwarder passes on, so the upstream closes too: measured no
gain; it would need the head rewritten per request). Already in place: TCP_NODELAY on both sides (uvloop sets
it), 250 kB reads (uvloop's buffer); ``sendfile``/``splice`` would only help large bodies, which already stream.

Bounded and never a 500 of its own: a request body larger than ``--max-body-bytes`` gets a 413 (before it is
read when it says its length); an upstream that refuses connections is retried until ``--connect-grace-s``
(nothing was sent); one whose connection breaks before answering is retried once when the request was small
enough to be kept (BUFFER_BYTES; the served API has no side effect but its prediction log, where such a
prediction may then appear twice under two ids; it is answered once); an answer of known length up to
BUFFER_BYTES is passed on only once complete, so a broken one is a 502; a silent upstream gets the request a
503 after ``--read-timeout-s``. Errors use the API's ``{"detail": [...]}`` form. ``/readyz`` answers at once
from a background probe of the upstream's ``/readyz`` (every ``--probe-interval-s``).

Why home-made rather than nginx, HAProxy or Envoy: the project installs with pip alone (no system package),
the supervisor switches upstreams by replacing a file and drains by reading in-flight counts per upstream,
and the behaviour is what the tests drive with ``kill -9`` under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httptools
import uvloop

STATUS_PATH = "/__proxy__/status"
READY_PATH = "/readyz"
# A request up to this size is kept until answered (a broken upstream connection can then be retried with it),
# and an answer of known length up to this size is passed on once complete (a broken one becomes a 502). Larger
# bodies stream through: what the proxy holds per connection stays about this size, whatever the body.
BUFFER_BYTES = 1024 * 1024
HIGH_WATER = 256 * 1024  # transport write buffers: above it the other side stops being read
# how stale the upstream may be for a request: the state file is looked at (a stat, ~6 us here, a tenth of the
# proxy's CPU per request when done for each one) at most this often on the request path, and at once by the
# status the supervisor confirms a switch with, so a switch is never missed by a request counted after it
RELOAD_EVERY_S = 0.02
LINGER_S = 10.0  # after an error answer, how long the rest of a request is read and dropped


class Upstream:
    """The current upstream (host, port), reloaded from the state file when it changes, and its readiness."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._mtime: int | None = None
        self._looked_at = 0.0
        self.url: str | None = None
        self.address: tuple[str, int] | None = None
        self.inflight: Counter[str] = Counter()
        self.ready = False
        self.ready_url: str | None = None  # the upstream the last probe was about
        self.checked_at = 0.0
        self.detail = "not probed yet"

    def current(self, now: float = 0.0) -> str | None:
        """The upstream's URL; the state file is looked at again when ``now`` (the loop's clock) is
        RELOAD_EVERY_S past the last look, and always without ``now`` (the status, the probe, a connect)."""
        if now:
            if now - self._looked_at < RELOAD_EVERY_S:
                return self.url
            self._looked_at = now
        try:
            mtime = os.stat(self.state_file).st_mtime_ns
        except FileNotFoundError:
            return self.url
        if mtime != self._mtime:
            try:
                url = json.loads(self.state_file.read_text())["upstream"]
                host, port = url.removeprefix("http://").rsplit(":", 1)
                self.url, self.address, self._mtime = url, (host, int(port)), mtime
            except (ValueError, KeyError, OSError):
                pass  # a half-written file cannot happen with os.replace; keep the last good upstream anyway
        return self.url


class Settings:
    def __init__(self, max_body_bytes: int, connect_timeout_s: float, read_timeout_s: float,
                 connect_grace_s: float, probe_interval_s: float) -> None:  # fmt: skip
        self.max_body_bytes = max_body_bytes
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.connect_grace_s = connect_grace_s
        self.probe_interval_s = probe_interval_s


def error_body(loc: str, type_: str, msg: str) -> dict[str, Any]:
    return {"detail": [{"loc": [loc], "type": type_, "msg": msg}]}


def response(status: int, body: dict[str, Any], close: bool) -> bytes:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 413: "Payload Too Large", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            f"connection: {'close' if close else 'keep-alive'}\r\n\r\n")  # fmt: skip
    return head.encode() + payload


def is_ready(upstream: Upstream, probe_interval_s: float) -> bool:
    """The last probe succeeded, is recent, and was about the upstream in use now."""
    fresh = time.monotonic() - upstream.checked_at < max(1.0, 4 * probe_interval_s)
    return upstream.ready and fresh and upstream.ready_url == upstream.current()


class UpstreamSide(asyncio.Protocol):
    """One keep-alive connection to an upstream, pinned to a client connection; parses answers to find their end."""

    def __init__(self, client: ClientSide, url: str) -> None:
        self.client, self.url = client, url
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # the current answer: kept until complete while it is small (None: it streams), whether a byte of it
        # reached the client; reset at the end of each (not by an on_message_begin: one callback less per answer)
        self.held: list[bytes] | None = []
        self.held_size = 0
        self.forwarded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        exchange = self.client.exchange
        if exchange is None or exchange.up is not self:
            self.transport.close()  # an answer to nothing: the connection is out of step
            return
        exchange.last = self.client.loop.time()
        self._chunk = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            exchange.broken(self, f"a malformed answer: {e}")
            return
        if self._chunk:  # not consumed by on_headers_complete / on_message_complete
            self._pass(self._chunk)

    def _pass(self, data: bytes) -> None:
        if self.held is None:
            self.client.transport.write(data)
            return
        self.held.append(data)
        self.held_size += len(data)
        if self.held_size > BUFFER_BYTES:  # a large answer: it streams from here on
            self._flush()

    def _flush(self) -> None:
        held, self.held = self.held, None
        if held:
            self.forwarded = True
            self.client.transport.write(held[0] if len(held) == 1 else b"".join(held))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        exchange = self.client.exchange
        if exchange is not None and exchange.method == b"HEAD":  # no body follows whatever the length says
            self._pass(self._chunk)
            self._chunk = b""
            self._flush()
            self.parser = httptools.HttpResponseParser(self)
            self.client.finished(self, keep=False)

    def on_message_complete(self) -> None:
        self._pass(self._chunk)
        self._chunk = b""
        self._flush()
        self.held, self.held_size = [], 0  # the next answer's
        if self.parser.get_status_code() < 200:  # "100 Continue" (curl's large uploads): the answer follows, and
            return  # counts as begun (forwarded stays true: the client has read the interim one)
        self.forwarded = False
        self.client.finished(self, keep=self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.client.exchange
        if exchange is not None and exchange.up is self:
            exchange.broken(self, f"the connection closed ({type(exc).__name__ if exc else 'EOF'})")
        elif self.client.up is self:
            self.client.up = None  # an idle pooled connection the upstream closed

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class Exchange:
    """One request of a client connection: its upstream, the bytes kept for a retry, its deadlines."""

    __slots__ = ("body_bytes", "client", "connecting", "done", "grace_until", "kept", "kept_size", "last", "method",
                 "pending", "retried", "up", "url")  # fmt: skip

    def __init__(self, client: ClientSide, method: bytes, url: str) -> None:
        self.client, self.method, self.url = client, method, url
        self.up: UpstreamSide | None = None
        self.kept: list[bytes] | None = []  # the request's bytes while it is small enough to be sent again
        self.kept_size = 0
        self.pending: list[bytes] = []  # bytes waiting for the upstream connection
        self.connecting = False
        self.retried = False
        self.done = False
        self.body_bytes = 0
        self.last = client.loop.time()  # the last byte either way: the read timeout counts from it
        self.grace_until = 0.0  # set by the first connect

    def timed_out(self) -> None:
        if self.up is not None and self.up.forwarded:
            self.client.close()  # part of the answer is sent: only closing the connection tells the client
        elif not self.done:
            s = self.client.settings
            self.client.fail(503, "upstream_timeout", f"upstream {self.url} did not answer within "
                             f"{s.read_timeout_s:.0f} s")  # fmt: skip

    def send(self, data: bytes) -> None:
        self.last = self.client.loop.time()  # a long upload is not a silent upstream
        if self.kept is not None:
            self.kept.append(data)
            self.kept_size += len(data)
            if self.kept_size > BUFFER_BYTES:
                self.kept = None  # too large to keep: no retry for this one
        if self.up is not None and not self.connecting and not self.up.closed:
            self.up.transport.write(data)
        else:
            self.pending.append(data)
            if sum(map(len, self.pending)) > HIGH_WATER:
                self.client.transport.pause_reading()

    def connect(self) -> None:
        self.connecting = True
        if not self.grace_until:
            self.grace_until = time.monotonic() + self.client.settings.connect_grace_s
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        client, upstream = self.client, self.client.upstream
        while not self.done:
            url = upstream.current()
            if url is None or upstream.address is None:
                client.fail(503, "no_upstream", "no model is deployed behind this URL yet")
                return
            if url != self.url:  # a switch during the grace: the request goes wholly to the new upstream
                upstream.inflight[self.url] -= 1
                upstream.inflight[url] += 1
                self.url = url
            loop = asyncio.get_running_loop()
            try:
                _, up = await asyncio.wait_for(
                    loop.create_connection(lambda u=url: UpstreamSide(client, u), *upstream.address),
                    client.settings.connect_timeout_s,
                )
            except (OSError, TimeoutError) as e:  # refused: nothing was sent, wait for the upstream
                if time.monotonic() > self.grace_until:
                    client.fail(503, "upstream_unavailable", f"upstream {url} refused connections for "
                                f"{client.settings.connect_grace_s:.0f} s: {type(e).__name__}: {e}")  # fmt: skip
                    return
                await asyncio.sleep(0.1)
                continue
            if self.done:
                up.transport.close()
                return
            client.up, self.up, self.connecting = up, up, False
            data, self.pending = b"".join(self.pending), []
            up.transport.write(data)
            client.transport.resume_reading()
            self.last = client.loop.time()
            return

    def broken(self, up: UpstreamSide, why: str) -> None:
        """The upstream connection broke or answered garbage during this exchange."""
        if self.done:
            return
        up.transport.close()
        self.client.up = None
        if up.forwarded:  # part of the answer is sent: only closing the connection tells the client
            self.client.close()
            return
        if self.kept is not None and not self.retried:
            self.retried = True
            self.pending, self.up = list(self.kept), None
            self.connect()
            return
        again = "twice" if self.retried else "and the request was too large to send again"
        self.client.fail(502, "upstream_broken", f"upstream {self.url} broke the connection {again}: {why}")


class ClientSide(asyncio.Protocol):
    """One connection from a caller: requests parsed to find their start and end, their bytes forwarded."""

    def __init__(self, upstream: Upstream, settings: Settings, connections: set[ClientSide]) -> None:
        self.upstream, self.settings, self.connections = upstream, settings, connections
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.up: UpstreamSide | None = None
        self.exchange: Exchange | None = None
        self.local: str | None = None  # a path the proxy answers itself
        self.refused = False  # the rest of the connection's bytes are ignored (an error answered, closing)
        self._length: int | None = None  # the current request's Content-Length, URL
        self._url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(HIGH_WATER)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self._chunk = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.refused = True
            self.transport.close()
            return
        if self._chunk and self.exchange is not None and not self.refused:
            self.exchange.send(self._chunk)

    # httptools callbacks (no on_message_begin: the state is reset at each request's end, one call less)
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length":
            self._length = int(value)

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        path = self._url.split(b"?", 1)[0]
        if method == b"GET" and path in (READY_PATH.encode(), STATUS_PATH.encode()):
            self.local = path.decode()
            self._chunk = b""
            return
        if (self._length or 0) > self.settings.max_body_bytes:
            self._too_large()
            return
        url = self.upstream.current(self.loop.time())
        if url is None:
            self.fail(503, "no_upstream", "no model is deployed behind this URL yet")
            return
        exchange = self.exchange = Exchange(self, method, url)
        self.upstream.inflight[url] += 1  # chosen and counted at once: drain sees it
        if self.up is not None and (self.up.closed or self.up.url != url):
            self.up.transport.close()
            self.up = None
        if self.up is None:
            exchange.connect()
        else:
            exchange.up = self.up

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.body_bytes += len(body)
            if exchange.body_bytes > self.settings.max_body_bytes:
                self._too_large()

    def on_message_complete(self) -> None:
        if self.local is not None:
            self.transport.write(self._local_answer(self.local))
        self._length, self.local, self._url = None, None, b""  # the next request's

    def _local_answer(self, path: str) -> bytes:
        up = self.upstream
        ready = is_ready(up, self.settings.probe_interval_s)
        if path == STATUS_PATH:
            inflight = {k: v for k, v in up.inflight.items() if v and k}
            status = {"upstream": up.current(), "inflight": inflight, "pid": os.getpid(), "ready": ready}
            return response(200, status, close=False)
        if ready:
            return response(200, {"status": "ready", "upstream": up.ready_url}, close=False)
        return response(503, error_body("upstream", "upstream_not_ready", up.detail), close=False)

    def _too_large(self) -> None:
        self.fail(413, "body_too_large", f"the body of {self._url.decode(errors='replace').split('?')[0]} is "
                  f"larger than {self.settings.max_body_bytes} bytes")  # fmt: skip

    # the end of an exchange
    def finished(self, up: UpstreamSide, keep: bool) -> None:
        exchange = self.exchange
        if exchange is None or exchange.up is not up:
            return
        self._end(exchange)
        if not keep:
            up.transport.close()
            self.up = None
        if not self.parser.should_keep_alive():
            self.close()

    def fail(self, status: int, type_: str, msg: str) -> None:
        """Answer an error of the proxy's own and close the connection (the rest of its request is unread)."""
        self.refused = True
        if self.exchange is not None:
            if self.exchange.up is not None:
                self.exchange.up.transport.close()
            self._end(self.exchange)
        self.up = None
        self.transport.write(response(status, error_body("upstream" if status != 413 else "body", type_, msg),
                                      close=True))  # fmt: skip
        # the caller may still be sending the request: read and drop the rest a while, so the answer is read
        # (closing with unread bytes would reset the connection before the caller reads it)
        self.transport.write_eof()
        self.transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    def _end(self, exchange: Exchange) -> None:
        if exchange.done:
            return
        exchange.done = True
        if exchange.url is not None:
            self.upstream.inflight[exchange.url] -= 1
        if self.exchange is exchange:
            self.exchange = None

    def close(self) -> None:
        self.refused = True
        if self.exchange is not None:
            self._end(self.exchange)
        if self.up is not None:
            self.up.transport.close()
            self.up = None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.exchange is not None:
            self._end(self.exchange)
        if self.up is not None:
            self.up.transport.close()
            self.up = None

    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()


async def probe(upstream: Upstream, timeout_s: float) -> None:
    """GET the upstream's /readyz on a fresh connection; the result answers the proxy's own /readyz."""
    url = upstream.current()
    if url is None or upstream.address is None:
        ok, detail = False, "no model is deployed behind this URL yet"
    else:
        writer = None
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(*upstream.address)
                writer.write(b"GET /readyz HTTP/1.1\r\nhost: upstream\r\nconnection: close\r\n\r\n")
                status_line = await reader.readline()
            code = int(status_line.split()[1])
            ok, detail = code == 200, f"{url}{READY_PATH} answered {code}"
        except (OSError, TimeoutError, ValueError, IndexError) as e:
            ok, detail = False, f"{url}{READY_PATH} did not answer: {type(e).__name__}"
        finally:
            if writer is not None:
                writer.close()
    upstream.ready, upstream.ready_url, upstream.detail = ok, url, detail
    upstream.checked_at = time.monotonic()


async def serve(sock: socket.socket, state_file: Path, settings: Settings) -> None:
    upstream = Upstream(state_file)
    upstream.current()
    timeout_s = max(0.5, settings.probe_interval_s * 2)
    await probe(upstream, timeout_s)  # a restarted proxy knows the upstream's state before its first request
    connections: set[ClientSide] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientSide(upstream, settings, connections), sock=sock, backlog=2048)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), settings.probe_interval_s)
        except TimeoutError:
            await probe(upstream, timeout_s)
            silent_since = loop.time() - settings.read_timeout_s  # one sweep, not a timer per request
            for c in list(connections):
                if c.exchange is not None and c.exchange.last < silent_since:
                    c.exchange.timed_out()
    server.close()  # no new connection; the requests in flight finish (bounded), then the rest are closed
    deadline = time.monotonic() + 10
    while any(c.exchange is not None for c in connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for c in list(connections):
        c.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, help="an inherited listening socket (the supervisor's)")
    parser.add_argument("--host", default="127.0.0.1", help="where to listen when no --fd is given")
    parser.add_argument("--port", type=int, help="where to listen when no --fd is given")
    parser.add_argument("--state", type=Path, required=True, help="JSON file naming the upstream")
    parser.add_argument("--max-body-bytes", type=int, required=True)
    parser.add_argument("--connect-timeout-s", type=float, default=2.0)
    parser.add_argument("--read-timeout-s", type=float, default=120.0)
    parser.add_argument("--connect-grace-s", type=float, default=10.0)
    parser.add_argument("--probe-interval-s", type=float, default=0.25)
    args = parser.parse_args(argv)
    settings = Settings(args.max_body_bytes, args.connect_timeout_s, args.read_timeout_s, args.connect_grace_s,
                        args.probe_interval_s)  # fmt: skip
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.create_server((args.host, args.port), backlog=2048)
    sock.setblocking(False)
    uvloop.run(serve(sock, args.state, settings))


if __name__ == "__main__":
    main()
