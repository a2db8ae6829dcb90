"""The stable loopback URL of a deployment: a small reverse proxy in front of whichever Bento serves now.

Run by the deployment's supervisor (``resources.serving_supervisor``), which owns the listening socket and
passes it on (``--fd``): when the proxy dies the socket stays open in the supervisor, connections queue in its
backlog, and the restarted proxy takes them, so a killed proxy refuses nothing. The upstream is read from a
JSON file (``{"upstream": "http://127.0.0.1:PORT"}``) that the supervisor replaces atomically; the proxy picks
it up on the next request (one ``stat`` per request), so every request goes wholly to the old or wholly to the
new server. ``GET /__proxy__/status`` reports the upstream, the requests in flight per upstream (the supervisor
drains the old server on them before stopping it) and the upstream's readiness.

Bounded and never a 500 of its own: upstream connect and read timeouts; a request body larger than
``--max-body-bytes`` gets a 413 before it is read; an upstream that refuses connections is retried until
``--connect-grace-s`` (nothing was sent), one whose connection breaks mid-request is retried once (the served
API has no side effect but its prediction log, where such a prediction may then appear twice under two ids;
it is answered once), and anything else the upstream does wrong is a 502 (broken) or 503 (absent, not ready,
too slow), in the API's ``{"detail": [...]}`` error form. ``/readyz`` answers at once from a background probe
of the upstream's ``/readyz`` (every ``--probe-interval-s``), never by waiting on a hung upstream.

Why home-made rather than nginx, HAProxy or Envoy: the project installs with pip alone (no system package),
the supervisor switches upstreams by replacing a file and drains by reading in-flight counts per upstream,
and the whole behaviour is ~250 lines that the tests drive with ``kill -9`` under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

STATUS_PATH = "/__proxy__/status"
READY_PATH = "/readyz"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_BROKEN = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)


class Upstream:
    """The current upstream URL, reloaded from the state file when it changes, and its readiness."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._mtime: int | None = None
        self.url: str | None = None
        self.inflight: Counter[str] = Counter()
        self.ready = False
        self.ready_url: str | None = None  # the upstream the last probe was about
        self.checked_at = 0.0
        self.detail = "not probed yet"

    def current(self) -> str | None:
        try:
            mtime = self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            return self.url
        if mtime != self._mtime:
            try:
                self.url = json.loads(self.state_file.read_text())["upstream"]
                self._mtime = mtime
            except (ValueError, KeyError, OSError):
                pass  # a half-written file cannot happen with os.replace; keep the last good upstream anyway
        return self.url


def error_body(loc: str, type_: str, msg: str) -> dict[str, Any]:
    return {"detail": [{"loc": [loc], "type": type_, "msg": msg}]}


def build_app(
    state_file: Path,
    max_body_bytes: int,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 120.0,
    connect_grace_s: float = 10.0,
    probe_interval_s: float = 0.25,
) -> web.Application:
    upstream = Upstream(state_file)
    app = web.Application(client_max_size=max_body_bytes)

    async def probe(session: aiohttp.ClientSession) -> None:
        url = upstream.current()
        try:
            if url is None:
                ok, detail = False, "no model is deployed behind this URL yet"
            else:
                timeout = aiohttp.ClientTimeout(total=max(0.5, probe_interval_s * 2))
                async with session.get(url + READY_PATH, timeout=timeout) as resp:
                    await resp.read()
                    ok, detail = resp.status == 200, f"{url}{READY_PATH} answered {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as e:
            ok, detail = False, f"{url}{READY_PATH} did not answer: {type(e).__name__}"
        upstream.ready, upstream.ready_url, upstream.detail = ok, url, detail
        upstream.checked_at = time.monotonic()

    async def probe_loop(session: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(probe_interval_s)
            await probe(session)

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            auto_decompress=False,
            # keep-alive to the upstream; a pooled connection the upstream closed meanwhile is retried (below)
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s),
        )
        await probe(app["session"])  # a restarted proxy knows the upstream's state before its first request
        app["probe"] = asyncio.get_running_loop().create_task(probe_loop(app["session"]))

    async def on_cleanup(app: web.Application) -> None:
        app["probe"].cancel()
        await app["session"].close()

    async def status(_: web.Request) -> web.Response:
        url = upstream.current()
        inflight = {k: v for k, v in upstream.inflight.items() if v}
        return web.json_response(
            {"upstream": url, "inflight": inflight, "pid": os.getpid(), "ready": _ready(upstream, probe_interval_s)}
        )

    async def readyz(_: web.Request) -> web.Response:
        if _ready(upstream, probe_interval_s):
            return web.json_response({"status": "ready", "upstream": upstream.ready_url})
        return web.json_response(error_body("upstream", "upstream_not_ready", upstream.detail), status=503)

    async def forward(request: web.Request) -> web.StreamResponse:
        try:
            return await _forward(request)
        except web.HTTPRequestEntityTooLarge:
            return _too_large(request)
        except Exception as e:  # never a 500 of the proxy's own: the upstream's failure, named
            return web.json_response(error_body("upstream", "upstream_failed", f"{type(e).__name__}: {e}"), status=502)

    def _too_large(request: web.Request) -> web.Response:
        msg = f"the body of {request.path} is larger than {max_body_bytes} bytes"
        return web.json_response(error_body("body", "body_too_large", msg), status=413)

    async def _forward(request: web.Request) -> web.StreamResponse:
        if (request.content_length or 0) > max_body_bytes:
            return _too_large(request)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        deadline = time.monotonic() + connect_grace_s
        retried = False
        while True:
            url = upstream.current()  # chosen and counted with no await in between: drain sees it
            if url is None:
                return web.json_response(
                    error_body("upstream", "no_upstream", "no model is deployed behind this URL yet"), status=503
                )
            upstream.inflight[url] += 1
            try:
                async with app["session"].request(
                    request.method, url + request.path_qs, headers=headers, data=body, allow_redirects=False
                ) as resp:
                    payload = await resp.read()
                    out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
                    return web.Response(body=payload, status=resp.status, headers=out_headers)
            except aiohttp.ClientConnectorError as e:  # refused: nothing was sent, wait for the upstream
                if time.monotonic() > deadline:
                    msg = f"upstream {url} refused connections for {connect_grace_s:.0f} s: {e}"
                    return web.json_response(error_body("upstream", "upstream_unavailable", msg), status=503)
                await asyncio.sleep(0.1)
            except _BROKEN as e:  # the connection broke mid-request (a killed worker, a stale pooled connection)
                if retried:
                    msg = f"upstream {url} broke the connection twice: {type(e).__name__}: {e}"
                    return web.json_response(error_body("upstream", "upstream_broken", msg), status=502)
                retried = True
            except TimeoutError:
                msg = f"upstream {url} did not answer within {read_timeout_s:.0f} s"
                return web.json_response(error_body("upstream", "upstream_timeout", msg), status=503)
            finally:
                upstream.inflight[url] -= 1

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get(STATUS_PATH, status)
    app.router.add_get(READY_PATH, readyz)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def _ready(upstream: Upstream, probe_interval_s: float) -> bool:
    """The last probe succeeded, is recent, and was about the upstream in use now."""
    fresh = time.monotonic() - upstream.checked_at < max(1.0, 4 * probe_interval_s)
    return upstream.ready and fresh and upstream.ready_url == upstream.current()


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
    app = build_app(
        args.state,
        args.max_body_bytes,
        args.connect_timeout_s,
        args.read_timeout_s,
        args.connect_grace_s,
        args.probe_interval_s,
    )
    if args.fd is not None:
        web.run_app(app, sock=socket.socket(fileno=args.fd), access_log=None, print=None)
    else:
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
