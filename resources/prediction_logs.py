"""The served model's prediction log on disk: ``<root>/<YYYY-MM-DD>/<writer>.jsonl``, one JSON object a line.

Every serving process appends to its own file of the day (see ``ml_assets/serving/prediction_log.py`` for the writer and the
line format). Reading is safe while servers still write: only complete lines (up to the last newline of a file) are
parsed, so a line being written, or torn by a killed writer, is left for a later read or counted, never half-read.
Parsing is Arrow's multithreaded JSON reader against the schema of ``ml_assets.prediction_line.PredictionLine``
(the record the writer formats), with the request fields typed by the caller from the dataset spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.json as pa_json

from ml_assets.prediction_line import line_schema
from resources.day_folders import DayFolders


@dataclass
class LogRead:
    """What reading one day found."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    bad_lines: int = 0  # complete lines that are not valid JSON of the schema (skipped, counted)
    partial_bytes: int = 0  # an unfinished last line, left for the next read


class PredictionLogFiles(DayFolders):
    """Read one day of the prediction log as an Arrow table."""

    suffixes: list[str] = [".jsonl"]

    def read_day(self, day: str, inputs: pa.StructType) -> tuple[pa.Table, LogRead]:
        """All complete lines of the day's files as PredictionLine columns, the request fields typed by ``inputs``
        (a field a line lacks is null)."""
        schema = line_schema(inputs)
        stats = LogRead()
        tables = []
        for path in self.files(day):
            data = path.read_bytes()
            end = data.rfind(b"\n") + 1
            stats.files.append(path.name)
            stats.partial_bytes += len(data) - end
            if end:
                table, bad = _parse(data[:end], schema)
                tables.append(table)
                stats.lines += table.num_rows
                stats.bad_lines += bad
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        return table, stats


def _parse(data: bytes, schema: pa.Schema) -> tuple[pa.Table, int]:
    """Parse JSON lines with ``schema``; if a line is malformed, parse line by line and count the bad ones."""
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        return pa_json.read_json(pa.BufferReader(data), parse_options=options), 0
    except pa.ArrowInvalid:
        good, bad = [], 0
        for line in data.splitlines(keepends=True):
            if not line.strip():
                continue
            try:
                good.append(pa_json.read_json(pa.BufferReader(line), parse_options=options))
            except pa.ArrowInvalid:
                bad += 1
        return (pa.concat_tables(good) if good else schema.empty_table()), bad
