"""deployment_health_sensor against a real HTTP endpoint (a threaded http.server on a free loopback port) and a real
instance: red when the URL stops answering, green again when it answers, reported on change only."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dagster import AssetMaterialization, DagsterInstance, build_sensor_context

from resources.bento_deployer import LocalBentoDeployer
from resources.process_tree import free_port
from sensors.deployment_health import build_health_sensor


class Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_health_follows_what_serves_now(tmp_path: Path) -> None:
    port = free_port()
    deployer = LocalBentoDeployer(home=str(tmp_path), bentoml_home=str(tmp_path / "bentoml"), port=port)
    sensor = build_health_sensor()
    instance = DagsterInstance.ephemeral()
    cursor = None

    def tick():
        nonlocal cursor
        result = sensor.evaluate_tick(
            build_sensor_context(instance=instance, cursor=cursor, resources={"bento_deployer": deployer})
        )
        cursor = result.cursor
        return result

    assert tick().skip_message == "nothing has been deployed yet"
    instance.report_runless_asset_event(AssetMaterialization("deployment"))

    down = tick()
    [evaluation] = down.asset_events
    assert (evaluation.check_name, evaluation.passed) == ("health", False)
    assert f"127.0.0.1:{port}/readyz unreachable" in evaluation.description
    assert tick().asset_events == [], "unchanged: not reported again"

    server = ThreadingHTTPServer(("127.0.0.1", port), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        [up] = tick().asset_events
        assert up.passed and "answered 200" in up.description
    finally:
        server.shutdown()
        server.server_close()
