"""The benchmark CSVs: one row per measured cell, appended as each cell finishes (resumable).

Example::

    table = ResultTable(Path("bench_out/grid.csv"), GRID_FIELDS, key=GRID_KEY)
    table.done(("mobileunet", "", "0.5", "224", "tflite", "2"))   # measured already?
    table.append([{...}, {...}])                               # flushed to disk at once

A row counts as done when its status is ``ok``, ``unavailable`` or ``unsupported``; an
``error`` row is measured again on the next call.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.files import write_text_atomic

GRID_KEY = ("arch", "options", "alpha", "size", "runtime", "threads")
GRID_FIELDS = (*GRID_KEY, "status", "median_ms", "p90_ms", "mean_ms", "min_ms", "runs", "params",
               "macs", "artifact_bytes", "xnnpack_partitions", "gflops", "peak_gflops",
               "peak_pct", "load1", "note")
DONE_STATUSES = ("ok", "unavailable", "unsupported")


def cell_key(row: dict[str, Any], key: Sequence[str]) -> tuple[str, ...]:
    """The identity of a row as strings (CSV round trip: 0.5 and "0.5" are the same cell)."""
    return tuple(_canonical(row[k]) for k in key)


def _canonical(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:g}" if math.isfinite(number) else str(value)


class ResultTable:
    """Rows of one CSV file, read at start and appended row by row."""

    def __init__(self, path: Path, fields: Sequence[str], key: Sequence[str]) -> None:
        self.path, self.fields, self.key = Path(path), tuple(fields), tuple(key)
        self.rows: list[dict[str, str]] = []
        if self.path.is_file():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) != self.fields:
                    raise ConfigError(f"{self.path}: columns differ from this version's; "
                                      "use another --out folder")
                self.rows = list(reader)

    def done(self, key: tuple[str, ...]) -> bool:
        return any(cell_key(r, self.key) == key and r["status"] in DONE_STATUSES
                   for r in self.rows)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = [{f: _cell(row.get(f)) for f in self.fields} for row in rows]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The whole file rewritten through a rename: a kill mid-write leaves the old CSV whole.
        old = self.path.read_text() if self.path.is_file() else ""
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, self.fields)
        if not old:
            writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path, old + buffer.getvalue())
        keys = {cell_key(r, self.key) for r in rows}
        self.rows = [r for r in self.rows if cell_key(r, self.key) not in keys] + rows

    def latest(self) -> list[dict[str, str]]:
        """The last row of each cell (an error row superseded by a later ok row disappears)."""
        seen: dict[tuple[str, ...], dict[str, str]] = {}
        for row in self.rows:
            seen[cell_key(row, self.key)] = row
        return list(seen.values())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def number(row: dict[str, str], field: str) -> float:
    """A numeric column as float (NaN when empty)."""
    value = row.get(field, "")
    return float(value) if value not in ("", None) else float("nan")
