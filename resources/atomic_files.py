"""One way to replace a file so that readers see the old content or the new, never a part: ``write_atomic``.

Used wherever another process may read a file while it is rewritten: landed and label files (a sensor may list the
day mid-write), deployment state (the supervisor and the proxy poll it), simulated days.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str, fsync: bool = True) -> Path:
    """Write ``data`` beside ``path`` under a hidden temporary name (``.<name>.<random>.tmp``: day folders skip
    it), flush it to disk (``fsync``), then rename it over ``path``. The temporary file never outlives a failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
