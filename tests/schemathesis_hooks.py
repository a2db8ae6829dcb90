"""Schemathesis hooks for the served API (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): how to send the
binary bodies of ``/predict_file`` (Arrow IPC, Parquet), which schemathesis cannot serialize by itself."""

from __future__ import annotations

from typing import Any

import schemathesis

from ml_assets.serving.columnar import MEDIA_TYPES


@schemathesis.serializer(*MEDIA_TYPES)
def columnar_bytes(ctx: Any, value: Any) -> dict[str, Any]:
    """The generated body as raw bytes (the server must refuse malformed files with a 4xx)."""
    return {"data": value if isinstance(value, bytes) else str(value).encode()}
