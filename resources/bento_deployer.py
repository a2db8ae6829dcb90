"""LocalBentoDeployer: serves a Bento with ``bentoml serve`` behind a stable loopback URL, blue/green, supervised.

The deployer owns the whole process tree of a deployment through one supervisor process
(``resources.serving_supervisor``), which holds the stable port, runs the proxy and the servers, and restarts
what dies. The deployer tells it what to run by replacing ``desired.json`` and reads what runs from
``actual.json`` (both in ``<ML_ASSETS_HOME>/deployments/<name>/``).

A redeploy starts the new Bento in a new slot on a free side port, validates it there (it loads, ``/readyz``
answers, and its predictions for a fixed sample equal the offline predictions of the model: ``served_skew``),
and only then makes it the served slot: the supervisor switches the proxy, drains the old server and stops its
tree. If validation fails the new slot is removed and the old one keeps serving; the error says why.
``stop`` (and ``ml-assets stop``) ends the supervisor and then every process any tree of the deployment ever
recorded, and checks that none is left. The record of the deployment (current, previous, history) is kept in
``<ML_ASSETS_HOME>/deployments/<name>.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from resources.atomic_files import write_atomic
from resources.deployment_record import DeploymentRecord, Rollout, ServedBento, Validation
from resources.loopback_proxy import STATUS_PATH
from resources.process_tree import ProcessRecord, stop
from resources.serving_supervisor import ACTUAL, CONFIG, DESIRED

PASSED_ENV = ("ML_ASSETS_SERVE_WORKERS", "ML_ASSETS_BATCH_MAX_ROWS",
              "ML_ASSETS_BATCH_INLINE_ROWS", "ML_ASSETS_SERVE_TRACING", "PATH", "HOME", "LANG", "TMPDIR")  # fmt: skip
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SKEW_TOLERANCE = 1e-5  # max |online - offline| probability: deployments are validated and checked against it
SKEW_REQUEST_ID = "skew-check"  # X-Request-ID of validation traffic (its prediction-log lines are told apart)


class DeploymentError(RuntimeError):
    """A Bento that did not pass validation (or could not start); the previous deployment keeps serving."""


@dataclass(frozen=True)
class SkewReport:
    """Served predictions for a fixed sample against the model's offline ones."""

    rows: int
    max_abs_diff: float
    rows_over_tolerance: int
    worst_row: int
    served_model_tags: list[str]

    def passed(self, model_tag: str) -> bool:
        return self.max_abs_diff <= SKEW_TOLERANCE and self.served_model_tags == [model_tag]


def served_skew(
    base_url: str, records: Sequence[dict[str, Any]], expected: Sequence[float], request_id: str = SKEW_REQUEST_ID
) -> SkewReport:
    """Score ``records`` through ``base_url``'s /predict_batch and /predict and compare with ``expected``.

    The one train/serve skew comparison: the deployer validates a new Bento with it before it takes traffic,
    and the ``train_serve_skew`` and ``online_offline_equality`` checks run it against the stable URL. The
    requests carry ``request_id`` as X-Request-ID, so their prediction-log lines are told apart from real
    traffic. Raises DeploymentError if the server does not answer every prediction.
    """
    if len(records) != len(expected) or not records:
        raise DeploymentError(f"skew validation needs a non-empty sample, got {len(records)} records")
    headers = {"X-Request-ID": request_id}
    try:
        batch = httpx.post(base_url + "/predict_batch", json={"records": list(records)}, headers=headers, timeout=60)
        one = httpx.post(base_url + "/predict", json={"record": records[0]}, headers=headers, timeout=60)
    except httpx.HTTPError as e:
        raise DeploymentError(f"{base_url} did not answer predictions: {e!r}") from e
    for resp in (batch, one):
        if resp.status_code != 200:
            raise DeploymentError(
                f"{base_url} answered {resp.request.url.path} with {resp.status_code}: {resp.text[:500]}"
            )
    got = [*batch.json(), one.json()]
    diffs = [abs(p["probability"] - e) for p, e in zip(got, [*expected, expected[0]], strict=True)]
    worst = max(diffs)
    return SkewReport(
        rows=len(records),
        max_abs_diff=worst,
        rows_over_tolerance=sum(d > SKEW_TOLERANCE for d in diffs),
        worst_row=diffs.index(worst) % len(records),
        served_model_tags=sorted({p["model_tag"] for p in got}),
    )


class BentoDeployer(ConfigurableResource, ABC):
    """What the ``deployment`` asset needs from a deployer, locally or in a cluster: both return a
    ``DeploymentRecord``."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The stable URL applications call."""

    @abstractmethod
    def deploy(
        self,
        bento_tag: str,
        model_tag: str,
        records: Sequence[dict[str, Any]],
        expected: Sequence[float],
        log: Any = None,
    ) -> DeploymentRecord:
        """Serve ``bento_tag`` on ``url`` once it reproduces ``expected`` for ``records``; raise DeploymentError
        (the previous deployment keeps serving) otherwise."""


class LocalBentoDeployer(BentoDeployer):
    """Blue/green ``bentoml serve`` deployments on loopback, behind a stable URL on ``port``, supervised."""

    home: str = Field(description="ML_ASSETS_HOME: state goes to <home>/deployments, predictions to its log")
    bentoml_home: str = Field(description="BENTOML_HOME holding the Bentos and models")
    port: int = Field(3000, description="stable port of the loopback URL applications call")
    host: str = "127.0.0.1"
    name: str = Field("local", description="deployment name: one supervisor, state folder and stable URL per name")
    workers: int = 1
    startup_timeout_s: float = 180.0
    unready_restart_s: float = Field(60.0, description="a server that stopped answering /readyz this long is replaced")
    drain_timeout_s: float = 30.0
    stop_timeout_s: float = Field(10.0, description="SIGTERM grace of each process before SIGKILL")
    max_body_bytes: int = Field(512 * 1024**2, description="larger request bodies get a 413 from the proxy")
    connect_timeout_s: float = 2.0
    read_timeout_s: float = Field(120.0, description="an upstream silent this long gets the request a 503")
    connect_grace_s: float = Field(10.0, description="how long a request waits for an upstream that refuses")

    # ---- public API --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def folder(self) -> Path:
        return Path(self.home) / "deployments" / self.name

    @property
    def state_file(self) -> Path:
        return Path(self.home) / "deployments" / f"{self.name}.json"

    def state(self) -> DeploymentRecord:
        """The record: url, current, previous (each with bento_tag, model_tag, port, validation...), history."""
        try:
            return DeploymentRecord.model_validate_json(self.state_file.read_text())
        except FileNotFoundError:
            return DeploymentRecord(url=self.url)

    def actual(self) -> dict[str, Any]:
        """What the supervisor last published: its pid, the proxy, the servers with their process trees."""
        try:
            return json.loads((self.folder / ACTUAL).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def deploy(
        self,
        bento_tag: str,
        model_tag: str,
        records: Sequence[dict[str, Any]],
        expected: Sequence[float],
        log: Any = None,
    ) -> DeploymentRecord:
        """Serve ``bento_tag`` on the stable URL if it validates; returns the new record.

        ``records`` (feature dicts) and ``expected`` (their offline probabilities) are the fixed sample the new
        server must reproduce within SKEW_TOLERANCE before it takes traffic. Raises DeploymentError otherwise.
        """
        say = log.info if log is not None else lambda *_: None
        with self._locked():
            self._ensure_supervisor(say)
            desired = self._desired()
            state = self.state()
            serving = desired.get("serve")
            now = self.actual().get("servers", {}).get(serving or "", {})
            if serving and now.get("bento_tag") == bento_tag and now.get("ready"):
                say(f"{bento_tag} already serves {self.url} (port {now['port']}); nothing to do")
                return state
            slot = f"s{int(time.time() * 1000)}"
            desired["servers"][slot] = {"bento_tag": bento_tag, "model_tag": model_tag}
            self._write(DESIRED, desired)
            try:
                server = self._wait_ready(slot, bento_tag)
                say(f"started {bento_tag} on side port {server['port']} (pid {server['pid']})")
                report = served_skew(f"http://{self.host}:{server['port']}", records, expected)
                if not report.passed(model_tag):
                    raise DeploymentError(skew_message(bento_tag, model_tag, report))
            except DeploymentError:
                desired["servers"].pop(slot)
                self._write(DESIRED, desired)
                self._wait(lambda a: slot not in a.get("servers", {}), f"removal of {slot}")
                raise
            desired = {"servers": {slot: desired["servers"][slot]}, "serve": slot}
            self._write(DESIRED, desired)
            url = f"http://{self.host}:{server['port']}"
            self._wait(lambda a: a.get("upstream") == url and list(a.get("servers", {})) == [slot], "the switch")
            self._wait_proxy_ready(url)
            say(f"switched {self.url} to {bento_tag} (port {server['port']})")
            current = state.current
            if current:
                say(f"stopped previous {current.bento_tag}")
            state = state.model_copy(
                update={
                    "previous": current.model_copy(update={"stopped_at": _now()}) if current else state.previous,
                    "current": ServedBento(
                        bento_tag=bento_tag,
                        model_tag=model_tag,
                        slot=slot,
                        port=server["port"],
                        pid=server["pid"],
                        log=server["log"],
                        validated=Validation(max_abs_diff=report.max_abs_diff, sample=report.rows),
                        live_since=_now(),
                    ),
                    "history": [*state.history, Rollout(bento_tag=bento_tag, at=_now())][-20:],
                }
            )
            self._save(state)
            return state

    def stop(self) -> DeploymentRecord:
        """Stop the supervisor and every process of the deployment (also after a kill -9 of the supervisor);
        raises if one survives. Keeps the history; the served Bento becomes ``previous``."""
        with self._locked():
            actual = self.actual()
            supervisor = _records([actual.get("supervisor")])
            stop(supervisor, timeout_s=self.drain_timeout_s + 4 * self.stop_timeout_s)  # it stops its trees
            survivors = stop(_all_records(actual), timeout_s=self.stop_timeout_s)  # left by a killed supervisor
            self._reap()
            if survivors:
                raise DeploymentError(f"processes of deployment {self.name!r} survived SIGKILL: {survivors}")
            self._write(DESIRED, {"servers": {}, "serve": None})
            with contextlib.suppress(FileNotFoundError):
                (self.folder / ACTUAL).unlink()
            state = self.state()
            if state.current:
                state = state.model_copy(
                    update={"previous": state.current.model_copy(update={"stopped_at": _now()}), "current": None}
                )
            self._save(state)
            return state

    # ---- the supervisor ----------------------------------------------------------------------------------
    def _ensure_supervisor(self, say: Any) -> None:
        actual = self.actual()
        sup = _records([actual.get("supervisor")])
        if sup and sup[0].alive() and actual.get("listening"):
            if actual["listening"] != f"{self.host}:{self.port}":
                raise DeploymentError(
                    f"deployment {self.name!r} is served on {actual['listening']}, not {self.host}:{self.port}: "
                    "stop it first (ml-assets stop) or use another name"
                )
            return
        leftovers = stop(_all_records(actual), timeout_s=self.stop_timeout_s)  # a killed supervisor's trees
        if leftovers:
            raise DeploymentError(f"processes of a dead supervisor of {self.name!r} survived SIGKILL: {leftovers}")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in (ACTUAL, DESIRED):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        self._write(CONFIG, self._config())
        self._write(DESIRED, {"servers": {}, "serve": None})
        with (self.folder / "supervisor.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "resources.serving_supervisor", "--dir", str(self.folder)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=PROJECT_ROOT,
            )
        _CHILDREN[proc.pid] = proc
        deadline = time.monotonic() + 30
        while True:
            actual = self.actual()
            if actual.get("error"):
                raise DeploymentError(f"the supervisor of {self.url} failed: {actual['error']}")
            if actual.get("listening") and (actual.get("proxy") or {}).get("pid"):
                say(f"supervisor of {self.url} started (pid {proc.pid})")
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DeploymentError(
                    f"the supervisor of {self.url} did not start; log {self.folder / 'supervisor.log'}:\n"
                    f"{_tail(self.folder / 'supervisor.log')}"
                )
            time.sleep(0.1)

    def _config(self) -> dict[str, Any]:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env |= {
            "BENTOML_HOME": self.bentoml_home,
            "BENTOML_DO_NOT_TRACK": "true",
            "ML_ASSETS_HOME": self.home,
            "ML_ASSETS_SERVE_WORKERS": str(self.workers),
            "PYTHONUNBUFFERED": "1",
        }
        return {
            "host": self.host,
            "port": self.port,
            "home": self.home,
            "project_root": str(PROJECT_ROOT),
            "server_env": env,
            "startup_timeout_s": self.startup_timeout_s,
            "unready_restart_s": self.unready_restart_s,
            "drain_timeout_s": self.drain_timeout_s,
            "stop_timeout_s": self.stop_timeout_s,
            "max_body_bytes": self.max_body_bytes,
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "connect_grace_s": self.connect_grace_s,
        }

    def _wait_ready(self, slot: str, bento_tag: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.startup_timeout_s + 5
        while True:
            actual = self.actual()
            server = actual.get("servers", {}).get(slot)
            if server and server.get("ready"):
                return server
            if server and server.get("failures"):
                raise DeploymentError(
                    f"{bento_tag} did not start: {server['error']}; log {server['log']}:\n{_tail(server['log'])}"
                )
            if not _records([actual.get("supervisor")]):
                raise DeploymentError(f"the supervisor of {self.url} died while starting {bento_tag}")
            if time.monotonic() > deadline:
                log = server.get("log") if server else None
                raise DeploymentError(f"{bento_tag} not ready after {self.startup_timeout_s:.0f} s; log {log}")
            time.sleep(0.2)

    def _wait(self, done: Any, what: str, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.drain_timeout_s + 4 * self.stop_timeout_s)
        while not done(self.actual()):
            if time.monotonic() > deadline:
                raise DeploymentError(f"the supervisor of {self.url} did not complete {what}; see {self.folder}")
            time.sleep(0.1)

    def _wait_proxy_ready(self, upstream: str) -> None:
        """Until the proxy's own probe has seen the new upstream ready, so /readyz on the stable URL says 200."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                status = httpx.get(self.url + STATUS_PATH, timeout=2).json()
                if status.get("upstream") == upstream and status.get("ready"):
                    return
            time.sleep(0.05)
        raise DeploymentError(f"the proxy on {self.url} did not see {upstream} ready within 10 s")

    def _desired(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / DESIRED).read_text())
        except FileNotFoundError:
            return {"servers": {}, "serve": None}

    def _reap(self) -> None:
        for pid, proc in list(_CHILDREN.items()):
            if proc.poll() is not None:
                _CHILDREN.pop(pid)

    # ---- files ---------------------------------------------------------------------------------------------
    def _write(self, name: str, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / name, json.dumps(state, indent=1))

    def _save(self, state: DeploymentRecord) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_file, state.model_copy(update={"url": self.url}).model_dump_json(indent=1))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with (self.state_file.parent / f"{self.name}.lock").open("w") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # supervisors this process started: reaped after stop


def _records(values: Sequence[Any]) -> list[ProcessRecord]:
    return [ProcessRecord.from_json(v) for v in values if v]


def _all_records(actual: dict[str, Any]) -> list[ProcessRecord]:
    """Every process the supervisor last published: proxy and server trees (leftovers included)."""
    trees = [(actual.get("proxy") or {}).get("tree", [])]
    trees += [s.get("tree", []) for s in (actual.get("servers") or {}).values()]
    return _records([r for t in trees for r in t])


def skew_message(bento_tag: str, model_tag: str, report: SkewReport) -> str:
    """Why a served sample does not reproduce the offline predictions of ``model_tag``."""
    if report.served_model_tags != [model_tag]:
        return f"{bento_tag} serves model {report.served_model_tags}, expected {model_tag}"
    return (
        f"train/serve skew: {bento_tag} predicts differently from the offline model {model_tag}: "
        f"max |online - offline| = {report.max_abs_diff:.3g} > {SKEW_TOLERANCE:g} "
        f"({report.rows_over_tolerance} of {report.rows + 1} predictions; worst at sample {report.worst_row})"
    )


def _tail(path: str | Path | None, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:]) if path else "(no log)"
    except OSError:
        return "(no log)"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
