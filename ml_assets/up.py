"""``ml-assets up``: the local always-on mode, the Dagster webserver and daemon on the embedded instance.

Both run as child processes on 127.0.0.1 with the instance of the environment (``ML_ASSETS_ENV``: dev by default, its
state at the top of ML_ASSETS_HOME; qa and prod in their folders of it, each with its own UI port: 3030, 3031,
3032) and a code location named after it (``ml_assets_dev``, ``ml_assets_qa``, ``ml_assets_prod``: the UI shows it on
every asset, job and run, so two UIs side by side are never confused); the landing sensor, the
automation sensor and the health sensor are on by default, so landed files flow through the graph by themselves.
Ctrl-C (SIGINT) or SIGTERM stops both by PID with their whole process trees (code servers, run workers). A served
model keeps serving: it belongs to the deployment, and ``ml-assets stop`` stops it.

``--replay N`` lands the next simulated day every N seconds (``ml_assets.datasets.next_day``), so a newcomer
watches the graph ingest it, cut a training window, retrain, pass the gates and redeploy, with no call but the
landing.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import httpx

from ml_assets.settings import environment, paths
from resources.process_tree import alive, start, stop_tree, wait_until

WORKSPACE = """\
# Written by `ml-assets up`: the one code location of ml-assets, named after its environment.
load_from:
  - python_module:
      module_name: ml_assets.definitions
      attribute: defs
      location_name: {location}
"""


def location_name(env: str) -> str:
    """The code location's name in the UI: the environment is in it."""
    return f"ml_assets_{env}"


READY_TIMEOUT_S = 180.0


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Up:
    """The webserver and daemon processes of one ``up`` session, and the file that names their PIDs."""

    def __init__(self, host: str, port: int) -> None:
        self.where = paths()
        self.url = f"http://{host}:{port}"
        self.host, self.port = host, port
        self.logs = self.where.home / "logs"
        self.state_file = self.where.home / "up.json"
        self.pids: dict[str, int] = {}

    def start(self) -> None:
        workspace = self.where.dagster_home / "workspace.yaml"
        workspace.write_text(WORKSPACE.format(location=location_name(environment())))
        python = sys.executable
        self.pids["webserver"] = start(
            [python, "-m", "dagster_webserver", "-h", self.host, "-p", str(self.port), "-w", str(workspace)],
            self.logs / "webserver.log",
        )
        self.pids["daemon"] = start(
            [str(Path(python).with_name("dagster-daemon")), "run", "-w", str(workspace)], self.logs / "daemon.log"
        )
        self.state_file.write_text(json.dumps({"url": self.url, **self.pids}))

    def wait_ready(self) -> bool:
        return wait_until(lambda: _ready(self.url) or not all(map(alive, self.pids.values())), READY_TIMEOUT_S) and (
            _ready(self.url)
        )

    def dead(self) -> list[str]:
        return [name for name, pid in self.pids.items() if not alive(pid)]

    def stop(self) -> None:
        for pid in self.pids.values():
            stop_tree(pid)
        self.state_file.unlink(missing_ok=True)


def replay_loop(every_s: float, stop: threading.Event) -> None:
    """Land the next simulated day every ``every_s`` seconds until ``stop`` is set."""
    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.next_day import land_next_day

    spec = load_default_spec()
    while not stop.wait(every_s):
        landed = land_next_day(spec, paths().landing)
        what = "a later batch of" if landed.late_batch else "day"
        print(f"  replay: landed {what} {landed.day} ({landed.rows:,} rows)", flush=True)


def run_up(host: str = "127.0.0.1", port: int | None = None, replay_s: float | None = None) -> int:
    from ml_assets.settings import ui_port

    up = Up(host, port or ui_port())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ml-assets up: environment {environment()}, instance {up.where.dagster_home}, logs {up.logs}", flush=True)
    up.start()
    try:
        if not up.wait_ready():
            print(f"the webserver did not answer on {up.url}; see {up.logs}", file=sys.stderr)
            return 1
        print(f"  Dagster UI: {up.url}  (automation, landing and health sensors on; Ctrl-C stops)", flush=True)
        print(f"  land a day: ml-assets simulate --next    landing zone: {up.where.landing}", flush=True)
        if replay_s:
            print(f"  replay: one new simulated day every {replay_s:g} s", flush=True)
            threading.Thread(target=replay_loop, args=(replay_s, stop), daemon=True).start()
        while not stop.wait(1.0):
            dead = up.dead()
            if dead:
                print(f"{', '.join(dead)} exited; see {up.logs}; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        print("ml-assets up: stopping the webserver and the daemon", flush=True)
        stop.set()
        up.stop()
