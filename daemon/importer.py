"""Bulk stock load from CSV (``sku,location,on_hand``), checked whole before anything is applied.

Each row becomes one ``stock.count`` event whose id derives from the file's content and the row,
so importing the same file twice changes nothing the second time. Rows go out concurrently and
the engine pipelines them. ``sample`` writes a file of any size in this format (``invsync stock
sample``), the same every time.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InvsyncError
from ..engine import keys
from ..engine.engine import Engine

HEADER = ("sku", "location", "on_hand")
#: The engine's scripts refuse counts from 1e14 up (cjson keeps 14 digits): refused here, before
#: anything is applied, rather than row by row after the rest of the file went in.
MAX_QTY = keys.MAX_QTY


class ImportFileError(Exception):
    """The file is malformed; ``problems`` lists every bad row (line number and why)."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s), nothing imported:\n  {shown}{more}")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Row:
    """One validated row of an import file."""

    line: int
    sku: str
    location: str
    on_hand: int


@dataclass(slots=True)
class ImportResult:
    """What an import did: rows applied, already applied before, and refused (with why)."""

    applied: int = 0
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)


#: The SKUs of ``sample`` files: SAMPLE-000001, SAMPLE-000002, ...
SAMPLE_SKU = "SAMPLE-{:06d}"


def sample(rows: int, locations: Sequence[str], *, seed: int = 0) -> Iterator[tuple[str, str, int]]:
    """``rows`` rows of a sample import file, always the same for the same arguments.

    SKU after SKU, each at every location in turn (so the first N rows of a longer sample are
    the N rows of a shorter one), with on_hand from 0 to 200 drawn from ``seed``.
    """
    rng = random.Random(seed)
    for index in range(rows):
        sku = SAMPLE_SKU.format(index // len(locations) + 1)
        yield sku, locations[index % len(locations)], rng.randint(0, 200)


def parse(path: Path, locations: Iterable[str]) -> tuple[str, list[Row]]:
    """Read and check the whole file; returns (content digest, rows) or raises ImportFileError."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    known = set(locations)
    problems: list[str] = []
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(path, [f"not UTF-8 text: {exc}"]) from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise ImportFileError(
            path, [f"line 1: the header must be {','.join(HEADER)}, got {header}"]
        )
    for number, record in enumerate(reader, start=2):
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != 3:
            problems.append(f"line {number}: expected 3 columns, got {len(record)}")
            continue
        sku, location, qty = (cell.strip() for cell in record)
        try:
            keys.check_sku(sku)
        except InvsyncError as exc:
            problems.append(f"line {number}: {exc.message}")
            continue
        if location not in known:
            problems.append(
                f"line {number}: unknown location {location!r} (known: {', '.join(sorted(known))})"
            )
            continue
        # isascii: str.isdigit() also accepts digits such as "²" that int() rejects; the length
        # bound keeps int() off strings longer than it converts.
        if not (qty.isascii() and qty.isdigit() and len(qty) <= 20) or int(qty) > MAX_QTY:
            problems.append(
                f"line {number}: on_hand must be an integer from 0 to {MAX_QTY}, got {qty!r}"
            )
            continue
        if (sku, location) in seen:
            problems.append(
                f"line {number}: {sku} at {location} already given on line {seen[(sku, location)]}"
            )
            continue
        seen[(sku, location)] = number
        rows.append(Row(number, sku, location, int(qty)))
    if problems:
        raise ImportFileError(path, problems)
    return digest, rows


async def apply(
    engine: Engine,
    digest: str,
    rows: list[Row],
    *,
    window: int = 4096,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Count every row's on_hand; at most ``window`` rows in flight (bounded memory).
    ``on_progress(n)`` is told of every ``n`` rows done (a progress bar)."""
    result = ImportResult()

    async def one(row: Row) -> None:
        try:
            outcome = await engine.count(
                f"import-{digest}-{row.line}", row.sku, row.location, row.on_hand, reason="import"
            )
        except InvsyncError as exc:
            if exc.http_status >= 500:
                raise
            result.refused.append(f"line {row.line}: {exc.message}")
            return
        if outcome.duplicate:
            result.duplicates += 1
        else:
            result.applied += 1

    for start in range(0, len(rows), window):
        try:
            async with asyncio.TaskGroup() as group:
                for row in rows[start : start + window]:
                    group.create_task(one(row))
        except* InvsyncError as errors:
            # The store went away: the caller reports that one error, not an exception group.
            raise errors.exceptions[0] from None
        if on_progress is not None:
            on_progress(len(rows[start : start + window]))
    return result
