"""``logreg``: the service from a terminal.

    logreg train data.csv --label result --name exam --param l2=0.001 --param solver=newton
    logreg predict exam@champion new.csv -o predictions.csv
    logreg evaluate exam@champion test.csv --label result --threshold 0.4
    logreg evaluations exam@champion
    logreg report exam@champion --open
    logreg models
    logreg model exam:2
    logreg delete MODEL
    logreg names
    logreg name exam
    logreg alias set exam champion 2
    logreg alias delete exam champion
    logreg alias history exam champion
    logreg rollback exam champion
    logreg audit --since 1h
    logreg upload big.csv.gz --label result --name big   # a dataset: upload once
    logreg datasets
    logreg train data.csv --label result            # a training job: prints its id at once
    logreg train data.csv --label result --wait     # follows the job with a progress bar
    logreg jobs --status running --watch
    logreg job JOB_ID
    logreg cancel JOB_ID

A model is named by a reference: its id, ``NAME`` (the newest version), ``NAME:VERSION``,
``NAME@ALIAS`` or ``latest``.

``--url`` (or ``$LOGREG_URL``, default ``http://127.0.0.1:8000``) and ``--api-key`` (or
``$LOGREG_API_KEY``). Tables and an upload progress bar with the ``[cli]`` extra (rich), plain
text without it; ``--json`` prints the service's answers as JSON for scripts.

Exit codes: 0 done, 1 the service refused (its message on stderr; a job that failed or was
cancelled too), 2 usage, 3 the service could not be reached, 130 Ctrl-C while waiting for a job
(the job goes on: ``logreg cancel JOB_ID`` stops it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from . import _core
from ._client import Client, __version__
from ._exceptions import JobCancelled, ServiceError, ServiceUnreachable
from ._jobs import Job, JobProgressCallback
from ._models import (
    JOB_STATUSES,
    AliasChange,
    Dataset,
    Evaluation,
    JobState,
    ModelDetail,
    ModelSummary,
)

OK, REFUSED, USAGE, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_URL = "http://127.0.0.1:8000"
REF_HELP = "a model reference: an id, NAME, NAME:VERSION, NAME@ALIAS or latest"
#: Table columns whose values are copied into other commands (and their widths): never cut.
UNCUT = {"id": 32, "request": 32, "time": 19, "changed": 19}
#: ``logreg train`` uploads a CSV this large as a dataset first (half the service's default
#: MAX_BODY_BYTES: a CSV body is held in the service's memory, a dataset streams to disk).
DATASET_FROM_BYTES = 50 * 1024 * 1024


class UsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


class Interrupted(Exception):
    """Ctrl-C while waiting for a job (exit code 130): the job goes on."""


# --- output: rich when installed, plain text otherwise ------------------------------------------


class PlainOutput:
    """Aligned columns on stdout; no progress bar."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        for line in [list(columns), *rows]:
            cells = (v.ljust(w) for v, w in zip(line, widths, strict=True))
            print("  ".join(cells).rstrip(), file=self.out)

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        width = max(len(k) for k, _ in pairs)
        for key, value in pairs:
            print(f"{key.ljust(width)}  {value}", file=self.out)

    @contextlib.contextmanager
    def progress(self, what: str) -> Iterator[Callable[[int, int], None] | None]:
        yield None

    @contextlib.contextmanager
    def job_progress(self, what: str) -> Iterator[JobProgressCallback | None]:
        yield None

    def live(
        self,
    ) -> contextlib.AbstractContextManager[
        Callable[[str, Sequence[str], Sequence[Sequence[str]]], None]
    ]:
        """Tables shown one after another (``jobs --watch``): here printed, blank-line apart."""

        def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
            self.table(title, columns, rows)
            print(file=self.out, flush=True)

        return contextlib.nullcontext(show)


class RichOutput(PlainOutput):
    def __init__(self, out: TextIO) -> None:
        from rich.console import Console

        super().__init__(out)
        self.console = Console(file=out)
        self.err = Console(stderr=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if not self.console.is_terminal:  # piped: plain columns, whole values, for scripts
            super().table(title, columns, rows)
            return
        from rich.table import Table

        table = Table(title=title)
        for column in columns:  # ids and times are copied from here: never cut
            width = UNCUT.get(column)
            table.add_column(column, no_wrap=width is not None, min_width=width)
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    @contextlib.contextmanager
    def progress(self, what: str) -> Iterator[Callable[[int, int], None] | None]:
        if not self.err.is_terminal:
            yield None
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        with Progress(TextColumn(what), BarColumn(), DownloadColumn(), console=self.err) as bar:
            task = bar.add_task(what, total=None)
            yield lambda sent, total: bar.update(task, completed=sent, total=total)

    @contextlib.contextmanager
    def job_progress(self, what: str) -> Iterator[JobProgressCallback | None]:
        if not self.err.is_terminal:
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
        )
        with Progress(*columns, console=self.err) as bar:
            task = bar.add_task(what, total=None, note="")

            def show(state: JobState) -> None:
                bar.update(task, **job_bar(state))

            yield show

    def live(
        self,
    ) -> contextlib.AbstractContextManager[
        Callable[[str, Sequence[str], Sequence[Sequence[str]]], None]
    ]:
        if not self.console.is_terminal:
            return super().live()
        return self._live()

    @contextlib.contextmanager
    def _live(self) -> Iterator[Callable[[str, Sequence[str], Sequence[Sequence[str]]], None]]:
        from rich.live import Live
        from rich.table import Table

        with Live(console=self.console, auto_refresh=False) as live:

            def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
                table = Table(title=title)
                for column in columns:
                    width = UNCUT.get(column)
                    table.add_column(column, no_wrap=width is not None, min_width=width)
                for row in rows:
                    table.add_row(*row)
                live.update(table, refresh=True)

            yield show


def make_output(out: TextIO) -> PlainOutput:
    try:
        return RichOutput(out)
    except ImportError:
        return PlainOutput(out)


# --- commands ------------------------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v``: ``v`` read as JSON when it is JSON (``max_iter=2000``, ``standardize=false``,
    ``class_weight={"a":2}``), else the string (``solver=newton``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def parse_label(text: str) -> Any:
    """A class label as the service reads a query's: a number or ``true``/``false`` as JSON,
    else the string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, bool)) else text


def parse_since(text: str) -> str:
    """``--since``: an ISO 8601 time (``2026-12-01T10:00:00Z``; without an offset, UTC), or a
    time ago: ``90s``, ``30m``, ``2h``, ``7d``."""
    ago = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if ago:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[ago[2]]
        when = datetime.now(UTC) - timedelta(**{unit: int(ago[1])})
        return when.isoformat(timespec="seconds")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give 2026-12-01T10:00:00Z, or 30m, 2h, 7d ago"
        ) from None
    return text


def when(t: datetime) -> str:
    """A time in UTC to the second, as ``--since`` takes it back."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def name_version(name: str | None, version: int | None) -> str:
    """``exam:2`` (a reference to that version), or the name alone."""
    if name is None:
        return ""
    return name if version is None else f"{name}:{version}"


def summary_fields(m: ModelSummary) -> list[tuple[str, str]]:
    t = m.training
    pairs = [
        ("id", m.id),
        ("name", name_version(m.name, m.version)),
        ("created", m.created_at.isoformat(timespec="seconds")),
        ("classes", ", ".join(map(str, m.classes))),
        ("features", ", ".join(m.feature_names or []) or str(m.n_features)),
        ("solver", f"{t.solver}, {t.iterations} iterations, converged: {t.converged}"),
        ("accuracy", f"{t.accuracy:.4f} on {t.n_samples} training rows"),
    ]
    pairs += [("warning", w) for w in t.warnings]
    return pairs


def detail_fields(m: ModelDetail) -> list[tuple[str, str]]:
    pairs = summary_fields(m)
    settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in m.params.items())
    pairs.append(("params", settings))
    if m.parameters is not None:
        p = m.parameters
        pairs.append(("multiclass", p.multiclass))
        pairs.append(("intercept", ", ".join(f"{b:.6g}" for b in p.intercept)))
        for i, row in enumerate(p.coef):
            pairs.append((f"coef[{i}]", ", ".join(f"{w:.6g}" for w in row)))
    if m.statistics_note:
        pairs.append(("statistics", m.statistics_note))
    return pairs


def cmd_train(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    """A training job (``Prefer: respond-async``): its id at once, or with ``--wait`` its model
    once it ends, a progress bar meanwhile. A service without jobs trains at once: the model."""
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    params = dict(args.param or [])
    if args.dataset or through_dataset(path):
        with out.progress(f"uploading {path.name}") as progress:
            dataset = client.upload(path, label=args.label, name=args.name, progress=progress)
        print(f"dataset {dataset.id} ({dataset.rows} rows)", file=sys.stderr)
        label = _core.dataset_label(dataset, args.label)
        job = client.submit_dataset(dataset.id, label=label, name=args.name, **params)
    else:
        with out.progress(f"uploading {path.name}") as progress:
            job = client.submit_csv(
                path, label=args.label, name=args.name, progress=progress, **params
            )
    if job.state is not None and not args.wait:
        print(json.dumps(job.state.raw) if args.json else job.state.id, file=out.out)
        return
    model = wait_for(job, out)
    if args.json:
        print(json.dumps(model.raw), file=out.out)
    else:
        out.fields(summary_fields(model))


def through_dataset(path: Path) -> bool:
    """Whether ``logreg train`` uploads the file as a dataset, then trains on it: Parquet and
    gzip files (only ``POST /datasets`` takes them), and CSV files of ``DATASET_FROM_BYTES``."""
    suffix = path.suffix.lower()
    return suffix in (".parquet", ".gz", ".gzip") or path.stat().st_size >= DATASET_FROM_BYTES


def wait_for(job: Job, out: PlainOutput) -> ModelSummary:
    """Follow a job with a progress bar; Ctrl-C stops waiting, not the job."""
    try:
        with out.job_progress(f"job {job.id}") as progress:
            return job.wait(progress=progress)
    except KeyboardInterrupt:
        raise Interrupted(f"job {job.id} goes on: `logreg cancel {job.id}` stops it") from None


def job_bar(state: JobState) -> dict[str, Any]:
    """A progress bar's fields for a job: iterations of ``max_iter``, the phase and the loss."""
    p = state.progress
    if p is None:
        return {"completed": 0, "total": None, "note": state.status}
    loss = "" if p.loss is None else f", loss {p.loss:.6g}"
    return {"completed": p.iteration, "total": p.max_iter, "note": f"{p.phase}{loss}"}


def job_progress_text(state: JobState) -> str:
    p = state.progress
    if p is None:
        return ""
    of = "" if p.max_iter is None else f"/{p.max_iter}"
    return f"{p.phase} {p.iteration}{of}"


def job_result(state: JobState) -> str:
    if state.error is not None:
        return f"{state.error.status}: {state.error.detail}"
    return optional(state.model_id)


JOB_COLUMNS = ["id", "status", "created", "progress", "model / error"]


def job_row(state: JobState) -> list[str]:
    return [
        state.id,
        state.status,
        when(state.created_at),
        job_progress_text(state),
        job_result(state),
    ]


def cmd_jobs(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    """The jobs, newest first; ``--watch`` shows them again as they change until every one
    listed has ended, or Ctrl-C."""
    if not args.watch:
        page = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
        if args.json:
            print(json.dumps([j.raw for j in page.items]), file=out.out)
        else:
            out.table(
                jobs_title(page.items, page.offset, page.total),
                JOB_COLUMNS,
                [job_row(j) for j in page.items],
            )
        return
    shown: Any = None
    try:
        with out.live() as show:
            while True:
                page = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
                if page.raw != shown:
                    shown = page.raw
                    if args.json:  # one line per change: JSON lines
                        print(json.dumps([j.raw for j in page.items]), file=out.out, flush=True)
                    else:
                        rows = [job_row(j) for j in page.items]
                        show(jobs_title(page.items, page.offset, page.total), JOB_COLUMNS, rows)
                if all(j.final for j in page.items):
                    return
                time.sleep(args.interval)
    except KeyboardInterrupt:
        return


def jobs_title(items: Sequence[JobState], offset: int, total: int) -> str:
    shown = f"{offset + 1}-{offset + len(items)} of {total}" if items else "none"
    return f"jobs ({shown}, newest first, UTC)"


def job_fields(state: JobState) -> list[tuple[str, str]]:
    pairs = [
        ("id", state.id),
        ("status", state.status),
        ("created", when(state.created_at)),
        ("started", "" if state.started_at is None else when(state.started_at)),
        ("finished", "" if state.finished_at is None else when(state.finished_at)),
    ]
    p = state.progress
    if p is not None:
        pairs.append(("progress", job_progress_text(state)))
        if p.loss is not None:
            pairs.append(("loss", f"{p.loss:.6g} (largest gradient {p.grad_norm:.3g})"))
        pairs.append(("rows read", str(p.rows_read)))
        pairs.append(("elapsed", f"{p.elapsed_s:.1f} s"))
    if state.model_id is not None:
        pairs.append(("model", state.model_id))
    if state.error is not None:
        pairs.append(("error", f"{state.error.status}: {state.error.detail}"))
    return pairs


def cmd_job(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    job = client.job(args.job_id)
    assert job.state is not None
    if args.wait:
        model = wait_for(job, out)
        print(json.dumps(model.raw) if args.json else model.id, file=out.out)
    elif args.json:
        print(json.dumps(job.state.raw), file=out.out)
    else:
        out.fields(job_fields(job.state))


def cmd_cancel(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    state = client.cancel(args.job_id)
    if args.json:
        print(json.dumps(state.raw), file=out.out)
    elif state.status == "cancelled":
        print(f"cancelled {state.id}", file=out.out)
    else:  # 202: it stops at its next iteration
        print(f"cancelling {state.id} (still {state.status})", file=out.out)


def cmd_predict(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with out.progress(f"uploading {path.name}") as progress:
        answer = client.predict_csv(args.ref, path, threshold=args.threshold, progress=progress)
    if args.output:
        Path(args.output).write_bytes(answer)
    else:
        out.out.write(answer.decode())
        out.out.flush()


def metric(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def evaluation_fields(e: Evaluation) -> list[tuple[str, str]]:
    """The headline numbers of an evaluation."""
    pairs = [
        ("model", e.model_id),
        ("name", name_version(e.name, e.version)),
        ("rows", str(e.n)),
        ("accuracy", metric(e.accuracy)),
        ("balanced accuracy", metric(e.balanced_accuracy)),
        ("log loss", metric(e.log_loss)),
        ("brier", metric(e.brier)),
        ("roc auc", metric(e.roc_auc)),
        ("average precision", metric(e.average_precision)),
    ]
    if e.roc_auc_weighted is not None and e.roc_auc_weighted != e.roc_auc:
        pairs.insert(-1, ("roc auc (weighted)", metric(e.roc_auc_weighted)))
    if e.positive_label is not None:
        pairs.append(("positive label", str(e.positive_label)))
    if e.threshold is not None:
        pairs.append(("threshold", f"{e.threshold:g}"))
    return pairs


def print_evaluation(e: Evaluation, out: PlainOutput) -> None:
    """Headline metrics, the confusion matrix (rows: true class) and the per-class scores."""
    out.fields(evaluation_fields(e))
    print(file=out.out)
    labels = [str(label) for label in e.confusion_matrix.labels]
    out.table(
        "confusion matrix (rows: true class, columns: predicted)",
        ["true \\ predicted", *labels],
        [
            [label, *(str(count) for count in row)]
            for label, row in zip(labels, e.confusion_matrix.matrix, strict=True)
        ],
    )
    print(file=out.out)
    out.table(
        "per class",
        ["class", "precision", "recall", "f1", "support"],
        [
            [str(c.label), metric(c.precision), metric(c.recall), metric(c.f1), str(c.support)]
            for c in e.per_class
        ],
    )


def cmd_evaluate(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    if args.dataset:  # FILE is a dataset's id
        if args.label is None:
            raise UsageError("--label: name the label column of the dataset")
        evaluation = client.evaluate_dataset(
            args.ref,
            args.file,
            label=args.label,
            threshold=args.threshold,
            positive_label=args.positive_label,
        )
    else:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        with out.progress(f"uploading {path.name}") as progress:
            evaluation = client.evaluate_csv(
                args.ref,
                path,
                label=args.label,
                threshold=args.threshold,
                positive_label=args.positive_label,
                progress=progress,
            )
    if args.json:
        print(json.dumps(evaluation.raw), file=out.out)
    else:
        print_evaluation(evaluation, out)


def cmd_evaluations(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    page = client.evaluations(args.ref)
    if args.json:
        print(json.dumps([e.raw for e in page.items]), file=out.out)
        return
    rows = [
        [
            when(e.evaluated_at),
            str(e.n),
            metric(e.accuracy),
            metric(e.balanced_accuracy),
            metric(e.log_loss),
            metric(e.roc_auc),
            "" if e.threshold is None else f"{e.threshold:g}",
        ]
        for e in page.items
    ]
    out.table(
        f"evaluations of {page.model_id} ({len(rows)}, newest first, UTC; {page.kept} kept)",
        ["time", "rows", "accuracy", "balanced", "log loss", "roc auc", "threshold"],
        rows,
    )


def cmd_report(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    """The report page's address; ``--open``: in a browser. The model is looked up first, so a
    reference that names nothing is an error here rather than a 404 page."""
    model = client.model(args.ref)
    url = client.report_url(model.id if args.pin else args.ref)
    print(json.dumps({"url": url}) if args.json else url, file=out.out)
    if args.open:
        import webbrowser

        if not webbrowser.open(url):
            print("logreg: no browser to open; the address is above", file=sys.stderr)


def size(n: int) -> str:
    """Bytes for a person: ``812 B``, ``1.5 MiB``."""
    value, units = float(n), ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{n} B" if units[0] == "B" else f"{value:.1f} {units[0]}"


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def cmd_upload(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with out.progress(f"uploading {path.name}") as progress:
        dataset = client.upload(path, label=args.label, name=args.name, progress=progress)
    if args.json:
        print(json.dumps(dataset.raw), file=out.out)
        return
    print_dataset(dataset, out)


def print_dataset(dataset: Dataset, out: PlainOutput) -> None:
    out.fields(
        [
            ("id", dataset.id),
            ("name", dataset.name or ""),
            ("rows", str(dataset.rows)),
            ("stored", size(dataset.bytes)),
            ("created", when(dataset.created_at)),
        ]
    )
    rows = [
        [c.name, c.dtype, number(c.min), number(c.max), number(c.mean), str(c.missing)]
        for c in dataset.columns
    ]
    out.table("columns", ["column", "dtype", "min", "max", "mean", "missing"], rows)


def cmd_datasets(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    page = client.datasets(limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps([d.raw for d in page.items]), file=out.out)
        return
    rows = [
        [
            d.id,
            d.name or "",
            d.created_at.strftime("%Y-%m-%d %H:%M"),
            str(d.rows),
            str(len(d.columns)),
            size(d.bytes),
        ]
        for d in page.items
    ]
    shown = f"{page.offset + 1}-{page.offset + len(rows)} of {page.total}" if rows else "none"
    out.table(f"datasets ({shown})", ["id", "name", "created", "rows", "columns", "stored"], rows)
    for bad in page.unreadable:
        print(f"unreadable: {bad}", file=sys.stderr)


def cmd_models(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    page = client.models(limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps([m.raw for m in page.items]), file=out.out)
        return
    rows = [
        [
            m.id,
            name_version(m.name, m.version),
            m.created_at.strftime("%Y-%m-%d %H:%M"),
            ", ".join(map(str, m.classes)),
            str(m.n_features),
            f"{m.training.accuracy:.4f}",
        ]
        for m in page.items
    ]
    shown = f"{page.offset + 1}-{page.offset + len(rows)} of {page.total}" if rows else "none"
    out.table(
        f"models ({shown})", ["id", "name", "created", "classes", "features", "accuracy"], rows
    )
    for bad in page.unreadable:
        print(f"unreadable: {bad}", file=sys.stderr)


def cmd_model(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    model = client.model(args.ref)
    if args.json:
        print(json.dumps(model.raw), file=out.out)
    else:
        out.fields(detail_fields(model))


def cmd_delete(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    client.delete(args.ref)
    if not args.json:
        print(f"deleted {args.ref}", file=out.out)


def cmd_names(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    page = client.names(limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps([n.raw for n in page.items]), file=out.out)
        return
    rows = [
        [
            n.name,
            "" if n.latest_version is None else str(n.latest_version),
            str(n.versions),
            ", ".join(f"{a}={v}" for a, v in sorted(n.aliases.items())),
        ]
        for n in page.items
    ]
    shown = f"{page.offset + 1}-{page.offset + len(rows)} of {page.total}" if rows else "none"
    out.table(f"names ({shown})", ["name", "latest", "versions", "aliases"], rows)


def cmd_name(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    detail = client.name(args.name)
    if args.json:
        print(json.dumps(detail.raw), file=out.out)
        return
    by_version: dict[int, list[str]] = {}
    for alias, version in sorted(detail.aliases.items()):
        by_version.setdefault(version, []).append(alias)
    rows = [
        [
            str(v.version),
            v.id,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            "" if v.training is None else f"{v.training.accuracy:.4f}",
            ", ".join(by_version.get(v.version, [])),
        ]
        for v in detail.items
    ]
    latest = detail.latest_version
    out.table(
        f"{detail.name}: {detail.versions} version(s), latest {latest}",
        ["version", "id", "created", "accuracy", "aliases"],
        rows,
    )


def print_change(change: AliasChange, args: argparse.Namespace, out: PlainOutput) -> None:
    if args.json:
        print(json.dumps(change.raw), file=out.out)
        return
    was = "new" if change.previous_version is None else f"was {change.previous_version}"
    print(f"{change.name}@{change.alias} -> version {change.version} ({was})", file=out.out)


def cmd_alias_set(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    print_change(client.set_alias(args.name, args.alias, args.version), args, out)


def cmd_rollback(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    print_change(client.rollback(args.name, args.alias), args, out)


def cmd_alias_delete(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    client.delete_alias(args.name, args.alias)
    if not args.json:
        print(f"deleted {args.name}@{args.alias}", file=out.out)


def optional(value: object) -> str:
    return "" if value is None else str(value)


def cmd_alias_history(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    history = client.alias_history(args.name, args.alias)
    if args.json:
        print(json.dumps(history.raw), file=out.out)
        return
    rows = [
        [
            when(c.changed_at),
            c.action,
            optional(c.version),
            optional(c.previous_version),
            optional(c.changed_by),
        ]
        for c in history.items
    ]
    out.table(
        f"{history.name}@{history.alias}, newest first, UTC",
        ["changed", "action", "version", "previous", "by"],
        rows,
    )


def cmd_audit(args: argparse.Namespace, client: Client, out: PlainOutput) -> None:
    log = client.audit(args.since, limit=args.limit)
    if args.json:
        print(json.dumps([e.raw for e in log.items]), file=out.out)
        return
    rows = [
        [
            when(e.time),
            e.action,
            " ".join(f"{k}={v}" for k, v in e.target.items() if v is not None),
            e.outcome,
            optional(e.key_id),
            optional(e.request_id),
        ]
        for e in log.items
    ]
    out.table(  # the client's address is in --json
        f"audit log ({len(rows)} entries, oldest first, UTC)",
        ["time", "action", "target", "outcome", "key", "request"],
        rows,
    )


def add_common(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--url``, ``--api-key``, ``--timeout``, ``--json``: before the command (with defaults)
    or after it (``logreg models --json``; there without defaults, so as not to undo a value
    given before the command)."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get("LOGREG_URL") or DEFAULT_URL),
        help=f"the service (default: $LOGREG_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=default(os.environ.get("LOGREG_API_KEY")),
        help="sent as X-API-Key (default: $LOGREG_API_KEY)",
    )
    parser.add_argument(
        "--timeout", type=float, default=default(360.0), help="seconds to wait for each answer"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the answers as JSON"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logreg", description="Train and use models of the logistic-regression service."
    )
    parser.add_argument("--version", action="version", version=f"logreg-client {__version__}")
    add_common(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # a command is a few lines: its parser, its arguments, the function it runs

    p = sub.add_parser("train", parents=[common], help="train a model on a CSV (or Parquet) file")
    p.add_argument("file", help="a CSV file with a header row, a .csv.gz or a .parquet")
    p.add_argument("--label", help="the label column (default: the last)")
    p.add_argument("--name", help="a name for the model")
    p.add_argument(
        "--param",
        action="append",
        type=parse_param,
        metavar="KEY=VALUE",
        help="a training setting, repeatable: --param l2=0.001 --param solver=newton",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the training job to its end (a progress bar) and print the model; "
        "without it, print the job's id at once",
    )
    p.add_argument(
        "--dataset",
        action="store_true",
        help="upload the file as a dataset, then train on it (done anyway for Parquet, gzip "
        f"and files of {DATASET_FROM_BYTES >> 20} MiB or more)",
    )
    p.set_defaults(run=cmd_train)

    p = sub.add_parser(
        "upload", parents=[common], help="upload a CSV, .csv.gz or Parquet file as a dataset"
    )
    p.add_argument("file", help="a CSV file with a header row, a .csv.gz or a .parquet")
    p.add_argument("--label", help="the label column (default: the last)")
    p.add_argument("--name", help="a name to list the dataset by")
    p.set_defaults(run=cmd_upload)

    p = sub.add_parser("datasets", parents=[common], help="list the stored datasets, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(run=cmd_datasets)

    p = sub.add_parser("predict", parents=[common], help="classify the rows of a CSV file")
    p.add_argument("ref", help=REF_HELP)
    p.add_argument("file", help="a CSV file with a header row")
    p.add_argument("-o", "--output", help="write the CSV answer here (default: stdout)")
    p.add_argument("--threshold", type=float, help="binary models: the probability of classes[1]")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser(
        "evaluate", parents=[common], help="how good a model is on a labelled CSV file"
    )
    p.add_argument("ref", help=REF_HELP)
    p.add_argument("file", help="a CSV file with a header row (with --dataset: a dataset's id)")
    p.add_argument("--label", help="the label column (default: the last)")
    p.add_argument(
        "--threshold", type=float, help="binary models: predict classes[1] from this probability"
    )
    p.add_argument(
        "--positive-label",
        type=parse_label,
        help="binary models: the class ROC AUC, average precision and Brier are about",
    )
    p.add_argument(
        "--dataset", action="store_true", help="FILE is the id of a stored dataset (logreg upload)"
    )
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("evaluations", parents=[common], help="a model's last evaluations")
    p.add_argument("ref", help=REF_HELP)
    p.set_defaults(run=cmd_evaluations)

    p = sub.add_parser("report", parents=[common], help="the address of a model's report page")
    p.add_argument("ref", help=REF_HELP)
    p.add_argument("--open", action="store_true", help="open it in a browser")
    p.add_argument(
        "--pin",
        action="store_true",
        help="the address by the model's id (NAME@ALIAS would follow the alias when reloaded)",
    )
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("models", parents=[common], help="list the stored models, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(run=cmd_models)

    p = sub.add_parser("model", parents=[common], help="a model's summary, settings and parameters")
    p.add_argument("ref", help=REF_HELP)
    p.set_defaults(run=cmd_model)

    p = sub.add_parser("delete", parents=[common], help="delete a model")
    p.add_argument("ref", help=REF_HELP)
    p.set_defaults(run=cmd_delete)

    p = sub.add_parser("names", parents=[common], help="list the registered names")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(run=cmd_names)

    p = sub.add_parser("name", parents=[common], help="a name's versions and aliases")
    p.add_argument("name")
    p.set_defaults(run=cmd_name)

    alias = sub.add_parser("alias", help="set, delete or show the history of an alias")
    alias_sub = alias.add_subparsers(dest="alias_command", required=True, metavar="COMMAND")
    p = alias_sub.add_parser("set", parents=[common], help="point NAME@ALIAS at a version")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", type=int)
    p.set_defaults(run=cmd_alias_set)
    p = alias_sub.add_parser("delete", parents=[common], help="delete an alias")
    p.add_argument("name")
    p.add_argument("alias")
    p.set_defaults(run=cmd_alias_delete)
    p = alias_sub.add_parser("history", parents=[common], help="every change of an alias")
    p.add_argument("name")
    p.add_argument("alias")
    p.set_defaults(run=cmd_alias_history)

    p = sub.add_parser(
        "rollback", parents=[common], help="point an alias back at its previous version"
    )
    p.add_argument("name")
    p.add_argument("alias")
    p.set_defaults(run=cmd_rollback)

    p = sub.add_parser("audit", parents=[common], help="the audit log, oldest first (admin)")
    p.add_argument(
        "--since",
        type=parse_since,
        help="entries at or after: 2026-12-01T10:00:00Z (UTC without an offset), or 30m, 2h, 7d",
    )
    p.add_argument("--limit", type=int, default=100, help="at most this many entries")
    p.set_defaults(run=cmd_audit)

    p = sub.add_parser("jobs", parents=[common], help="list the training jobs, newest first")
    p.add_argument("--status", choices=JOB_STATUSES, help="only the jobs in this state")
    p.add_argument(
        "--watch",
        action="store_true",
        help="show the list again as it changes, until every job listed has ended (or Ctrl-C)",
    )
    p.add_argument("--interval", type=float, default=1.0, help="--watch: seconds between looks")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(run=cmd_jobs)

    p = sub.add_parser("job", parents=[common], help="a training job: state, progress, result")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--wait", action="store_true", help="follow it to its end; print the model id")
    p.set_defaults(run=cmd_job)

    p = sub.add_parser("cancel", parents=[common], help="cancel a queued or running job")
    p.add_argument("job_id", metavar="JOB_ID")
    p.set_defaults(run=cmd_cancel)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    out = make_output(sys.stdout)
    try:
        return run(args, out)
    except BrokenPipeError:  # `logreg models | head -1`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return OK


def run(args: argparse.Namespace, out: PlainOutput) -> int:
    try:
        with Client(args.url, args.api_key, timeout=args.timeout) as client:
            args.run(args, client, out)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for item in exc.errors if len(exc.errors) > 1 else ():
            print(f"  {item.get('field')}: {item.get('message')}", file=sys.stderr)
        return REFUSED
    except JobCancelled as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    except Interrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return INTERRUPTED
    except ServiceUnreachable as exc:
        print(f"error: cannot reach the service at {exc}", file=sys.stderr)
        return UNREACHABLE
    except BrokenPipeError:
        raise  # not a usage error: main() ends quietly
    except (UsageError, ValueError, OSError) as exc:
        print(f"logreg: error: {exc}", file=sys.stderr)
        return USAGE
    return OK


if __name__ == "__main__":
    sys.exit(main())
