"""The supervisor of one local deployment: it owns every process behind the stable URL and restarts what dies.

One process per deployment name, started by ``LocalBentoDeployer`` in its own session, working in
``<ML_ASSETS_HOME>/deployments/<name>/``. It marks itself child subreaper, so every process below it (the
proxy, each ``bentoml serve`` arbiter, and their workers, which run in sessions of their own) stays its
descendant even when its parent dies. It holds the stable port's listening socket and hands it to the proxy.

It reconciles, every ``TICK_S``, what the deployer wants (``desired.json``: the Bentos to run, by slot, and the
slot to serve) with what runs, and publishes what runs (``actual.json``: ports, readiness, and every process
of every tree with its start time, so ``stop`` can end them even if the supervisor itself was killed):

- the proxy: restarted at once when it dies (the socket stays open meanwhile, so nothing is refused);
- each slot's server: started on a free port; a server whose ``bentoml serve`` parent died, or that was ready
  and then stopped answering ``/readyz`` for ``unready_restart_s``, is replaced blue/green: its leftover
  processes (orphaned workers still serving) keep the traffic until the replacement is ready, then the upstream
  switches, the leftovers are drained and stopped. (A killed worker under a live parent is respawned by the
  parent's own process manager; requests wait in the socket's backlog meanwhile.) A server that never gets
  ready within ``startup_timeout_s`` is stopped and retried with backoff, its failure published;
- the upstream: the proxy is switched to the served slot once it is ready; a slot that is no longer wanted is
  stopped, whole tree, once the proxy has reported routing elsewhere and no request to it is in flight (so a
  redeploy never stops the old server while the proxy may still send to it).

On SIGTERM it stops everything it owns (trees first, then the proxy, then the socket) and exits.

Why this supervisor rather than circus (issue 21 asked; measured 2026-12-06 on the 2-core dev machine):

- BentoML 1.4 no longer depends on circus: it ships its own fork, ``kantoku`` 0.18.3, installed under the
  import name ``circus``. Installing ``circus==0.19.0`` beside it would overwrite the module ``bentoml serve``
  runs on, and using kantoku's ``circus`` would tie this project to a BentoML-internal fork.
- A circus watcher restarts a dead process in place, same command, same port. ``bentoml serve`` killed with
  ``kill -9`` under a circus arbiter (kantoku's, one watcher, ``respawn=True``): its worker (own session) kept
  serving the port, orphaned, and circus respawned ``bentoml serve`` every 4-5 s, each failing
  ``OSError: [Errno 98] Address already in use``, for as long as it was watched (10 failures in 42 s), never
  stopping the orphan. What keeps that case answered and clean is what this module adds on top of any process
  manager: a replacement on a new port, blue/green behind the proxy, while the orphan serves, then the orphan
  stopped by its recorded tree. The same blue/green switch is what a redeploy needs, so with circus this
  module would shrink only by its restart loop (~40 lines) and gain a ZMQ controller client.
- Serving without a proxy in the data path (the stable socket shared by the blue and the green workers, or
  ``SO_REUSEPORT``) was considered: a server stopped after the switch closes its idle keep-alive connections,
  and a caller whose next request is already on the way gets a reset (a failed request on every redeploy
  under load, which tests/test_deployer.py forbids); a ``SO_REUSEPORT`` listener that closes resets the
  connections still in its own accept queue; and a killed only worker leaves ``/readyz`` unanswered until its
  respawn. The proxy instead forwards bytes (``resources.loopback_proxy``), cheap enough to keep.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from resources.loopback_proxy import STATUS_PATH
from resources.process_tree import ProcessRecord, become_subreaper, free_port, reap_children, record, stop, tree

TICK_S = 0.2
PROBE_EVERY_S = 0.5  # readiness of each server
TREE_EVERY_S = 1.0  # snapshots of each process tree (a scan of /proc: not every tick on 2 cores)
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
CONFIG, DESIRED, ACTUAL, UPSTREAM = "config.json", "desired.json", "actual.json", "upstream.json"


@dataclass
class Instance:
    """One running ``bentoml serve`` of a slot."""

    port: int
    proc: subprocess.Popen[bytes]
    log: str
    started_at: float = field(default_factory=time.monotonic)
    records: list[ProcessRecord] = field(default_factory=list)  # its tree at the last tick
    ready: bool = False
    ever_ready: bool = False
    unready_since: float | None = None
    probed_at: float = 0.0
    snapped_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def parent_alive(self) -> bool:
        return self.proc.poll() is None

    def refresh(self, host: str, now: float) -> None:
        """Snapshot its tree every TREE_EVERY_S while the parent lives (afterwards its orphans are known by their
        records) and probe ``/readyz`` every PROBE_EVERY_S."""
        if not self.parent_alive():
            self.records = [r for r in self.records if r.alive()]
        elif now - self.snapped_at >= TREE_EVERY_S:
            self.records, self.snapped_at = tree(self.proc.pid), now
        if now - self.probed_at < PROBE_EVERY_S:
            return
        self.probed_at = now
        self.ready = _get(host, self.port, "/readyz", 0.5)[0] == 200
        self.ever_ready |= self.ready
        self.unready_since = None if self.ready else (self.unready_since or now)


@dataclass
class Slot:
    bento_tag: str
    model_tag: str
    instance: Instance | None = None
    retiring: list[Instance] = field(default_factory=list)  # replaced instances still serving until the switch
    failures: int = 0
    next_start: float = 0.0
    restarts: int = 0
    error: str = ""
    last_log: str = ""


class Supervisor:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config: dict[str, Any] = json.loads((folder / CONFIG).read_text())
        self.host: str = self.config["host"]
        self.port: int = self.config["port"]
        self.logs = folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.slots: dict[str, Slot] = {}
        self.wanted: set[str] = set()  # slots desired.json lists
        self.serve: str | None = None
        self.upstream_port: int | None = None  # what the upstream file names
        self.routed_port: int | None = None  # what the proxy has reported using
        self.proxy: subprocess.Popen[bytes] | None = None
        self.proxy_record: ProcessRecord | None = None  # the proxy is one process (it starts none): its whole tree
        self.proxy_restarts = 0
        self.proxy_next_start = 0.0
        self.stopping = False
        self._desired_mtime: int | None = None
        self._published = ""

    # ---- the loop ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        become_subreaper()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.sock = socket.create_server((self.host, self.port), backlog=2048, reuse_port=False)
        except OSError as e:
            self._write(
                ACTUAL, {"supervisor": _rec(os.getpid()), "error": f"cannot listen on {self.host}:{self.port}: {e}"}
            )
            return 2
        self.sock.set_inheritable(True)
        self.own_record = _rec(os.getpid())
        while not self.stopping:
            reap_children()
            self._read_desired()
            self._ensure_proxy()
            for slot_id in [s for s in self.slots if s in self.wanted]:
                self._reconcile(slot_id)
            self._route()
            self._retire_unwanted()
            self._publish()
            time.sleep(TICK_S)
        self._shutdown()
        return 0

    def _on_signal(self, *_: Any) -> None:
        self.stopping = True

    def _read_desired(self) -> None:
        path = self.folder / DESIRED
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._desired_mtime:
            return
        desired = json.loads(path.read_text())
        self._desired_mtime = mtime
        wanted = desired.get("servers", {})
        for slot_id, spec in wanted.items():
            if slot_id not in self.slots:
                self.slots[slot_id] = Slot(spec["bento_tag"], spec["model_tag"])
        self.wanted = set(wanted)
        self.serve = desired.get("serve")

    # ---- proxy -----------------------------------------------------------------------------------------------------
    def _ensure_proxy(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            return
        now = time.monotonic()
        if self.proxy is not None:  # it died: restart at once the first time, then back off
            self.proxy = None
            self.proxy_restarts += 1
            self.proxy_next_start = now + (0 if self.proxy_restarts == 1 else 1.0)
        if now < self.proxy_next_start:
            return
        c = self.config
        cmd = [sys.executable, "-m", "resources.loopback_proxy", "--fd", str(self.sock.fileno()),
               "--state", str(self.folder / UPSTREAM), "--max-body-bytes", str(c["max_body_bytes"]),
               "--connect-timeout-s", str(c["connect_timeout_s"]), "--read-timeout-s", str(c["read_timeout_s"]),
               "--connect-grace-s", str(c["connect_grace_s"])]  # fmt: skip
        with (self.logs / "proxy.log").open("ab") as out:
            self.proxy = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, pass_fds=(self.sock.fileno(),), cwd=c["project_root"]
            )
        self.proxy_record = record(self.proxy.pid)

    # ---- servers ---------------------------------------------------------------------------------------------------
    def _start(self, slot: Slot) -> Instance:
        port = free_port(self.host)
        log = self.logs / f"{slot.bento_tag.replace(':', '-')}-{port}.log"
        env = {**self.config["server_env"], "ML_ASSETS_MODEL_TAG": slot.model_tag}
        cmd = [sys.executable, "-m", "bentoml", "serve", slot.bento_tag, "--host", self.host, "--port", str(port)]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.config["home"]
            )
        return Instance(port, proc, str(log))

    def _reconcile(self, slot_id: str) -> None:
        slot = self.slots[slot_id]
        now = time.monotonic()
        for old in slot.retiring:
            old.refresh(self.host, now)
        inst = slot.instance
        if inst is not None:
            if not inst.parent_alive():  # its orphans, adopted by this subreaper since the last snapshot
                inst.records = [*inst.records, *self._unclaimed_children()]
            inst.refresh(self.host, now)
            never_ready = not inst.ever_ready and now - inst.started_at > self.config["startup_timeout_s"]
            went_unready = inst.ever_ready and inst.unready_since is not None
            went_unready = went_unready and now - inst.unready_since > self.config["unready_restart_s"]
            if not inst.parent_alive() or never_ready or went_unready:
                why = "its bentoml serve process exited" if not inst.parent_alive() else (
                    f"not ready after {self.config['startup_timeout_s']:.0f} s" if never_ready
                    else f"not ready for {self.config['unready_restart_s']:.0f} s"
                )  # fmt: skip
                slot.error = f"{inst.url} ({slot.bento_tag}): {why}"
                if inst.ever_ready and any(r.alive() for r in inst.records):
                    slot.retiring.append(inst)  # its orphans keep serving until a replacement is ready
                else:
                    self._stop_instance(inst)
                if not inst.ever_ready:
                    slot.failures += 1
                    slot.next_start = now + RESTART_BACKOFF_S[min(slot.failures, len(RESTART_BACKOFF_S)) - 1]
                slot.instance = inst = None
                slot.restarts += 1
        if inst is None and now >= slot.next_start:
            slot.instance = inst = self._start(slot)
            slot.last_log = inst.log
        if inst is not None and inst.ready:
            slot.failures = 0
            if slot.retiring and (self.serve != slot_id or self._switch(inst.port)):
                for old in slot.retiring:
                    self._drain(old.port)
                    self._stop_instance(old)
                slot.retiring = []

    def _unclaimed_children(self) -> list[ProcessRecord]:
        """Trees of this process's children that are neither the proxy, a server's parent nor a known leftover:
        orphans adopted since the last snapshot."""
        instances = [i for s in self.slots.values() for i in [*s.retiring, *([s.instance] if s.instance else [])]]
        claimed = {i.proc.pid for i in instances} | {r.pid for i in instances for r in i.records}
        if self.proxy is not None:
            claimed.add(self.proxy.pid)
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return []
        return [r for child in children if child.pid not in claimed for r in tree(child.pid)]

    def _retire_unwanted(self) -> None:
        """Stop the slots desired.json no longer lists; one the proxy still routes to waits until it has switched
        to the served slot, then is drained first."""
        for slot_id in [s for s in self.slots if s not in self.wanted]:
            slot = self.slots[slot_id]
            instances = [*slot.retiring, *([slot.instance] if slot.instance else [])]
            serving = self.routed_port in {i.port for i in instances}
            if serving and self.serve in self.wanted and self.serve != slot_id:
                continue  # the served slot is not routed yet: this one keeps the traffic meanwhile
            del self.slots[slot_id]
            for inst in instances:
                if inst.port in (self.routed_port, self.upstream_port):
                    self._drain(inst.port)
                self._stop_instance(inst)

    def _stop_instance(self, inst: Instance) -> None:
        records = inst.records or tree(inst.proc.pid)
        stop([*records, *([r] if (r := record(inst.proc.pid)) else [])], timeout_s=self.config["stop_timeout_s"])
        with contextlib.suppress(subprocess.TimeoutExpired):
            inst.proc.wait(timeout=1)

    # ---- routing -------------------------------------------------------------------------------------------------
    def _route(self) -> None:
        slot = self.slots.get(self.serve or "")
        if slot is None or slot.instance is None or not slot.instance.ready:
            return
        if slot.instance.port != self.routed_port:
            self._switch(slot.instance.port)

    def _switch(self, port: int) -> bool:
        """Point the proxy at ``port``; True once the proxy reports it (so no new request goes to the old one)."""
        if port != self.upstream_port:
            self._write(UPSTREAM, {"upstream": f"http://{self.host}:{port}"})
            self.upstream_port = port
        status = _status(self.host, self.port)
        if status is not None and status.get("upstream") == f"http://{self.host}:{port}":
            self.routed_port = port
        return self.routed_port == port

    def _drain(self, port: int) -> None:
        url = f"http://{self.host}:{port}"
        deadline = time.monotonic() + self.config["drain_timeout_s"]
        while time.monotonic() < deadline:
            status = _status(self.host, self.port)
            if status is None or not status.get("inflight", {}).get(url):
                return
            time.sleep(0.05)

    # ---- state -----------------------------------------------------------------------------------------------------
    def _publish(self) -> None:
        servers = {}
        for slot_id, slot in self.slots.items():
            inst = slot.instance
            servers[slot_id] = {
                "bento_tag": slot.bento_tag,
                "model_tag": slot.model_tag,
                "port": inst.port if inst else None,
                "pid": inst.proc.pid if inst else None,
                "log": slot.last_log,
                "ready": bool(inst and inst.ready),
                "restarts": slot.restarts,
                "failures": slot.failures,
                "error": slot.error,
                "tree": [r.to_json() for i in [*([inst] if inst else []), *slot.retiring] for r in i.records],
            }
        proxy = self.proxy
        state = {
            "supervisor": self.own_record,
            "listening": f"{self.host}:{self.port}",
            "upstream": f"http://{self.host}:{self.routed_port}" if self.routed_port else None,
            "serve": self.serve,
            "proxy": {
                "pid": proxy.pid if proxy else None,
                # its own record, not a scan of /proc (3 ms here, 5 times a second, was 1.5 % of a core idle)
                "tree": [self.proxy_record.to_json()] if proxy and self.proxy_record and proxy.poll() is None else [],
                "restarts": self.proxy_restarts,
            },
            "servers": servers,
        }
        text = json.dumps(state, sort_keys=True)
        if text != self._published:
            self._write(ACTUAL, state)
            self._published = text

    def _write(self, name: str, state: dict[str, Any]) -> None:
        path = self.folder / name
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)

    def _shutdown(self) -> None:
        for slot_id in list(self.slots):
            slot = self.slots.pop(slot_id)
            for inst in [*slot.retiring, *([slot.instance] if slot.instance else [])]:
                self._stop_instance(inst)
        if self.proxy is not None:
            stop(tree(self.proxy.pid), timeout_s=self.config["stop_timeout_s"])
        self.sock.close()
        reap_children()
        self._write(ACTUAL, {"supervisor": None, "stopped": True, "servers": {}, "proxy": {"tree": []}})


def _rec(pid: int) -> list[float] | None:
    r = record(pid)
    return r.to_json() if r else None


def _get(host: str, port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def _status(host: str, port: int) -> dict[str, Any] | None:
    code, body = _get(host, port, STATUS_PATH, 2.0)
    try:
        return json.loads(body) if code == 200 else None
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="the deployment's folder (holds config.json)")
    args = parser.parse_args(argv)
    sys.exit(Supervisor(args.dir).run())


if __name__ == "__main__":
    main()
