"""The landing zone: where daily data files arrive, and the quarantine where unreadable ones are kept.

Layout: ``<root>/<YYYY-MM-DD>/<name>.csv|.csv.gz|.parquet`` (``DayFolders``), one folder per daily partition. A file that cannot be parsed
is moved (never deleted) to ``<quarantine>/<YYYY-MM-DD>/<name>`` with ``<name>.reason.txt`` beside it. Only
regular files are data: an entry with a data suffix that is a symbolic link (it could point anywhere on the
machine), a folder, a pipe or a device is refused by ``read`` with the reason, and quarantined like a bad file.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_module
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ml_assets.dataset import read_table
from resources.day_folders import DayFolders


class LandingFileError(Exception):
    """A landing file that could not be read, naming the file and the problem."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"landing file {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class LandedFile:
    path: Path
    frame: pd.DataFrame
    bytes: int


class LandingZone(DayFolders):
    """Daily landing folders and their quarantine, on a local or mounted filesystem."""

    quarantine_root: str

    def files(self, day: str) -> list[Path]:
        """The entries landed for a day with a data suffix, in name order; temporary and hidden files are not data.

        Entries that are not regular files are listed too, so that ``read`` refuses them by name rather than the
        day silently losing their rows.
        """
        return self.entries(day)

    def read(self, path: Path) -> LandedFile:
        """Parse one regular file as it landed (types as the file gives them), or raise LandingFileError."""
        problem = not_a_regular_file(path)
        if problem:
            raise LandingFileError(path, problem)
        size = path.stat().st_size
        if size == 0:
            return LandedFile(path, pd.DataFrame(), 0)
        try:  # CSV through Arrow's parser: typed columns let the GX type rules check dtypes, not values
            frame = read_table(path)
        except pd.errors.EmptyDataError:
            return LandedFile(path, pd.DataFrame(), size)
        except Exception as e:  # every reader error means the same thing here: unparseable
            raise LandingFileError(path, f"cannot be parsed: {type(e).__name__}: {e}") from e
        return LandedFile(path, frame, size)

    def quarantine(self, path: Path, day: str, reason: str) -> Path:
        """Move a bad file out of the landing zone, keeping it and a note of why for inspection."""
        target_dir = Path(self.quarantine_root) / day
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
        shutil.move(str(path), target)
        target.with_name(target.name + ".reason.txt").write_text(
            f"file: {path}\nquarantined_at: {datetime.now(UTC).isoformat()}\nreason: {reason}\n"
        )
        return target


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` is not landed data (a link, a folder, a pipe, ...), or None for a regular file."""
    mode = os.lstat(path).st_mode
    if stat_module.S_ISREG(mode):
        return None
    if stat_module.S_ISLNK(mode):
        return f"is a symbolic link (to {os.readlink(path)}); landing files must be regular files, not links"
    kind = "a folder" if stat_module.S_ISDIR(mode) else "a pipe, socket or device"
    return f"is {kind}, not a regular file; only regular CSV or Parquet files are landed data"
