"""LocalBentoDeployer: serves a Bento with ``bentoml serve`` behind a stable loopback URL, blue/green.

A redeploy starts the new Bento on a free side port, validates it (it loads, ``/readyz`` answers, and its
predictions for a fixed sample equal the offline predictions of the model), then switches the loopback proxy
(``resources.loopback_proxy``) to it, waits until no request to the old server is in flight, and stops the old
server by PID. If validation fails the new server is stopped and the old one keeps serving; the error says why.
State (PIDs, ports, current and previous Bento) lives in ``<ML_ASSETS_HOME>/deployments/<name>.json`` so another
process (the CLI) can find the servers and stop them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from resources.loopback_proxy import STATUS_PATH

PASSED_ENV = ("ML_ASSETS_DATASET_SPEC", "ML_ASSETS_SERVE_WORKERS", "ML_ASSETS_BATCH_MAX_ROWS",
              "ML_ASSETS_BATCH_MAX_LATENCY_MS", "PATH", "HOME", "LANG", "TMPDIR")  # fmt: skip


class DeploymentError(RuntimeError):
    """A Bento that did not pass validation (or could not start); the previous deployment keeps serving."""


class BentoDeployer(ConfigurableResource):
    """What the ``deployment`` asset needs from a deployer, locally or in a cluster."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    def deploy(
        self,
        bento_tag: str,
        model_tag: str,
        records: Sequence[dict[str, Any]],
        expected: Sequence[float],
        log: Any = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def healthy(self) -> tuple[bool, str]:
        """Whether the stable URL answers /readyz with 200, and a line that says what was seen."""
        try:
            r = httpx.get(self.url + "/readyz", timeout=5)
        except httpx.HTTPError as e:
            return False, f"{self.url}/readyz unreachable: {e!r}"
        return r.status_code == 200, f"{self.url}/readyz -> {r.status_code}"


class LocalBentoDeployer(BentoDeployer):
    """Blue/green ``bentoml serve`` deployments on loopback, behind a stable URL on ``port``."""

    home: str = Field(description="ML_ASSETS_HOME: state goes to <home>/deployments, predictions to its log")
    bentoml_home: str = Field(description="BENTOML_HOME holding the Bentos and models")
    port: int = Field(3000, description="stable port of the loopback URL applications call")
    host: str = "127.0.0.1"
    name: str = Field("local", description="deployment name: one state file and one stable URL per name")
    workers: int = 1
    startup_timeout_s: float = 180.0
    drain_timeout_s: float = 30.0
    tolerance: float = Field(1e-5, description="max |online - offline| probability accepted by validation")

    # ---- public API --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return Path(self.home) / "deployments" / f"{self.name}.json"

    def state(self) -> dict[str, Any]:
        """The recorded state: url, proxy, current, previous, candidate (each with pid/port/bento_tag...)."""
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"url": self.url, "proxy": None, "current": None, "previous": None, "candidate": None}

    def deploy(
        self,
        bento_tag: str,
        model_tag: str,
        records: Sequence[dict[str, Any]],
        expected: Sequence[float],
        log: Any = None,
    ) -> dict[str, Any]:
        """Serve ``bento_tag`` on the stable URL if it validates; returns the new state.

        ``records`` (feature dicts) and ``expected`` (their offline probabilities) are the fixed sample the new
        server must reproduce within ``tolerance`` before it takes traffic. Raises DeploymentError otherwise.
        """
        say = log.info if log is not None else lambda *_: None
        with self._locked():
            state = self.state()
            current = state.get("current")
            if (
                current
                and current["bento_tag"] == bento_tag
                and _alive(current["pid"])
                and self._ready(current["port"])
            ):
                say(f"{bento_tag} already serves {self.url} (pid {current['pid']}); nothing to do")
                self._ensure_proxy(state, current["port"])
                return state
            proxy = self._ensure_proxy(state, current["port"] if current and _alive(current["pid"]) else None)
            state["proxy"] = proxy
            candidate = self._start(bento_tag, model_tag)
            state["candidate"] = candidate
            self._save(state)  # a crash from here on leaves the candidate's PID findable
            say(f"started {bento_tag} on side port {candidate['port']} (pid {candidate['pid']})")
            try:
                timings = self._validate(candidate, model_tag, records, expected)
            except DeploymentError:
                _stop_pid(candidate["pid"])
                state["candidate"] = None
                self._save(state)
                raise
            self._switch(candidate["port"])
            say(f"switched {self.url} to {bento_tag} (port {candidate['port']})")
            if current:
                self._drain(current["port"])
                _stop_pid(current["pid"])
                say(f"stopped previous {current['bento_tag']} (pid {current['pid']})")
                state["previous"] = {**current, "pid": None, "stopped_at": _now()}
            state["current"] = {**candidate, "validated": timings, "live_since": _now()}
            state["candidate"] = None
            state["history"] = [*state.get("history", []), {"bento_tag": bento_tag, "at": _now()}][-20:]
            self._save(state)
            return state

    def rollback(self, records: Sequence[dict[str, Any]], expected: Sequence[float], log: Any = None) -> dict:
        """Redeploy the previous Bento (validated like any deploy); its Bento stays in the store for this."""
        previous = self.state().get("previous")
        if not previous:
            raise DeploymentError(f"deployment {self.name!r} has no previous Bento to roll back to")
        return self.deploy(previous["bento_tag"], previous["model_tag"], records, expected, log)

    def stop(self) -> dict[str, Any]:
        """Stop the serving Bento, any half-validated candidate and the proxy, by PID; keeps the history."""
        with self._locked():
            state = self.state()
            for key in ("candidate", "current"):
                if state.get(key) and state[key].get("pid"):
                    _stop_pid(state[key]["pid"])
                    if key == "current":
                        state["previous"] = {**state[key], "pid": None, "stopped_at": _now()}
                    state[key] = None
            if state.get("proxy"):
                _stop_pid(state["proxy"]["pid"])
                state["proxy"] = None
            self._save(state)
            return state

    # ---- steps -----------------------------------------------------------------------------------------------
    def _start(self, bento_tag: str, model_tag: str) -> dict[str, Any]:
        port = free_port(self.host)
        logs = self.state_file.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{bento_tag.replace(':', '-')}-{port}.log"
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env |= {
            "BENTOML_HOME": self.bentoml_home,
            "BENTOML_DO_NOT_TRACK": "true",
            "ML_ASSETS_HOME": self.home,
            "ML_ASSETS_MODEL_TAG": model_tag,
            "ML_ASSETS_SERVE_WORKERS": str(self.workers),
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", self.host, "--port", str(port)]
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home
            )
        _CHILDREN[proc.pid] = proc
        return {
            "bento_tag": bento_tag,
            "model_tag": model_tag,
            "pid": proc.pid,
            "port": port,
            "log": str(log_path),
            "started_at": _now(),
        }

    def _validate(
        self, cand: dict[str, Any], model_tag: str, records: Sequence[dict[str, Any]], expected: Sequence[float]
    ) -> dict[str, float]:
        """Loads (ready within the timeout), answers, and reproduces the offline predictions."""
        base = f"http://{self.host}:{cand['port']}"
        t0 = time.monotonic()
        deadline = t0 + self.startup_timeout_s
        while not self._ready(cand["port"]):
            if not _alive(cand["pid"]):
                raise DeploymentError(
                    f"{cand['bento_tag']} exited before it became ready; log {cand['log']}:\n{_tail(cand['log'])}"
                )
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"{cand['bento_tag']} not ready on {base}/readyz after {self.startup_timeout_s:.0f} s; "
                    f"log {cand['log']}:\n{_tail(cand['log'])}"
                )
            time.sleep(0.25)
        ready_s = time.monotonic() - t0
        if len(records) != len(expected) or not records:
            raise DeploymentError(f"validation needs a non-empty sample, got {len(records)} records")
        try:
            r = httpx.post(base + "/predict_batch", json={"records": list(records)}, timeout=60)
            one = httpx.post(base + "/predict", json={"record": records[0]}, timeout=60)
        except httpx.HTTPError as e:
            raise DeploymentError(f"{cand['bento_tag']} did not answer predictions on {base}: {e!r}") from e
        for resp in (r, one):
            if resp.status_code != 200:
                raise DeploymentError(
                    f"{cand['bento_tag']} answered {resp.request.url.path} with {resp.status_code}: {resp.text[:500]}"
                )
        got = r.json()
        tags = {p["model_tag"] for p in got} | {one.json()["model_tag"]}
        if tags != {model_tag}:
            raise DeploymentError(f"{cand['bento_tag']} serves model {sorted(tags)}, expected {model_tag}")
        diffs = [abs(p["probability"] - e) for p, e in zip(got, expected, strict=True)]
        diffs.append(abs(one.json()["probability"] - expected[0]))
        worst = max(diffs)
        if worst > self.tolerance:
            i = diffs.index(worst)
            raise DeploymentError(
                f"train/serve skew: {cand['bento_tag']} predicts differently from the offline model "
                f"{model_tag}: max |online - offline| = {worst:.3g} > {self.tolerance:g} "
                f"({sum(d > self.tolerance for d in diffs)} of {len(diffs)} predictions; worst at sample {i})"
            )
        return {"ready_s": round(ready_s, 2), "max_abs_diff": worst, "sample": len(records)}

    def _ensure_proxy(self, state: dict[str, Any], upstream_port: int | None) -> dict[str, Any]:
        proxy = state.get("proxy")
        if proxy and _alive(proxy["pid"]) and self._proxy_status() is not None:
            return proxy
        if upstream_port is not None:
            self._write_upstream(upstream_port)
        if _port_in_use(self.host, self.port):
            raise DeploymentError(
                f"port {self.port} on {self.host} is taken by another process; choose another port for the "
                f"deployer or stop that process (state {self.state_file})"
            )
        logs = self.state_file.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"proxy-{self.port}.log").open("ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "resources.loopback_proxy",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--state",
                    str(self._upstream_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(Path(__file__).resolve().parents[1]),
            )
        _CHILDREN[proc.pid] = proc
        deadline = time.monotonic() + 30
        while self._proxy_status() is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_pid(proc.pid)
                raise DeploymentError(f"the loopback proxy did not start on {self.url}; see {logs}")
            time.sleep(0.1)
        proxy = {"pid": proc.pid, "port": self.port, "started_at": _now()}
        state["proxy"] = proxy
        self._save(state)
        return proxy

    def _switch(self, port: int) -> None:
        self._write_upstream(port)
        want = f"http://{self.host}:{port}"
        deadline = time.monotonic() + 10
        while (self._proxy_status() or {}).get("upstream") != want:
            if time.monotonic() > deadline:
                raise DeploymentError(f"the proxy on {self.url} did not switch to {want}")
            time.sleep(0.05)

    def _drain(self, old_port: int) -> None:
        old = f"http://{self.host}:{old_port}"
        deadline = time.monotonic() + self.drain_timeout_s
        while ((self._proxy_status() or {}).get("inflight") or {}).get(old, 0) > 0:
            if time.monotonic() > deadline:
                break  # a stuck request must not keep the old server forever; it gets the stop signal
            time.sleep(0.05)

    # ---- helpers ---------------------------------------------------------------------------------------------
    @property
    def _upstream_file(self) -> Path:
        return self.state_file.parent / f"{self.name}.upstream.json"

    def _write_upstream(self, port: int) -> None:
        self._upstream_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._upstream_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"upstream": f"http://{self.host}:{port}"}))
        os.replace(tmp, self._upstream_file)

    def _proxy_status(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(self.url + STATUS_PATH, timeout=2)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def _ready(self, port: int) -> bool:
        try:
            return httpx.get(f"http://{self.host}:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _save(self, state: dict[str, Any]) -> None:
        state["url"] = self.url
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with (self.state_file.parent / f"{self.name}.lock").open("w") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # processes this process started: reaped on stop


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pid(pid: int | None, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group ``pid`` leads (server + its workers), SIGKILL it if it outlives the timeout."""
    if not pid:
        return
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            break
    _CHILDREN.pop(pid, None)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # workers that outlived their arbiter


def stop_pid(pid: int | None, timeout_s: float = 20.0) -> None:
    """Public form of the PID stop used by tests and the CLI for processes they started themselves."""
    _stop_pid(pid, timeout_s)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) == 0


def _tail(path: str, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
