"""Benchmark: the Bento under ``bentoml serve`` against a minimal Starlette/uvicorn server, same model, same run.

A logistic baseline is fitted on real UCI Adult rows, saved in a fresh BentoML store, built into a Bento and
served; the reference server loads the same model in-process and answers the same JSON. A closed-loop aiohttp
client drives ``predict`` (one record) and ``predict_batch`` (``--batch-rows`` records) at each concurrency for
``--seconds``; every response must be a 200. Prints requests/s, rows/s, p50, p99 and errors per row.

    python -m benchmarks.serving [--concurrency 1 8 32] [--seconds 5] [--batch-rows 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = (
    "targets (2 cores): 0 errors and p99 < 100 ms at c=32; throughput >= reference; predict_batch >= 20,000 rows/s"
)


# ---- the reference server -----------------------------------------------------------------------------------
def reference_app(model_tag: str, bentoml_home: str):
    """Plain Starlette: parse JSON, one typed frame, predict_proba, answer. No validation, log or batching."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ml_assets.dataset import load_default_spec
    from ml_assets.serving.schema import records_frame
    from resources.model_store import ModelStore

    spec = load_default_spec()
    model = ModelStore(home=bentoml_home).load(model_tag)

    def score(records: list[dict]) -> list[dict]:
        proba = model.predict_proba(records_frame(spec, records))
        return [
            {
                "probability": float(p),
                "label": int(p >= model.threshold),
                "threshold": model.threshold,
                "model_tag": model_tag,
            }
            for p in proba
        ]

    async def predict(request: Request) -> JSONResponse:
        return JSONResponse(score([(await request.json())["record"]])[0])

    async def predict_batch(request: Request) -> JSONResponse:
        return JSONResponse(score((await request.json())["records"]))

    async def readyz(_: Request) -> JSONResponse:
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict_batch", predict_batch, methods=["POST"]),
            Route("/readyz", readyz),
        ]
    )


def run_reference(port: int, model_tag: str, bentoml_home: str) -> None:
    import uvicorn

    uvicorn.run(reference_app(model_tag, bentoml_home), host="127.0.0.1", port=port, log_level="warning")


# ---- the load generator -----------------------------------------------------------------------------------
async def drive(url: str, path: str, bodies: list[bytes], rows: int, concurrency: int, seconds: float) -> dict:
    import aiohttp

    lat: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                async with session.post(
                    url + path, data=bodies[i % len(bodies)], headers={"content-type": "application/json"}
                ) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            lat.append(time.perf_counter() - t)
            errors += not ok
            i += concurrency

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, session) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {
        "requests": len(lat),
        "rps": len(lat) / wall,
        "rows_s": len(lat) * rows / wall,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": errors,
    }


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def main(argv: list[str]) -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-rows", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1, help="bentoml serve worker processes")
    parser.add_argument("--reference-server", nargs=3, metavar=("PORT", "MODEL_TAG", "BENTOML_HOME"))
    args = parser.parse_args(argv)
    if args.reference_server:
        port, tag, home = args.reference_server
        run_reference(int(port), tag, home)
        return

    from ml_assets.dataset import load_default_spec
    from ml_assets.serving.assets import validation_sample
    from ml_assets.serving.build import build_bento
    from resources.bento_deployer import free_port, stop_pid
    from tests.serving_support import adult_training_set, fit_logistic, save_model

    spec = load_default_spec()
    home = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    bentoml_home = home / "bentoml"
    os.environ.update(BENTOML_DO_NOT_TRACK="true", ML_ASSETS_HOME=str(home))
    ts = adult_training_set(spec, rows=5000)
    tag = save_model(fit_logistic(spec, ts), bentoml_home)
    bento = build_bento(tag, bentoml_home)
    records, _ = validation_sample(spec, ts, n=1000)
    one = [json.dumps({"record": r}).encode() for r in records]
    batches = [
        json.dumps({"records": [records[(i + j) % len(records)] for j in range(args.batch_rows)]}).encode()
        for i in range(0, len(records), 97)
    ]
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "ML_ASSETS_MODEL_TAG": tag,
           "ML_ASSETS_SERVE_WORKERS": str(args.workers)}  # fmt: skip
    bport, rport = free_port(), free_port()
    servers = {
        "bento": subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", bento.tag, "--host", "127.0.0.1", "--port", str(bport)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ),
        "reference": subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serving", "--reference-server", str(rport), tag, str(bentoml_home)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[1]),
        ),
    }  # fmt: skip
    urls = {"bento": f"http://127.0.0.1:{bport}", "reference": f"http://127.0.0.1:{rport}"}
    try:
        for name, proc in servers.items():
            wait_ready(urls[name], proc)
        rows = []
        for endpoint, bodies, n in (("/predict", one, 1), ("/predict_batch", batches, args.batch_rows)):
            for c in args.concurrency:
                for name in ("reference", "bento"):
                    asyncio.run(drive(urls[name], endpoint, bodies, n, c, 1.0))  # warm connections + batcher
                    res = asyncio.run(drive(urls[name], endpoint, bodies, n, c, args.seconds))
                    rows.append((name, endpoint, c, res))
        print(f"Bento {bento.tag} (model {tag}, {args.workers} worker(s)) vs reference Starlette/uvicorn; "
              f"{os.cpu_count()} CPUs; {args.seconds:.0f} s per row; batch rows {args.batch_rows}")  # fmt: skip
        print("| server | endpoint | concurrency | requests/s | rows/s | p50 ms | p99 ms | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, endpoint, c, r in rows:
            print(f"| {name} | {endpoint} | {c} | {r['rps']:.0f} | {r['rows_s']:.0f} | {r['p50']:.1f} | "
                  f"{r['p99']:.1f} | {r['errors']} |")  # fmt: skip
        print(TARGETS)
    finally:
        for proc in servers.values():
            stop_pid(proc.pid)


if __name__ == "__main__":
    main(sys.argv[1:])
