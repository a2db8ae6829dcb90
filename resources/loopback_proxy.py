"""A tiny HTTP reverse proxy that gives the served model a stable loopback URL across blue/green redeploys.

Run as its own process by the deployer: ``python -m resources.loopback_proxy --port 3000 --state FILE``.
The upstream is read from a JSON file (``{"upstream": "http://127.0.0.1:PORT"}``) that the deployer replaces
atomically (``os.replace``); the proxy picks it up on the next request (one ``stat`` per request), so every
request goes wholly to the old or wholly to the new server. ``GET /__proxy__/status`` reports the upstream in
use and the requests in flight per upstream, which the deployer waits on to drain the old server before
stopping it. Requests are forwarded per request (not per TCP connection), so keep-alive clients never stick
to a server that is about to stop.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

STATUS_PATH = "/__proxy__/status"
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


class Upstream:
    """The current upstream URL, reloaded from the state file when it changes."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._mtime: int | None = None
        self.url: str | None = None
        self.inflight: Counter[str] = Counter()

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


def build_app(state_file: Path) -> web.Application:
    upstream = Upstream(state_file)
    app = web.Application(client_max_size=256 * 1024**2)

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def status(_: web.Request) -> web.Response:
        url = upstream.current()
        inflight = {k: v for k, v in upstream.inflight.items() if v}
        return web.json_response({"upstream": url, "inflight": inflight, "pid": os.getpid()})

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in range(2):
            url = upstream.current()  # chosen and counted with no await in between: drain sees it
            if url is None:
                return web.json_response({"error": "no model is deployed behind this URL yet"}, status=503)
            upstream.inflight[url] += 1
            try:
                async with app["session"].request(
                    request.method, url + request.path_qs, headers=headers, data=body, allow_redirects=False
                ) as resp:
                    payload = await resp.read()
                    out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
                    return web.Response(body=payload, status=resp.status, headers=out_headers)
            except aiohttp.ClientConnectionError as e:
                if attempt == 1:
                    return web.json_response({"error": f"upstream {url} unreachable: {e}"}, status=502)
            finally:
                upstream.inflight[url] -= 1
        raise AssertionError("unreachable")

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get(STATUS_PATH, status)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True, help="JSON file naming the upstream")
    args = parser.parse_args(argv)
    web.run_app(build_app(args.state), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
