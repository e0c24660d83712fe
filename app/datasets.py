"""Datasets: an uploaded CSV or Parquet file parsed once into a column-wise file that trainings
read in row blocks, memory-mapped. No web framework here; runs in a child process (parsing a
million rows must not hold a server worker's GIL).

The stored form is an uncompressed Arrow IPC file (readable by pyarrow, pandas, polars...).
As for a CSV training body, one column is the label (``?label=``, default the last) and every
other column is a feature:

- feature columns are numbers, stored as float64; a missing cell (empty, ``NA``, ``NaN``,
  ``null``...) is stored as NaN and counted in the column's ``missing`` (a training refuses a
  feature column with missing values, naming it); integers are exact up to 2**53. A cell that is
  neither a number nor missing, or is infinite, is refused with its line and column (the
  wording of ``app.csv_io``), and so is a row without the header's number of fields;
- the label column is kept as text, as given; a training reads it as ``app.csv_io`` reads a
  CSV label (integers when every cell is one, then booleans, else strings). A training may name
  another (numeric) column as its label.

Parsing is pyarrow's CSV reader (``pyarrow.csv.open_csv``, streaming; ``PARSE_THREADS``) or its
Parquet reader; a CSV may be gzip-compressed. What is written is bounded by
``MAX_DATASET_BYTES`` too (a small gzip body can inflate to a large file).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from model_store import (
    CorruptDataset,
    FileDatasetStore,
    GrowingFile,
    Record,
    Upload,
    new_model_id,
)

from .csv_io import MAX_NAME_LENGTH, delimiter_hint
from .errors import CsvEncodingError, CsvError, InvalidRequest, LimitExceeded

CSV = "csv"
PARQUET = "parquet"
#: Bytes pyarrow's CSV reader parses per block (a row must fit in one).
BLOCK_BYTES = 1 << 20
#: pyarrow's reader parses blocks on several threads only where there are more than two cores:
#: on two (this machine), the upload being received takes one and a parse's second thread
#: cost more CPU than it saved time (1M x 20, 368 MiB: 1.5-1.6 s of CPU and 3.6-5.4 s wall on
#: one thread with 1 MiB blocks, against 2.2-2.9 s and 5.2-7.1 s on two with 8 MiB; a loaded
#: machine, docs/DEVELOPING.md).
PARSE_THREADS = (os.cpu_count() or 1) > 2
#: Rows per record batch of a Parquet file read.
PARQUET_BATCH_ROWS = 1 << 17

FLOAT = "float64"
BOOL = "bool"
STRING = "string"

_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


def sniff(path: str) -> tuple[str, bool]:
    """``(format, gzip)`` of a file from its first bytes (multipart uploads say neither)."""
    with GrowingFile(path) as raw, io.BufferedReader(raw) as fh:
        head = fh.read(4)
    if head.startswith(_PARQUET_MAGIC):
        return PARQUET, False
    return CSV, head.startswith(_GZIP_MAGIC)


# ---- ingest ----------------------------------------------------------------------------------


@dataclass
class _ColumnStats:
    name: str
    dtype: str
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    count: int = 0
    missing: int = 0

    def add(self, column: pa.Array) -> bool:
        """Count a batch's values in; whether they are all finite."""
        nulls = column.null_count
        self.missing += nulls
        if self.dtype != FLOAT:
            return True
        n = len(column) - nulls
        if n == 0:
            return True
        lo, hi = (v.as_py() for v in pc.min_max(column).values())
        self.minimum = min(self.minimum, lo)
        self.maximum = max(self.maximum, hi)
        self.total += pc.sum(column).as_py()
        self.count += n
        return not (math.isinf(lo) or math.isinf(hi))

    def record(self) -> dict[str, Any]:
        numeric = self.dtype == FLOAT and self.count > 0
        return {
            "name": self.name,
            "dtype": self.dtype,
            "min": self.minimum if numeric else None,
            "max": self.maximum if numeric else None,
            "mean": self.total / self.count if numeric else None,
            "missing": self.missing,
        }


def _dtype(t: pa.DataType) -> str:
    return FLOAT if pa.types.is_float64(t) else BOOL if pa.types.is_boolean(t) else STRING


def _check_names(names: Sequence[str], where: str) -> list[str]:
    """Header names stripped and checked as ``app.csv_io`` checks a training CSV's."""
    out: list[str] = []
    first: dict[str, int] = {}
    for j, raw in enumerate(names):
        name = raw.strip()
        if not name:
            raise CsvError(f"{where}, column {j + 1}: the header name is empty")
        if len(name) > MAX_NAME_LENGTH:
            raise CsvError(
                f"{where}, column {j + 1}: the header name is longer than {MAX_NAME_LENGTH} "
                "characters"
            )
        if name in first:
            raise CsvError(
                f"{where}, column {j + 1}: the header name {name!r} is also column "
                f"{first[name] + 1}; names must be distinct"
            )
        first[name] = j
        out.append(name)
    return out


#: What pyarrow's readers raise on a file they cannot read (OSError: a bad gzip stream too;
#: UnicodeDecodeError: header names that are not UTF-8).
_READ_ERRORS = (pa.ArrowException, OSError, EOFError, UnicodeDecodeError)


def _csv_stream(path: str, compressed: bool) -> pa.NativeFile:
    stream = pa.PythonFile(io.BufferedReader(GrowingFile(path), 1 << 20), mode="r")
    return pa.CompressedInputStream(stream, "gzip") if compressed else stream


def _open_csv(
    path: str, compressed: bool, types: dict[str, pa.DataType] | None, *, block: int = BLOCK_BYTES
) -> Any:
    return pacsv.open_csv(
        _csv_stream(path, compressed),
        read_options=pacsv.ReadOptions(block_size=block, use_threads=PARSE_THREADS),
        convert_options=pacsv.ConvertOptions(column_types=types or {}),
    )


def _label_index(names: Sequence[str], label: str | None) -> int:
    """The label column's index: ``label``'s (names are compared stripped), else the last."""
    if label is None:
        return len(names) - 1
    if label.strip() in names:
        return list(names).index(label.strip())
    listed = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
    raise CsvError(
        f"query.label: there is no column {label!r} in the header; the columns are {listed}"
        + delimiter_hint(list(names))
    )


def _schema(names: Sequence[str], j_label: int) -> pa.Schema:
    return pa.schema(
        [pa.field(n, pa.string() if j == j_label else pa.float64()) for j, n in enumerate(names)]
    )


def _csv_batches(
    path: str, compressed: bool, label: str | None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch], Callable[[], CsvError]]:
    """The stored schema, the record batches of a CSV file, and a function that finds the
    first bad cell (``_csv_failure``)."""
    try:
        reader = _open_csv(path, compressed, None)  # for the header
        raw = list(reader.schema.names)
        reader.close()
    except _READ_ERRORS as exc:
        raise _csv_failure(path, compressed, {}, exc) from None
    names = _check_names(raw, "line 1")
    schema = _schema(names, _label_index(names, label))
    types = {r: f.type for r, f in zip(raw, schema, strict=True)}
    try:
        reader = _open_csv(path, compressed, types)  # parses the first block
    except _READ_ERRORS as exc:
        raise _csv_failure(path, compressed, types, exc) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        except _READ_ERRORS as exc:
            raise _csv_failure(path, compressed, types, exc) from None

    return schema, batches(), lambda: _csv_failure(path, compressed, types, None)


def _parquet_batches(path: str, label: str | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    try:
        with GrowingFile(path) as upload:
            upload.wait()
        source = pq.ParquetFile(path)
        arrow_schema = source.schema_arrow
    except _READ_ERRORS as exc:
        raise CsvError(f"body: not a readable Parquet file ({exc})") from None
    names = _check_names(arrow_schema.names, "Parquet schema")
    j_label = _label_index(names, label)
    schema = _schema(names, j_label)
    for j, f in enumerate(arrow_schema):
        t = f.type
        if j != j_label and not (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
        ):
            raise CsvError(
                f"column {j + 1} ({names[j]!r}): is {t}, not numbers; every column but the "
                "label (?label=, default the last) must be numeric"
            )

    def batches() -> Iterator[pa.RecordBatch]:
        offset = 0
        try:
            for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                columns = []
                for j, column in enumerate(batch.columns):
                    target = schema.field(j).type
                    if column.type != target:
                        try:
                            column = pc.cast(column, target)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                            raise CsvError(
                                f"rows {offset + 1}-{offset + batch.num_rows}, column {j + 1} "
                                f"({names[j]!r}): cannot be read as {_dtype(target)} ({exc})"
                            ) from None
                    columns.append(column)
                offset += batch.num_rows
                yield pa.RecordBatch.from_arrays(columns, schema=schema)
        except _READ_ERRORS as exc:
            raise CsvError(f"body: not a readable Parquet file ({exc})") from None

    return schema, batches()


def _first_infinite(column: pa.Array) -> int | None:
    """Index of the first infinite value of a float64 column, if any (only on the error path)."""
    values = column.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values)
    return int(np.argmax(bad)) if bad.any() else None


def ingest(
    store: FileDatasetStore,
    source: str,
    *,
    fmt: str,
    compressed: bool,
    name: str | None,
    label: str | None,
    max_bytes: int,
) -> Record:
    """Parse the uploaded file ``source`` into a new dataset of ``store``; its metadata record.

    Raises ``CsvError`` (a bad cell, named by line and column), ``CsvEncodingError`` (not
    UTF-8), ``LimitExceeded`` (the stored file would pass ``max_bytes``), the store's errors.
    Nothing is kept unless it returns.
    """
    locate: Callable[[], CsvError] | None = None
    if fmt == PARQUET:
        schema, batches = _parquet_batches(source, label)
    else:
        schema, batches, locate = _csv_batches(source, compressed, label)
    stats = [_ColumnStats(f.name, _dtype(f.type)) for f in schema]
    floats = {j for j, f in enumerate(schema) if pa.types.is_float64(f.type)}
    data: Upload = store.temporary("dataset.arrow")
    rows = 0
    try:
        with pa.OSFile(data.path, "wb") as sink, ipc.new_file(sink, schema) as writer:
            for batch in batches:
                columns = list(batch.columns)
                for j, column in enumerate(columns):
                    if not stats[j].add(column):  # an infinity (its min or max): name it
                        if locate is not None:
                            raise locate()  # the cell as written, at its line
                        at = _first_infinite(column)
                        raise CsvError(
                            f"row {rows + (at or 0) + 1}, column {j + 1} ({schema.names[j]!r}): "
                            f"{column[at or 0].as_py()!r} is not a finite number"
                        )
                    if j in floats and column.null_count:
                        # NaN, not a validity bitmap: the column reads back as a plain array
                        columns[j] = pc.fill_null(column, math.nan)
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                rows += batch.num_rows
                if sink.tell() > max_bytes:
                    raise LimitExceeded(
                        f"body: the dataset takes more than {max_bytes} bytes once parsed "
                        "(setting MAX_DATASET_BYTES)"
                    )
        if rows == 0:
            raise CsvError("body: the file has a header but no data rows")
        record: Record = {
            "id": new_model_id(),
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "rows": rows,
            "columns": [s.record() for s in stats],
            "bytes": os.path.getsize(data.path),
            "uploaded_bytes": os.path.getsize(source),
            "format": "arrow-ipc",
        }
        store.commit(record, data)
    finally:
        data.close()  # a no-op once committed (renamed away)
    return record


# ---- locating a bad cell ---------------------------------------------------------------------


def _csv_failure(
    path: str, compressed: bool, types: dict[str, pa.DataType], exc: Exception | None
) -> CsvError:
    """The error naming the line and column pyarrow stopped at (it names neither exactly):
    the file is read again with Python's csv module, as ``app.csv_io`` reads a training body,
    up to the first bad line. Only on this error path."""
    numeric = {name for name, t in types.items() if pa.types.is_float64(t)}
    header: list[str] | None = None
    reader: Any = None
    try:
        with (
            io.BufferedReader(GrowingFile(path)) as raw,
            gzip.GzipFile(fileobj=raw) if compressed else raw as binary,
        ):
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, strict=True)
            for row in reader:
                if not row or not any(f.strip() for f in row):
                    continue
                line = reader.line_num
                if header is None:
                    header = row
                    continue
                if len(row) != len(header):
                    return CsvError(
                        f"line {line}: has {len(row)} fields but the header (line 1) has "
                        f"{len(header)}{delimiter_hint([h.strip() for h in header])}"
                    )
                for j, cell in enumerate(row):
                    if header[j] not in numeric or _is_missing(cell):
                        continue
                    where = f"line {line}, column {j + 1} ({header[j].strip()!r})"
                    try:
                        value = float(cell)
                    except ValueError:
                        return CsvError(f"{where}: {cell.strip()!r} is not a number")
                    if not math.isfinite(value):
                        return CsvError(f"{where}: {cell.strip()!r} is not a finite number")
    except UnicodeDecodeError:
        where = "in its header" if header is None else f"after line {reader.line_num}"
        return CsvEncodingError(f"body: is not UTF-8 text ({where})")
    except (OSError, EOFError) as e:
        return CsvError(f"body: cannot be read as {'gzip ' if compressed else ''}CSV ({e})")
    except csv.Error as e:
        return CsvError(f"body: malformed CSV ({e})")
    message = str(exc).strip() if exc is not None else "no bad cell found"
    if "Empty CSV file" in message:
        return CsvError("body: the CSV is empty; send a header row and at least one data row")
    return CsvError(f"body: cannot be read as CSV ({message})")


#: pyarrow's default null markers: such a cell is a missing value, not a bad one.
_NULLS = frozenset(pacsv.ConvertOptions().null_values)


def _is_missing(cell: str) -> bool:
    return cell in _NULLS


# ---- reading for a training ------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingColumns:
    """What a training needs from a dataset: the feature columns batch by batch (1-D float64
    arrays mapped from the file, no copy), and the label column."""

    batches: list[list[np.ndarray]]
    labels: np.ndarray
    feature_names: list[str]
    rows: int


def _label_values(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A label column as ``app.csv_io.class_labels`` reads CSV labels (stripped): int64 when
    every cell is an integer, floats when every cell is a number (the engine refuses those that
    are not whole), booleans when every cell is true or false in any case, else strings."""
    if pa.types.is_float64(column.type):
        return np.concatenate([c.to_numpy(zero_copy_only=True) for c in column.chunks])
    text = pc.utf8_trim_whitespace(column)
    empty = pc.equal(pc.utf8_length(text), 0)
    if pc.any(empty).as_py():
        at = pc.index(empty, True).as_py()
        raise InvalidRequest(
            [{"field": "label", "message": f"line {at + 2}, column {name!r}: the label is empty"}]
        )
    try:
        integers = pc.cast(text, pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    else:  # the smallest integer type that holds them: 10M labels in 10 MB, not 80
        lo, hi = int(integers.min()), int(integers.max())
        return integers.astype(np.result_type(np.min_scalar_type(lo), np.min_scalar_type(hi)))
    try:
        return pc.cast(text, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    lower = pc.utf8_lower(text)
    truth = pc.equal(lower, "true")
    if pc.all(pc.or_(truth, pc.equal(lower, "false"))).as_py():
        return truth.to_numpy()
    return np.asarray(text.to_pylist(), dtype=object)


def read_training_columns(
    store: FileDatasetStore, dataset_id: str, *, label: str, features: Sequence[str] | None
) -> TrainingColumns:
    """The dataset's columns for a training: ``InvalidRequest`` naming ``label`` or
    ``features[i]`` when a column is unknown, not numeric or has missing values."""
    record = store.load(dataset_id)
    path = store.data_path(dataset_id)
    try:
        table = ipc.open_file(pa.memory_map(path, "r")).read_all()
    except _READ_ERRORS as exc:
        raise CorruptDataset(dataset_id, f"its data file cannot be read ({exc})") from None
    described = {c["name"]: c for c in record["columns"]}
    names = list(table.column_names)
    listed = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
    if label not in described:
        raise InvalidRequest(
            [
                {
                    "field": "label",
                    "message": f"the dataset has no column {label!r}; its columns are {listed}",
                }
            ]
        )
    wanted = [n for n in names if n != label] if features is None else list(features)
    errors: list[dict[str, str]] = []
    for i, name in enumerate(wanted):
        field = f"features[{i}]" if features is not None else "features"
        column = described.get(name)
        if column is None:
            errors.append(
                {
                    "field": field,
                    "message": f"the dataset has no column {name!r}; its columns are {listed}",
                }
            )
        elif name == label:
            errors.append({"field": field, "message": f"{name!r} is the label column"})
        elif column["dtype"] != FLOAT:
            errors.append(
                {
                    "field": field,
                    "message": f"column {name!r} is the dataset's label column, kept as text "
                    "(?label= when it was uploaded); it cannot be a feature",
                }
            )
        elif column["missing"]:
            errors.append(
                {
                    "field": field,
                    "message": f"column {name!r} has {column['missing']} missing values; "
                    "fill or drop them before uploading",
                }
            )
    if not wanted:
        errors.append({"field": "features", "message": "no feature column besides the label"})
    if errors:
        raise InvalidRequest(errors)
    if described[label]["missing"]:
        raise InvalidRequest(
            [
                {
                    "field": "label",
                    "message": f"column {label!r} has {described[label]['missing']} missing values",
                }
            ]
        )
    batches = [
        [batch.column(name).to_numpy(zero_copy_only=True) for name in wanted]
        for batch in table.to_batches()
        if batch.num_rows
    ]
    labels = _label_values(table.column(label), label)
    # pyarrow's allocator keeps what the conversion freed for later use: give it back, the
    # fit needs that memory (measured: ~250 MB for 10M text labels)
    pa.default_memory_pool().release_unused()
    return TrainingColumns(
        batches=batches, labels=labels, feature_names=wanted, rows=int(table.num_rows)
    )
