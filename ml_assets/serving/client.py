"""What ``ml-assets demo`` prints at the end: the served URL, a few real test rows scored over HTTP, how to stop."""

from __future__ import annotations

from typing import Any

import httpx


def demo_report(url: str, records: list[dict[str, Any]], stop_hint: str, n: int = 5) -> str:
    """Send ``n`` records to ``url`` over HTTP and describe the answers (raises if the server does not answer)."""
    sent = records[:n]
    r = httpx.post(url + "/predict_batch", json={"records": sent}, timeout=30)
    r.raise_for_status()
    lines = [f"model served at {url}  (OpenAPI: {url}/docs.json)", ""]
    for rec, p in zip(sent, r.json(), strict=True):
        who = ", ".join(f"{k}={rec[k]}" for k in list(rec)[:4])
        lines.append(f"  {who}, ...  ->  p={p['probability']:.3f}  {p['label_name']}  ({p['model_tag']})")
    lines += ["", f"try: curl -s -X POST {url}/predict -H 'content-type: application/json' -d '{{\"record\": {{...}}}}'",
              f"stop the server: {stop_hint}"]  # fmt: skip
    return "\n".join(lines)
