"""Alerts: what a person must hear about (a failed monitoring check, a retraining request, a rollback, a failed run).

Every alert goes to the Dagster log of whoever raises it, is appended as one JSON line to ``log_path`` (locally
``<ML_ASSETS_HOME>/alerts.jsonl``), and, when ``webhook_url`` is set, is POSTed there as JSON (Slack-style
``{"text": ...}`` plus the fields). A webhook that does not answer is logged, never raised: alerting must not fail
the run that alerts.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

logger = logging.getLogger("ml_assets.alerts")


class Alerts(ConfigurableResource):
    log_path: str = Field(description="JSON lines file every alert is appended to")
    webhook_url: str = Field("", description="optional: POST each alert here as JSON")
    timeout_s: float = 5.0

    def send(self, kind: str, message: str, log: Any = None, **details: Any) -> dict[str, Any]:
        """Record and deliver one alert; returns it as written."""
        alert = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "kind": kind, "message": message, **details}
        (log or logger).warning(f"ALERT {kind}: {message}")
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(alert, default=str) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        if self.webhook_url:
            try:
                httpx.post(
                    self.webhook_url, json={"text": f"[ml-assets] {kind}: {message}", **alert}, timeout=self.timeout_s
                )
            except httpx.HTTPError as e:
                (log or logger).warning(f"alert webhook {self.webhook_url} failed: {type(e).__name__}: {e}")
        return alert

    def read(self) -> list[dict[str, Any]]:
        """Every alert recorded so far (for the UI, tests and people)."""
        path = Path(self.log_path)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
