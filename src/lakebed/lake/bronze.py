"""Bronze ingestion: every landing file becomes Iceberg rows exactly as it arrived.

Each line is kept verbatim in ``payload`` with where it came from (``_source_file``,
``_file_sha256``, ``_line_number``) and when (``_batch_id``, ``_ingested_at``). A line that
is not valid UTF-8 or not valid JSON is kept too, with ``_parse_error`` saying why: bronze
never drops anything; the contracts in silver decide what is usable.

The ledger of ingested files is the bronze table itself (its ``_source_file`` and
``_file_sha256`` columns), so it can never disagree with the data, and each batch of files
is one Iceberg commit: a killed ingest leaves either the whole batch or none of it, and the
rerun picks up exactly the files that are missing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

METADATA_FIELDS = [
    pa.field("_parse_error", pa.string()),
    pa.field("_source_file", pa.string(), nullable=False),
    pa.field("_file_sha256", pa.string(), nullable=False),
    pa.field("_line_number", pa.int64(), nullable=False),
    pa.field("_batch_id", pa.string(), nullable=False),
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
]
MAX_BATCH_BYTES = 256 * 1024 * 1024
LEDGER_PROPERTY = "lakebed.ingested-files"


@dataclass(frozen=True)
class Feed:
    """A kind of landing file and the bronze table it feeds."""

    table: str
    folder: str
    pattern: str
    columns: tuple[str, ...] = ()  # CSV: the expected header, kept as string columns

    @property
    def is_csv(self) -> bool:
        return bool(self.columns)

    def schema(self) -> pa.Schema:
        parsed = [pa.field(name, pa.string()) for name in self.columns]
        return pa.schema(
            [*parsed, pa.field("payload", pa.string(), nullable=False), *METADATA_FIELDS]
        )


FEEDS = (
    Feed("transactions", "transactions", "*.jsonl"),
    Feed("chargebacks", "chargebacks", "*.jsonl"),
    Feed(
        "customers", "reference", "customers*.csv", ("customer_id", "card_id", "home_x", "home_y")
    ),
    Feed(
        "terminals",
        "reference",
        "terminals*.csv",
        ("terminal_id", "x", "y", "mcc", "merchant_category", "time_zone", "currency"),
    ),
)


class WarehouseWriteError(OSError):
    """A batch's files could not be written to the warehouse (storage down...). Nothing
    of the batch is committed: the commit comes after every data file is written, so a
    rerun ingests the batch again from the start. An ``OSError``, so the flow's retry of
    transient errors applies."""

    def __init__(self, feed: Feed, batch: list[LandingFile], location: str, error: OSError):
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        super().__init__(
            f"bronze.{feed.table}: {len(batch)} landing files ({batch[0].name} .. "
            f"{batch[-1].name}) could not be written to {location}: {reason}. Nothing of "
            "this batch was committed; run the ingestion again once the storage answers."
        )


class HeaderMismatchError(ValueError):
    """A CSV export whose header is not the one its bronze table expects."""


@dataclass(frozen=True)
class LandingFile:
    name: str  # relative to the landing folder: the stable identity of the file
    path: Path
    size: int


@dataclass(frozen=True)
class Lines:
    """One file split into lines: parsed CSV columns, verbatim payloads, parse errors."""

    parsed: dict[str, pa.Array]
    payloads: pa.Array
    errors: pa.Array
    first_line: int

    def __len__(self) -> int:
        return len(self.payloads)


@dataclass
class FeedReport:
    table: str
    files_ingested: int = 0
    files_unchanged: int = 0
    files_refused: list[str] = field(default_factory=list)
    rows: int = 0
    unparsed_rows: int = 0
    batches: int = 0


@dataclass
class IngestReport:
    feeds: list[FeedReport]

    @property
    def refused(self) -> list[str]:
        return [name for feed in self.feeds for name in feed.files_refused]

    @property
    def rows(self) -> int:
        return sum(feed.rows for feed in self.feeds)


Progress = Callable[[str, int, int], None]
"""Called with (table, files done, files to do)."""


def ingest(
    catalog: Catalog,
    landing: Path,
    *,
    batch_files: int = 32,
    on_progress: Progress | None = None,
) -> IngestReport:
    """Ingest every new landing file into its bronze table; already-ingested files are
    skipped, changed ones refused (reported, not raised, so the other files go on)."""
    reports = []
    for feed in FEEDS:
        files = sorted((landing / feed.folder).glob(feed.pattern))
        reports.append(_ingest_feed(catalog, feed, landing, files, batch_files, on_progress))
    return IngestReport(reports)


def bronze_table(catalog: Catalog, feed: Feed) -> Table:
    identifier = f"bronze.{feed.table}"
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return catalog.create_table(identifier, schema=feed.schema())


def ingested_files(table: Table) -> dict[str, str]:
    """``_source_file`` -> ``_file_sha256`` of every file already in the table.

    The rows are the ledger. An empty file has no rows, so each commit also lists its files
    in the snapshot summary; those entries only matter for empty files.
    """
    if table.current_snapshot() is None:
        return {}
    ledger: dict[str, str] = {}
    for snapshot in table.snapshots():
        if snapshot.summary is not None:
            listed = snapshot.summary.additional_properties.get(LEDGER_PROPERTY)
            ledger.update(json.loads(listed) if listed else {})
    rows = table.scan(selected_fields=("_source_file", "_file_sha256")).to_arrow()
    pairs = pl.DataFrame(pl.from_arrow(rows)).unique().iter_rows()
    ledger.update({str(name): str(digest) for name, digest in pairs})
    return ledger


def _ingest_feed(
    catalog: Catalog,
    feed: Feed,
    landing: Path,
    files: list[Path],
    batch_files: int,
    on_progress: Progress | None,
) -> FeedReport:
    report = FeedReport(feed.table)
    table = bronze_table(catalog, feed)
    ledger = ingested_files(table)
    todo: list[LandingFile] = []
    for path in files:
        name = path.relative_to(landing).as_posix()
        if name not in ledger:
            # A new file is hashed as it is read for its batch: once, and the digest is
            # that of the very bytes ingested.
            problem = _header_problem(feed, path)
            if problem:
                report.files_refused.append(f"{name}: {problem}")
            else:
                todo.append(LandingFile(name, path, path.stat().st_size))
            continue
        digest = _sha256(path)
        if ledger[name] == digest:
            report.files_unchanged += 1
        else:
            report.files_refused.append(
                f"{name}: content changed since it was ingested (sha256 {ledger[name][:12]}… "
                f"is now {digest[:12]}…); land corrections under a new file name"
            )
    for batch, (rows, digests) in _read_ahead(feed, list(_batches(todo, batch_files))):
        listed = json.dumps(digests, sort_keys=True)
        try:
            table.append(rows, snapshot_properties={LEDGER_PROPERTY: listed})
        except OSError as error:
            raise WarehouseWriteError(feed, batch, table.location(), error) from error
        report.batches += 1
        report.files_ingested += len(batch)
        report.rows += rows.num_rows
        report.unparsed_rows += rows.num_rows - rows["_parse_error"].null_count
        if on_progress:
            on_progress(feed.table, report.files_ingested, len(todo))
    return report


def _read_ahead(
    feed: Feed, batches: list[list[LandingFile]]
) -> Iterator[tuple[list[LandingFile], tuple[pa.Table, dict[str, str]]]]:
    """Each batch with its rows, the next batch read while the caller writes this one:
    reading (hashing, splitting) and writing Parquet overlap on the two cores. Commits stay
    in order, one batch at a time."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = [reader.submit(_batch_rows, feed, batch) for batch in batches[:1]]
        for index, batch in enumerate(batches):
            rows = upcoming.pop().result()
            if index + 1 < len(batches):
                upcoming.append(reader.submit(_batch_rows, feed, batches[index + 1]))
            yield batch, rows


def _header_problem(feed: Feed, path: Path) -> str | None:
    """Why a CSV export cannot go into its table (its header), checked before batching so
    that one bad export never holds back the others."""
    if not feed.is_csv:
        return None
    with path.open(encoding="utf-8", errors="backslashreplace", newline="") as handle:
        header = next(csv.reader(handle), [])
    if tuple(header) == feed.columns:
        return None
    return f"header {','.join(header)} is not the expected {','.join(feed.columns)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _batches(todo: list[LandingFile], batch_files: int) -> Iterator[list[LandingFile]]:
    """Groups of files for one commit each, bounded in count and bytes (memory)."""
    batch: list[LandingFile] = []
    size = 0
    for item in todo:
        if batch and (len(batch) >= batch_files or size + item.size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch


def _batch_rows(feed: Feed, batch: list[LandingFile]) -> tuple[pa.Table, dict[str, str]]:
    """All rows of one batch as one Arrow table, and each file's sha256 (of the bytes
    read). Files are read, hashed and split on two threads (hashlib and NumPy release the
    GIL), and every column is built by NumPy and Arrow: never a Python object per line."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        files = list(pool.map(partial(_file_rows, feed), batch))
    digests = {
        landing_file.name: digest for landing_file, (_, digest) in zip(batch, files, strict=True)
    }
    rows = pa.concat_tables([table for table, _ in files])
    size = rows.num_rows
    rows = rows.append_column(
        "_batch_id", pa.repeat(pa.scalar(uuid.uuid4().hex), size)
    ).append_column(
        "_ingested_at", pa.repeat(pa.scalar(datetime.now(UTC), pa.timestamp("us", "UTC")), size)
    )
    if not feed.is_csv:
        rows = _flag_invalid_json(rows)
    return rows.select(feed.schema().names).cast(feed.schema()), digests


def _file_rows(feed: Feed, landing_file: LandingFile) -> tuple[pa.Table, str]:
    content = landing_file.path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    lines = _csv_lines(feed, landing_file.name, content) if feed.is_csv else _json_lines(content)
    size = len(lines)
    first = lines.first_line
    table = pa.table(
        {
            **lines.parsed,
            "payload": lines.payloads,
            "_parse_error": lines.errors,
            "_source_file": pa.repeat(pa.scalar(landing_file.name), size),
            "_file_sha256": pa.repeat(pa.scalar(digest), size),
            "_line_number": pa.array(np.arange(first, first + size, dtype=np.int64)),
        }
    )
    return table, digest


def _json_lines(content: bytes) -> Lines:
    """Payloads (verbatim; undecodable bytes escaped as \\xNN) and the UTF-8 errors, built
    as one Arrow array from the file's bytes with NumPy: the newlines are found and cut out
    in two vectorised passes, and only lines with a non-ASCII byte (a few) are decoded by
    Python, to find those that are not UTF-8 and say where."""
    data = np.frombuffer(content, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    ends = newlines if content.endswith(b"\n") or not content else np.append(newlines, len(data))
    rows = len(ends)
    starts = np.concatenate(([0], newlines[: rows - 1] + 1)).astype(np.int64)
    keep = np.ones(len(data), dtype=bool)
    keep[newlines] = False
    text = data[keep]  # every line, one after the other, without their newlines
    offsets = np.concatenate(([0], ends - np.arange(rows))).astype(np.int64)
    errors: list[str | None] = [None] * rows
    replaced: dict[int, bytes] = {}
    for row in np.unique(np.searchsorted(newlines, np.flatnonzero(data >= 0x80))).tolist():
        raw = content[starts[row] : ends[row]]
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            errors[row] = f"invalid UTF-8: {error.reason} at byte {error.start}"
            replaced[row] = raw.decode("utf-8", errors="backslashreplace").encode("utf-8")
    offsets_buffer, text_buffer = pa.py_buffer(offsets), pa.py_buffer(text)
    if not replaced:  # every line is ASCII or was decoded above: valid UTF-8
        payloads = pa.LargeStringArray.from_buffers(rows, offsets_buffer, text_buffer)
        return Lines({}, payloads, pa.nulls(rows, pa.string()), first_line=1)
    lines = pa.Array.from_buffers(pa.large_binary(), rows, [None, offsets_buffer, text_buffer])
    mask = np.zeros(rows, dtype=bool)
    mask[list(replaced)] = True
    replacements = pa.array(list(replaced.values()), pa.large_binary())
    fixed = pc.replace_with_mask(lines, pa.array(mask), replacements)
    return Lines({}, fixed.cast(pa.large_string()), pa.array(errors, pa.string()), 1)


def _flag_invalid_json(rows: pa.Table) -> pa.Table:
    """DuckDB's vectorised ``json_valid`` over the whole batch; only the few invalid lines
    go through Python's parser, for an error message that says where it broke."""
    connection = duckdb.connect()
    try:
        connection.register("payloads", rows.select(["payload"]))
        relation = connection.sql(
            "SELECT coalesce(json_valid(payload) AND starts_with(ltrim(payload), '{'), false) "
            "AS ok FROM payloads"
        )
        assert relation is not None
        valid = relation.to_arrow_table().column("ok").combine_chunks()
    finally:
        connection.close()
    errors = rows.column("_parse_error")
    invalid = pc.and_(pc.invert(valid), pc.is_null(errors))
    positions = np.flatnonzero(invalid.to_numpy(zero_copy_only=False))
    if not len(positions):
        return rows
    messages = errors.to_pylist()
    payload = rows.column("payload")
    for row in positions.tolist():
        messages[row] = _json_error(payload[row].as_py())
    index = rows.schema.get_field_index("_parse_error")
    return rows.set_column(index, "_parse_error", pa.array(messages, pa.string()))


def _json_error(payload: str) -> str:
    try:
        value = json.loads(payload)
    except json.JSONDecodeError as error:
        return f"invalid JSON: {error.msg} at char {error.pos}"
    return f"not a JSON object: {type(value).__name__}"


def _csv_lines(feed: Feed, name: str, content: bytes) -> Lines:
    """The header is checked, then left out; line numbers still count it, so
    ``_line_number`` points at the line in the file."""
    text = content.decode("utf-8", errors="backslashreplace")
    lines = text.splitlines()
    header = next(csv.reader([lines[0]])) if lines else []
    if tuple(header) != feed.columns:
        raise HeaderMismatchError(
            f"{name}: header {','.join(header)} is not the expected {','.join(feed.columns)}"
        )
    parsed: list[list[str | None]] = [[] for _ in feed.columns]
    payloads: list[str] = []
    errors: list[str | None] = []
    for line in lines[1:]:
        values = next(csv.reader(io.StringIO(line)), [])
        payloads.append(line)
        if len(values) == len(feed.columns):
            errors.append(None)
            for column, value in zip(parsed, values, strict=True):
                column.append(value)
        else:
            errors.append(f"expected {len(feed.columns)} fields, got {len(values)}")
            for column in parsed:
                column.append(None)
    return Lines(
        {
            field_name: pa.array(values, pa.string())
            for field_name, values in zip(feed.columns, parsed, strict=True)
        },
        pa.array(payloads, pa.large_string()),
        pa.array(errors, pa.string()),
        first_line=2,
    )
