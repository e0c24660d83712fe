"""CSV in, CSV out: the one place that reads and writes CSV bodies. No FastAPI here.

Errors name the CSV line (1-based, the header is line 1, as a text editor counts) and the column
(1-based, with its header name), e.g. ``line 7, column 3 ('petal_length'): 'abc' is not a number``.
Blank lines are skipped. Fields may be quoted as usual (RFC 4180); the delimiter is a comma.
Names are read stripped of surrounding spaces, and a model's feature names are compared stripped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .engine.model import INT64_MAX, INT64_MIN, NOT_A_LABEL
from .errors import CsvEncodingError, CsvError, LimitExceeded

MAX_NAME_LENGTH = 200  # the same limit as JSON's feature_names and string labels

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False}

#: Field separators other tools write (Excel in many locales, TSV): named when a header reads as
#: one column, instead of only saying that a column is missing.
OTHER_DELIMITERS = (";", "\t", "|")
#: Errors that list names (a model's features, a header's columns) show at most this many.
MAX_LISTED_NAMES = 20


def delimiter_hint(header: Sequence[str]) -> str:
    """``"; ..."`` naming the delimiter a header read as one column seems to use; else ``""``."""
    if len(header) == 1:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in header[0]:
                return (
                    f"; fields must be separated by commas, and this header seems to use "
                    f"{delimiter!r}"
                )
    return ""


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED_NAMES])
    rest = len(names) - MAX_LISTED_NAMES
    return f"{shown}, and {rest} more" if rest > 0 else shown


@dataclass(frozen=True)
class Table:
    """A parsed CSV body: the header, the data rows and each row's line number in the body."""

    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column_label(self, j: int) -> str:
        return f"column {j + 1} ({self.header[j]!r})"

    def delimiter_hint(self) -> str:
        return delimiter_hint(self.header)


@dataclass(frozen=True)
class TrainingTable:
    """What ``POST /train`` needs from a CSV body."""

    X: np.ndarray  # (n_samples, n_features) float64
    labels: list[Any]  # all int or all str
    feature_names: list[str]
    label_name: str
    raw_labels: list[str] | None = None  # the label cells as written (stripped)


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            if row and any(field.strip() for field in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num}: malformed CSV ({exc})") from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def read_table(body: bytes, *, max_features: int | None = None, label_columns: int = 0) -> Table:
    """Header and rows of a CSV body, after checking that every row has as many fields as the
    header. A UTF-8 byte-order mark is allowed.

    ``LimitExceeded`` when the header has more than ``max_features`` columns besides its
    ``label_columns``: checked first, before any name is compared or any row read.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvEncodingError(
            f"body: is not UTF-8 text (byte {exc.start} is {body[exc.start]:#04x})"
        ) from None
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise CsvError("body: the CSV is empty; send a header row and at least one data row")
    header_line, raw_header = first
    n_features = len(raw_header) - label_columns
    if max_features is not None and n_features > max_features:
        raise LimitExceeded(
            f"header: {n_features} feature columns is more than the limit of {max_features} "
            "(MAX_FEATURES)"
        )
    header = [name.strip() for name in raw_header]
    first_column: dict[str, int] = {}  # a name's first column: linear, where a list was quadratic
    for j, name in enumerate(header):
        if not name:
            pandas = (
                "; a CSV written by pandas with its index starts so: write it with "
                "to_csv(index=False)"
                if j == 0
                else ""
            )
            raise CsvError(f"line {header_line}, column {j + 1}: the header name is empty{pandas}")
        if len(name) > MAX_NAME_LENGTH:
            raise CsvError(
                f"line {header_line}, column {j + 1}: the header name is longer than "
                f"{MAX_NAME_LENGTH} characters"
            )
        if name in first_column:
            raise CsvError(
                f"line {header_line}, column {j + 1}: the header name {name!r} is also "
                f"column {first_column[name] + 1}; names must be distinct"
            )
        first_column[name] = j
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, row in records:
        if len(row) != len(header):
            raise CsvError(
                f"line {line}: has {_count(len(row), 'field')} but the header "
                f"(line {header_line}) has {len(header)}{delimiter_hint(header)}"
            )
        rows.append(row)
        lines.append(line)
    if not rows:
        raise CsvError("body: the CSV has a header but no data rows")
    return Table(header=header, rows=rows, lines=lines)


def _numbers(table: Table, columns: Sequence[int]) -> np.ndarray:
    """The given columns as a float64 array of shape (n_rows, len(columns)), finite numbers only."""
    cells = [[row[j] for j in columns] for row in table.rows]
    try:
        X = np.array(cells, dtype=np.str_).astype(np.float64)  # fast path, in C
    except ValueError:
        X = np.empty((len(cells), len(columns)))
        for i, row in enumerate(cells):  # slow path: Python's float(), naming the first bad cell
            for k, cell in enumerate(row):
                try:
                    X[i, k] = float(cell)
                except ValueError:
                    where = f"line {table.lines[i]}, {table.column_label(columns[k])}"
                    if not cell.strip():
                        raise CsvError(f"{where}: is empty; expected a number") from None
                    hint = table.delimiter_hint()
                    raise CsvError(f"{where}: {cell.strip()!r} is not a number{hint}") from None
    finite = np.isfinite(X)
    if not finite.all():
        i, k = np.argwhere(~finite)[0]
        where = f"line {table.lines[i]}, {table.column_label(columns[k])}"
        raise CsvError(f"{where}: {cells[i][k].strip()!r} is not a finite number")
    return X


def read_training(
    body: bytes, *, label: str | None = None, max_features: int | None = None
) -> TrainingTable:
    """Features and labels from a CSV body with a header row.

    Parameters
    ----------
    body : bytes
        UTF-8 CSV with a header row.
    label : str, optional
        Name of the label column; the last column when not given. Every other column is a
        feature, named by its header.
    max_features : int, optional
        Most feature columns (``MAX_FEATURES``); more is ``LimitExceeded``, found from the header.

    Labels are read as a JSON body would carry them (``class_labels``).
    """
    table = read_table(body, max_features=max_features, label_columns=1)
    if label is None:
        j_label = len(table.header) - 1
    elif label.strip() in table.header:  # stripped, as the header is
        j_label = table.header.index(label.strip())
    else:
        raise CsvError(
            f"query.label: there is no column {label!r} in the header; the columns "
            f"are {_listed(table.header)}{table.delimiter_hint()}"
        )
    if len(table.header) < 2:
        raise CsvError(
            "header: needs at least two columns, one or more features and the label"
            + table.delimiter_hint()
        )
    features = [j for j in range(len(table.header)) if j != j_label]
    X = _numbers(table, features)
    raw = [row[j_label].strip() for row in table.rows]
    for i, value in enumerate(raw):
        where = f"line {table.lines[i]}, {table.column_label(j_label)}"
        if not value:
            raise CsvError(f"{where}: the label is empty")
        if len(value) > MAX_NAME_LENGTH:
            raise CsvError(f"{where}: the label is longer than {MAX_NAME_LENGTH} characters")
    labels = class_labels(raw, lambda i: f"line {table.lines[i]}, {table.column_label(j_label)}")
    return TrainingTable(
        X=X,
        labels=labels,
        feature_names=[table.header[j] for j in features],
        label_name=table.header[j_label],
        raw_labels=raw,
    )


def class_labels(raw: list[str], where: Callable[[int], str]) -> list[Any]:
    """The label column's cells (stripped, not empty) as JSON would carry them: integers when
    every cell is a number, whole-number decimals included (``1.0``: pandas writes a column of
    integer classes with a missing value so), and a number that is not whole refused as in JSON;
    booleans when every cell is ``true`` or ``false`` in any case (``True``: pandas); strings
    otherwise. ``where(i)`` names row ``i`` in an error."""
    if all(_NUMBER.fullmatch(v) for v in raw):
        labels: list[Any] = []
        for i, v in enumerate(raw):
            if _INTEGER.fullmatch(v):
                number = int(v)
            else:
                f = float(v)
                if not f.is_integer():  # also an overflow to infinity
                    raise CsvError(f"{where(i)}: {v} {NOT_A_LABEL}")
                number = int(f)
            if not INT64_MIN <= number <= INT64_MAX:
                raise CsvError(
                    f"{where(i)}: {v} is out of range; integer labels must fit in 64 bits"
                )
            labels.append(number)
        return labels
    if all(v.lower() in _BOOLEANS for v in raw):
        return [_BOOLEANS[v.lower()] for v in raw]
    return raw


def read_features(
    body: bytes,
    *,
    n_features: int,
    feature_names: Sequence[str] | None,
    max_features: int | None = None,
) -> np.ndarray:
    """Rows to classify from a CSV body with a header row, as float64 of shape (n, n_features).

    When the model has feature names, the header must name exactly those columns, in any
    order (they are put in the model's order); names are compared without surrounding spaces.
    Otherwise it must have ``n_features`` columns. More than ``max_features`` columns is
    ``LimitExceeded`` (``MAX_FEATURES``, as for JSON rows).
    """
    table = read_table(body, max_features=max_features)
    if feature_names is None:
        if len(table.header) != n_features:
            raise CsvError(
                f"header: has {len(table.header)} columns but the model expects {n_features} "
                f"features{table.delimiter_hint()}"
            )
        return _numbers(table, range(n_features))
    # A header's names are read stripped: a model's names are compared the same way (JSON
    # training keeps names as sent, " age" included).
    wanted: dict[str, int] = {}
    for k, name in enumerate(feature_names):
        key = name.strip()
        if key in wanted:
            raise CsvError(
                f"header: this model's features {feature_names[wanted[key]]!r} and {name!r} "
                "differ only by surrounding spaces, which a CSV header cannot tell apart; send "
                "its rows as JSON"
            )
        wanted[key] = k
    for j, name in enumerate(table.header):
        if name not in wanted:
            raise CsvError(
                f"header: {table.column_label(j)} is not a feature of this model; its features "
                f"are {_listed(feature_names)}{table.delimiter_hint()}"
            )
    column = {name: j for j, name in enumerate(table.header)}  # names are distinct
    missing = [name for name in feature_names if name.strip() not in column]
    if missing:
        raise CsvError(
            f"header: the model's feature(s) {_listed([repr(m) for m in missing])} have no column"
        )
    return _numbers(table, [column[name.strip()] for name in feature_names])


def order_columns(X: np.ndarray, header: Sequence[str], feature_names: Sequence[str]) -> np.ndarray:
    """``X``'s columns (named by ``header``) in the model's order of ``feature_names``, compared
    without surrounding spaces as ``read_features`` does; ``CsvError`` naming what differs."""
    column = {name.strip(): j for j, name in enumerate(header)}
    wanted = [name.strip() for name in feature_names]
    extra = [name for name in column if name not in set(wanted)]
    if extra:
        raise CsvError(
            f"header: {_listed([repr(e) for e in extra])} not a feature of this model; its "
            f"features are {_listed(feature_names)}"
        )
    missing = [name for name in feature_names if name.strip() not in column]
    if missing:
        raise CsvError(
            f"header: the model's feature(s) {_listed([repr(m) for m in missing])} have no column"
        )
    return X[:, [column[name] for name in wanted]]


def write_predictions(classes: Sequence[Any], labels: Sequence[Any], proba: np.ndarray) -> bytes:
    """CSV with a header: ``prediction``, then ``proba_<class>`` for each class, one row per input.

    Probabilities are written in shortest round-trip form (``repr``), so nothing is lost.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prediction", *(f"proba_{c}" for c in classes)])
    rows = zip(labels, proba.tolist(), strict=True)
    writer.writerows([label, *map(repr, p)] for label, p in rows)
    return out.getvalue().encode()
