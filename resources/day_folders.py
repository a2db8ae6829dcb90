"""Files that arrive in one folder per day (``<root>/<YYYY-MM-DD>/``): what each day holds and its fingerprint.

The landing zone, the prediction log and the delayed labels are such folders; a sensor observes a day's
fingerprint (names, kinds, sizes, modification times) and the asset that loads the day recomputes when it changes.
Symbolic links and anything that is not a regular file are never read as data (the landing zone lists them, so
that its reader refuses them by name and quarantines them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from ml_assets.dataset import DATA_SUFFIXES


class DayFolders(ConfigurableResource):
    """Day folders under ``root`` whose data files end in one of ``suffixes``."""

    root: str
    suffixes: list[str] = Field(list(DATA_SUFFIXES), description="file endings that count as data")

    def day_dir(self, day: str) -> Path:
        return Path(self.root) / day

    def folders(self) -> list[str]:
        """Names of every folder directly under the root, sorted."""
        root = Path(self.root)
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.is_symlink())

    def entries(self, day: str) -> list[Path]:
        """Every entry of the day whose name ends in a data suffix, in name order, whatever its kind (links,
        folders too); hidden and temporary names (``.x``, ``_x``) are not data."""
        folder = self.day_dir(day)
        if not folder.is_dir():
            return []
        endings = tuple(self.suffixes)
        return sorted(p for p in folder.iterdir() if p.name.endswith(endings) and not p.name.startswith((".", "_")))

    def files(self, day: str) -> list[Path]:
        """The day's data files in name order: regular files only."""
        return [p for p in self.entries(day) if p.is_file() and not p.is_symlink()]

    def days(self) -> list[str]:
        return [d for d in self.folders() if self.files(d)]

    def fingerprint(self, day: str) -> str:
        """Changes whenever a file of the day is added, grows, is replaced (by another kind of entry too) or
        removed; reads no data. Used as the day's data version."""
        digest = hashlib.sha256()
        for path in self.files(day):
            try:
                stat = path.lstat()  # a link itself, never what it points to
            except FileNotFoundError:  # removed since listed (a spool rotated away): not part of the day any more
                continue
            digest.update(f"{path.name}:{stat.st_mode}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:16]
