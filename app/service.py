"""Use-cases: resolve a model reference, predict, train, get, list, delete.

Schemas <-> engine <-> store; no FastAPI here. Every front end (JSON and CSV ``/predict``, the
Open Inference Protocol, ``/models``) resolves a model with ``served`` and predicts with
``predict``, so a reference and a row get the same answer whichever way they come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import numpy as np

from model_store import (
    ID_PATTERN,
    LATEST,
    AliasChange,
    AliasNotFound,
    CorruptModel,
    FileDatasetStore,
    InvalidModelId,
    ModelNotFound,
    ModelStore,
    NameEntry,
    NameNotFound,
    Record,
    StoreError,
    new_model_id,
    parse_reference,
)

from . import csv_io, evaluation, metrics, report
from .audit import Actor, audit_entry
from .config import Settings
from .engine import EngineError, FitParams, InvalidData, InvalidParams, LogisticModel, fit
from .engine.footprint import fit_footprint
from .engine.model import Explanation
from .engine.monitor import Monitor
from .engine.polynomial import n_output_features
from .engine.profile import profile
from .engine.source import RowBlocks
from .engine.statistics import coefficient_statistics
from .errors import LimitExceeded, UnknownVersion
from .model_cache import ModelCache
from .records import (
    SHAPE_ERRORS,
    ServedModel,
    all_finite,
    detail_from_record,
    from_record,
    model_file_bytes,
    model_to_record,
    profile_to_record,
    statistics_to_record,
    summary_from_record,
    training_warnings,
)
from .schemas import (
    AliasChangeResponse,
    AliasHistory,
    AliasHistoryItem,
    AuditList,
    DatasetTrainRequest,
    Evaluation,
    EvaluationList,
    ModelDetail,
    ModelList,
    ModelSummary,
    NameDetail,
    NameList,
    NameSummary,
    NameVersion,
    TrainingSummary,
    TrainParams,
    TrainRequest,
)

log = logging.getLogger("app.service")

#: Evaluations kept with each model (``GET /models/{ref}/evaluations``; the report draws the
#: newest). Each is a few KB (the ROC curves are thinned), so a model's history stays small.
EVALUATIONS_KEPT = 20


class Prediction(NamedTuple):  # a NamedTuple: a third of a frozen dataclass's cost to build
    model_id: str  # the resolved id
    name: str | None
    version: int | None
    classes: list[Any]
    predictions: np.ndarray  # shape (n_samples,), labels
    probabilities: np.ndarray  # shape (n_samples, n_classes)
    explanation: Explanation | None = None  # asked for with ``explain``
    terms: tuple[str, ...] = ()  # the names of the explanation's columns
    warnings: list[dict[str, Any]] | None = None  # values outside the training range (the first)
    warnings_total: int = 0  # ... and how many there are


#: Out-of-range values listed in an answer's ``warnings`` (the rest are counted).
MAX_WARNINGS = 20


def _size(n: int) -> str:
    """Bytes as people read them: ``4.0 GiB``, ``285 MiB``, ``12 KiB``."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.0f} MiB"
    return f"{max(1, round(n / 1024))} KiB"


class TrainingMonitor(Monitor, Protocol):
    """Watches one training (a job's progress and cancel, ``app.training.job``): the engine's
    ``Monitor``, told also when the fit starts and when the model is about to be saved. Any
    call may raise to stop the training; nothing is stored then."""

    def fitting(self, *, max_iter: int) -> None: ...

    def saving(self) -> None: ...


class ModelService:
    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.cache: ModelCache[ServedModel] = ModelCache(
            store,
            ServedModel.from_record,
            size=settings.model_cache_size,
            max_bytes=settings.model_cache_bytes,
            weigh=ServedModel.nbytes,
        )
        # name -> its entry (versions, aliases), checked like the models: an alias moved through
        # any process is followed by the next request
        self.names: ModelCache[NameEntry] = ModelCache(
            store.names, lambda entry: entry, size=1024, missing=NameNotFound, counted=False
        )

    def _check_size(self, n_rows: int, n_features: int) -> None:
        s = self.settings
        if n_rows > s.max_rows:
            raise LimitExceeded(f"features: {n_rows} rows is more than the limit of {s.max_rows}")
        if n_features > s.max_features:
            raise LimitExceeded(
                f"features: {n_features} columns is more than the limit of {s.max_features}"
            )

    # --- model references -----------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The model id a reference names (``model_store.parse_reference``: an id, ``latest``,
        ``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``). ``latest`` is found from the store's listing
        and a name from its entry (cached, and checked like a cached model), without reading any
        model. May read the store: call it off the event loop."""
        if ID_PATTERN.fullmatch(ref):
            return ref
        r = parse_reference(ref)
        if r.latest:
            newest = self.store.newest_id()
            if newest is None:
                raise ModelNotFound(LATEST)
            return newest
        assert r.name is not None
        entry: NameEntry = self.names.get(r.name)
        return entry.model_id(version=r.version, alias=r.alias)

    def served(self, ref: str) -> ServedModel:
        """The model ``ref`` names, ready to predict: from the cache, or read from the store
        (call it off the event loop; ``cached`` is the non-blocking look-up)."""
        return self.cache.get(self.resolve(ref))

    def served_version(self, ref: str, version: str) -> ServedModel:
        """The model ``ref`` names at ``version`` (the Open Inference Protocol's
        ``/v2/models/{ref}/versions/{version}``): a name's version, or the version of the model
        ``ref`` names (``"1"`` for an unnamed model); ``UnknownVersion`` for any other."""
        if not ID_PATTERN.fullmatch(ref):
            r = parse_reference(ref)
            if r.name is not None and r.version is None and r.alias is None:
                if not (version.isascii() and version.isdigit() and 0 < len(version) < 10):
                    raise UnknownVersion(f"model {ref!r} has no version {version!r}")
                return self.served(f"{ref}:{int(version)}")
        model = self.served(ref)
        own = str(model.version or 1)
        if version != own:
            raise UnknownVersion(f"model {ref!r} has no version {version!r}; it is version {own}")
        return model

    def cached(self, ref: str) -> ServedModel | None:
        """``served(ref)`` when that needs no I/O (a cached model, and for a name a cached
        entry, known to be current), else ``None``. Safe on the event loop."""
        model = self.cache.peek(ref)  # the usual case: the id of a cached model (no parsing)
        if model is not None or ID_PATTERN.fullmatch(ref):
            return model
        try:
            r = parse_reference(ref)
        except InvalidModelId:  # ``served`` raises it again, with the rest of the request
            return None
        if r.name is None:  # latest
            return None
        entry = self.names.peek(r.name)
        if entry is None:
            return None
        try:
            return self.cache.peek(entry.model_id(version=r.version, alias=r.alias))
        except StoreError:  # no such version or alias: ``served`` says so
            return None

    def predict(
        self,
        model: ServedModel,
        X: np.ndarray,
        *,
        threshold: float | None = None,
        explain: bool = False,
    ) -> Prediction:
        """Labels and probabilities for ``X`` of shape (n_samples, n_features); with
        ``explain``, each row's score split into contributions (``LogisticModel.explain``).

        The one prediction path: the JSON, CSV and Open Inference Protocol front ends all call
        it, and the engine's ``classify`` is the one place that computes the numbers.
        """
        self._check_size(X.shape[0], X.shape[1])
        engine = model.model
        try:
            proba, index = engine.classify(X, threshold=threshold)
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:  # a stored model that passed the checks but cannot work
            raise CorruptModel(model.id, f"cannot predict ({exc})") from None
        s = self.settings
        metrics.record_predictions(model.id, X.shape[0], max_model_ids=s.metrics_max_model_ids)
        labels = engine.labels[index]
        profile = model.profile
        if profile is None and not explain:  # a model stored before profiles existed
            return Prediction(model.id, model.name, model.version, model.classes, labels, proba)
        warnings, total = None, 0
        if profile is not None:
            if not metrics.INPUT_PSI.add(model.id, X):  # a model not tracked (yet)
                metrics.record_inputs(
                    model.id,
                    X,
                    edges=profile.edges,
                    fractions=profile.fractions,
                    feature_names=model.input_names,
                    window=s.drift_window,
                    max_model_ids=s.metrics_max_model_ids,
                    max_features=s.metrics_max_features,
                )
            found = model.out_of_range(X)
            if found:
                warnings, total = self._warnings(model, X, found), len(found)
        # positional: a NamedTuple built with keywords costs ~0.5 us more
        if not explain:
            return Prediction(
                model.id, model.name, model.version, model.classes, labels, proba, None, (),
                warnings, total,
            )  # fmt: skip
        return Prediction(
            model.id,
            model.name,
            model.version,
            model.classes,
            labels,
            proba,
            engine.explain(X, centre=model.centre),
            model.design_names,
            warnings,
            total,
        )

    def _warnings(
        self, model: ServedModel, X: np.ndarray, found: list[tuple[int, int]]
    ) -> list[dict[str, Any]]:
        """The first ``MAX_WARNINGS`` out-of-range values, and every one counted by feature."""
        assert model.profile is not None
        names = model.input_names
        by_feature: dict[str, int] = {}
        for _, j in found:
            by_feature[names[j]] = by_feature.get(names[j], 0) + 1
        metrics.record_out_of_range(
            model.id,
            by_feature,
            max_model_ids=self.settings.metrics_max_model_ids,
            max_features=self.settings.metrics_max_features,
        )
        lo, hi = model.profile.minimum, model.profile.maximum
        return [
            {
                "row": i,
                "feature": names[j],
                "value": float(X[i, j]),
                "min": float(lo[j]),
                "max": float(hi[j]),
            }
            for i, j in found[:MAX_WARNINGS]
        ]

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(
        self,
        ref: str,
        X: np.ndarray,
        labels: list[Any],
        *,
        threshold: float | None = None,
        positive_label: Any = None,
        header: list[str] | None = None,
        raw_labels: list[str] | None = None,
        actor: Actor | None = None,
    ) -> Evaluation:
        """The metrics of the model ``ref`` names on ``X`` (n_samples, n_features) against
        ``labels``, kept as its newest evaluation. ``header``: the names of ``X``'s columns (a
        CSV body), matched to the model's feature names. Reads and writes the store: call it off
        the event loop. ``raw_labels``: a CSV body's label cells as written, compared with a
        model of string classes (``labels`` are typed as training CSV types them)."""
        model = self.served(ref)
        self._check_size(X.shape[0], X.shape[1])
        if header is not None:
            if model.feature_names is not None:
                X = csv_io.order_columns(X, header, model.feature_names)
            elif len(header) != model.n_features:
                raise InvalidData(
                    f"header: has {len(header)} feature columns but the model expects "
                    f"{model.n_features} features"
                )
        engine = model.model
        classes = model.classes
        if raw_labels is not None and all(type(c) is str for c in classes):
            # a CSV cell is text: "1" is the class "1" of a model trained on strings
            labels = raw_labels
            if positive_label is not None and not isinstance(positive_label, str):
                text = str(positive_label)  # ?positive_label=1 was read as a number
                positive_label = text if text in classes else text.lower()
        true, unknown = evaluation.encode_true_labels(classes, labels)
        if unknown:
            shown = ", ".join(repr(v) for v in unknown[: evaluation.MAX_LISTED_LABELS])
            more = len(unknown) - evaluation.MAX_LISTED_LABELS
            raise InvalidData(
                f"labels: {shown}{f' and {more} more' if more > 0 else ''} "
                f"{'is not a class' if len(unknown) == 1 else 'are not classes'} of this model, "
                f"which knows {classes}"
            )
        positive = 1
        if positive_label is not None:
            if engine.multiclass != "binary":
                raise InvalidData("positive_label: applies to binary models only")
            found, missing = evaluation.encode_true_labels(classes, [positive_label])
            if missing:
                raise InvalidData(
                    f"positive_label: {positive_label!r} is not a class of this model, which "
                    f"knows {classes}"
                )
            positive = int(found[0])
        try:
            proba, index = engine.classify(X, threshold=threshold)
        except EngineError:
            raise
        except SHAPE_ERRORS as exc:
            raise CorruptModel(model.id, f"cannot predict ({exc})") from None
        result = evaluation.evaluate(classes, proba, index, true, positive=positive)
        entry = {
            "model_id": model.id,
            "name": model.name,
            "version": model.version,
            "evaluated_at": datetime.now(UTC).isoformat(),
            "threshold": None if threshold is None else float(threshold),
            **result,
        }
        self.store.evaluations.append(model.id, entry, keep=EVALUATIONS_KEPT)
        self.audit_change("model.evaluated", {"id": model.id, "n": result["n"]}, actor)
        return Evaluation(**entry)

    def evaluations(self, ref: str) -> EvaluationList:
        """The kept evaluations of the model ``ref`` names, newest first."""
        model_id = self.resolve(ref)
        self.store.fingerprint(model_id)  # ModelNotFound for a model that is gone
        items = [Evaluation(**e) for e in self.store.evaluations.read(model_id)]
        return EvaluationList(model_id=model_id, items=items, kept=EVALUATIONS_KEPT)

    def report(self, ref: str) -> dict[str, Any]:
        """The report page's content (``app.report.build``) for the model ``ref`` names."""
        model = self.served(ref)
        record = self.store.load(model.id)
        kept = self.store.evaluations.read(model.id)
        return report.build(record, model.model, model.profile, kept[0] if kept else None)

    # --- training and the store -----------------------------------------------------------

    def train(
        self,
        request: TrainRequest | DatasetTrainRequest,
        X: np.ndarray | None = None,
        *,
        actor: Actor | None = None,
        monitor: TrainingMonitor | None = None,
        datasets: Callable[[], FileDatasetStore] | None = None,
    ) -> ModelSummary:
        """Fit and store a model (the next version of ``request.name`` when named). ``X``
        (n_samples, n_features): the rows if decoded apart, in which case ``request.features``
        is a placeholder; ``monitor``: told of the fit's progress, and may stop it (a training
        job's). A ``DatasetTrainRequest`` trains on a dataset of ``datasets()``
        (``train_dataset``)."""
        if isinstance(request, DatasetTrainRequest):
            if datasets is None:
                raise TypeError("train: a training from a dataset needs the dataset store")
            return self.train_dataset(request, datasets(), actor=actor, monitor=monitor)
        if X is None:
            X = np.asarray(request.features, dtype=np.float64)
        self._check_size(X.shape[0], X.shape[1])
        return self._train(
            X,
            request.labels,
            params=request.params,
            name=request.name,
            feature_names=request.feature_names,
            sample_weight=request.sample_weight,
            actor=actor,
            monitor=monitor,
        )

    def train_dataset(
        self,
        request: DatasetTrainRequest,
        datasets: FileDatasetStore,
        *,
        actor: Actor | None = None,
        monitor: TrainingMonitor | None = None,
    ) -> ModelSummary:
        """Fit on a stored dataset's columns, read block by block from its memory-mapped file
        (never whole in memory), and store the model. Call it in a child process."""
        from .datasets import read_training_columns  # pyarrow: in the training child only

        columns = read_training_columns(
            datasets, request.dataset, label=request.label, features=request.features
        )
        n_features = len(columns.feature_names)
        if n_features > self.settings.max_features:
            raise LimitExceeded(
                f"features: {n_features} columns is more than the limit of "
                f"{self.settings.max_features}"
            )
        return self._train(
            RowBlocks(columns.batches),
            columns.labels,
            params=request.params,
            name=request.name,
            feature_names=columns.feature_names,
            sample_weight=None,
            dataset={"id": request.dataset, "label": request.label},
            actor=actor,
            monitor=monitor,
        )

    def _train(
        self,
        X: np.ndarray | RowBlocks,
        labels: Sequence[Any] | np.ndarray,
        *,
        params: TrainParams,
        name: str | None,
        feature_names: list[str] | None,
        sample_weight: list[float] | None,
        dataset: dict[str, str] | None = None,
        actor: Actor | None = None,
        monitor: TrainingMonitor | None = None,
    ) -> ModelSummary:
        s = self.settings
        n_rows, n_features = X.shape
        p = params
        if "max_iter" not in p.model_fields_set and p.max_iter > s.max_iter:
            # the default must not break a service configured with a lower MAX_ITER
            p = p.model_copy(update={"max_iter": s.max_iter})
        if p.max_iter > s.max_iter:
            raise InvalidParams(
                f"params.max_iter: {p.max_iter} is more than the limit of {s.max_iter}"
            )
        # a dataset's labels: one sort in C, not ten million Python objects
        as_array = isinstance(labels, np.ndarray)
        classes = set(np.unique(labels).tolist()) if as_array else set(labels)
        n_classes = len(classes)
        if n_classes > s.max_classes:
            raise LimitExceeded(
                f"labels: {n_classes} distinct classes is more than the limit of {s.max_classes}"
            )
        if p.polynomial_degree > 1:
            expanded = n_output_features(n_features, p.polynomial_degree)
            if expanded > s.max_features:
                raise LimitExceeded(
                    f"params.polynomial_degree: degree {p.polynomial_degree} on {n_features} "
                    f"features makes {expanded} columns, more than the limit of "
                    f"{s.max_features} (MAX_FEATURES)"
                )
        fit_params = FitParams(**p.model_dump(), time_budget=s.train_time_budget, monitor=monitor)
        self._check_resources(
            feature_names,
            classes,
            n_rows=n_rows,
            n_features=n_features,
            params=fit_params,
            weighted=sample_weight is not None or fit_params.class_weight is not None,
            in_memory=not isinstance(X, RowBlocks),
        )
        # Values near 1e308 of both signs can still overflow ``x - mean`` or the scores; that
        # is the data's problem, answered below as a 422, not a warning in the logs.
        if monitor is not None:
            monitor.fitting(max_iter=p.max_iter)
        with metrics.timed_training(), np.errstate(over="ignore", invalid="ignore"):
            result = fit(X, labels, params=fit_params, sample_weight=sample_weight)
        report = result.report
        if not all_finite(result.model) or not np.isfinite(report.loss):
            raise InvalidData(
                "features: values too large to train on (their distance from the column's "
                "mean or the model's scores overflow 64-bit floats); rescale the data"
            )
        stats_note: str | None
        if isinstance(X, RowBlocks):
            stats = None
            stats_note = (
                "coefficient statistics are not computed for a training from a dataset (they "
                "need every row in memory)"
            )
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                stats, stats_note = coefficient_statistics(
                    X,
                    labels,
                    result,
                    params=fit_params,
                    feature_names=feature_names,
                    sample_weight=sample_weight,
                )
        record: Record = {
            "id": new_model_id(),
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "n_features": n_features,
            "feature_names": feature_names,
            "params": p.model_dump(),
            "model": model_to_record(result.model),
            "training": {
                "solver": report.solver,
                "iterations": report.iterations,
                "converged": report.converged,
                "stopped_by": report.stopped_by,
                "loss": report.loss,
                "grad_norm": report.grad_norm,
                "accuracy": report.accuracy,
                "seconds": report.seconds,
                "n_samples": report.n_samples,
                "passes": report.passes,
                "loss_history": report.history,
                "warnings": training_warnings(report, solver=p.solver),
            },
            "statistics": statistics_to_record(stats),
            "statistics_note": stats_note,
            "inputs": profile_to_record(profile(X)),
            "design_mean": None if result.model.mean is not None else design_mean(result.model, X),
        }
        if dataset is not None:
            record["dataset"] = dataset
        summary_from_record(record)  # first: a record it cannot show is not stored
        if monitor is not None:
            monitor.saving()  # the last moment a cancel stops the training: past it, it is saved
        if name is None:
            self.store.save(record)
        else:
            self.store.save_version(record)  # sets record["version"]
        self.audit_change(
            "model.stored",
            {"id": record["id"], "name": name, "version": record.get("version")},
            actor,
        )
        return summary_from_record(record)

    def audit_change(
        self, action: str, target: dict[str, Any], actor: Actor | None, *, outcome: str = "ok"
    ) -> None:
        """Append the audit line of a change that happened. The change stands if the line cannot
        be written (the model is stored, the alias moved): that is logged as an error."""
        try:
            self.store.audit.append(audit_entry(action, target, actor, outcome=outcome))
        except StoreError:
            log.error("audit log: could not record %s %s", action, target, exc_info=True)

    def _check_resources(
        self,
        feature_names: list[str] | None,
        classes: set[Any],
        *,
        n_rows: int,
        n_features: int,
        params: FitParams,
        weighted: bool,
        in_memory: bool = True,
    ) -> None:
        """``LimitExceeded`` before fitting when the model's file would pass ``MAX_MODEL_BYTES``
        or the fit's memory ``MAX_TRAIN_MEMORY_BYTES``, naming the field that makes it large."""
        s = self.settings
        degree = params.polynomial_degree
        q = n_output_features(n_features, degree)
        outputs = 1 if len(classes) == 2 else len(classes)
        columns_field = "params.polynomial_degree" if degree > 1 else "features"
        inputs = f"{n_features} feature" + ("" if n_features == 1 else "s")
        if degree > 1:
            inputs = f"params.polynomial_degree {degree} on {inputs}"
        columns = f"{q} columns ({inputs})" if degree > 1 else inputs
        file_bytes = model_file_bytes(
            classes=classes, n_features=n_features, degree=degree, names=feature_names
        )
        if file_bytes > s.max_model_bytes:
            field, shape = (
                ("labels", f"{len(classes)} classes x {q + 1} coefficients")
                if outputs > 1
                else (columns_field, f"{q + 1} coefficients")
            )
            raise LimitExceeded(
                f"{field}: {shape} ({inputs}) make a model file of up to "
                f"{_size(file_bytes)}, more than the limit of {_size(s.max_model_bytes)} "
                "(MAX_MODEL_BYTES)"
            )
        need = fit_footprint(
            n_samples=n_rows,
            n_features=n_features,
            n_classes=len(classes),
            params=params,
            weighted=weighted,
            in_memory=in_memory,
        )
        if need.total > s.max_train_memory_bytes:
            multinomial = outputs > 1 and params.multiclass == "multinomial"
            hessian_field = "params.multiclass" if multinomial else "labels"
            if params.solver == "newton":
                hessian_field = "params.solver"
            field, what = {
                "design": (columns_field, "the rows and the columns made of them"),
                "outputs": ("labels", "rows x classes"),
                "coefficients": ("labels" if outputs > 1 else columns_field, "the coefficients"),
                "hessian": (
                    hessian_field,
                    "the Newton solvers' Hessian"
                    + (" (rows x pairs of classes)" if multinomial else ""),
                ),
                "statistics": ("params.l2", "the coefficient statistics of an unpenalised model"),
            }[need.largest()]
            raise LimitExceeded(
                f"{field}: the fit needs about {_size(need.total)} of memory, more than the "
                f"limit of {_size(s.max_train_memory_bytes)} (MAX_TRAIN_MEMORY_BYTES): "
                f"{n_rows} rows x {columns}, {len(classes)} classes, solver "
                f"{need.solver}; most of it for {what}"
            )

    def get(self, ref: str) -> ModelDetail:
        model_id = self.resolve(ref)
        return from_record(model_id, detail_from_record, self.store.load(model_id))

    def list(self, *, limit: int, offset: int) -> ModelList:
        listing = self.store.list(offset=offset, limit=limit)
        items, unreadable = [], []
        for model_id, entry in listing.entries:
            if isinstance(entry, CorruptModel):
                unreadable.append(model_id)
                continue
            try:
                items.append(from_record(model_id, summary_from_record, entry))
            except CorruptModel:
                unreadable.append(model_id)
        return ModelList(
            items=items, total=listing.total, limit=limit, offset=offset, unreadable=unreadable
        )

    def count(self) -> int:
        return self.store.count()

    def delete(self, ref: str, *, actor: Actor | None = None) -> None:
        model_id = self.resolve(ref)
        try:
            self.store.delete(model_id)
        except StoreError as exc:
            self.audit_change("model.deleted", {"id": model_id}, actor, outcome=f"refused: {exc}")
            raise
        self.cache.discard(model_id)
        self.audit_change("model.deleted", {"id": model_id, "ref": ref}, actor)

    # --- names and aliases ------------------------------------------------------------------

    def list_names(self, *, limit: int, offset: int) -> NameList:
        entries, total = self.store.names.list(offset=offset, limit=limit)
        return NameList(
            items=[_name_summary(e) for e in entries], total=total, limit=limit, offset=offset
        )

    def name(self, name: str) -> NameDetail:
        entry = self.store.names.load(name)
        items = []
        for version in sorted(entry.versions, reverse=True):
            v = entry.versions[version]
            training: TrainingSummary | None = None
            try:
                training = summary_from_record(self.store.load(v.model_id)).training
            except (StoreError, *SHAPE_ERRORS):
                pass  # listed all the same: GET /models/{id} says what is wrong with it
            items.append(
                NameVersion(
                    version=version,
                    id=v.model_id,
                    created_at=datetime.fromisoformat(v.created_at),
                    training=training,
                )
            )
        return NameDetail(**_name_summary(entry).model_dump(), items=items)

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: Actor | None = None
    ) -> AliasChangeResponse:
        return self._alias_change(
            "alias.set",
            {"name": name, "alias": alias, "version": version},
            actor,
            lambda by: self.store.names.set_alias(name, alias, version, by=by),
        )

    def delete_alias(self, name: str, alias: str, *, actor: Actor | None = None) -> None:
        self._alias_change(
            "alias.deleted",
            {"name": name, "alias": alias},
            actor,
            lambda by: self.store.names.delete_alias(name, alias, by=by),
        )

    def rollback_alias(
        self, name: str, alias: str, *, actor: Actor | None = None
    ) -> AliasChangeResponse:
        return self._alias_change(
            "alias.rolled_back",
            {"name": name, "alias": alias},
            actor,
            lambda by: self.store.names.rollback_alias(name, alias, by=by),
        )

    def _alias_change(
        self,
        action: str,
        target: dict[str, Any],
        actor: Actor | None,
        change: Any,
    ) -> AliasChangeResponse:
        try:
            done: AliasChange = change(actor.key_id if actor else None)
        except StoreError as exc:
            self.audit_change(action, target, actor, outcome=f"refused: {exc}")
            raise
        self.names.discard(done.name)
        self.audit_change(
            action,
            {**target, "version": done.version, "previous_version": done.previous_version},
            actor,
        )
        return AliasChangeResponse(
            name=done.name,
            alias=done.alias,
            version=done.version,
            previous_version=done.previous_version,
            changed_at=datetime.fromisoformat(done.changed_at),
        )

    def audit(self, *, since: datetime | None, limit: int) -> AuditList:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        after = None if since is None else since.astimezone(UTC).isoformat(timespec="microseconds")
        return AuditList(items=self.store.audit.read(since=after, limit=limit))

    def alias_history(self, name: str, alias: str) -> AliasHistory:
        entry = self.store.names.load(name)
        changes = entry.history.get(alias)
        if not changes:
            raise AliasNotFound(name, alias)
        return AliasHistory(
            name=name,
            alias=alias,
            items=[
                AliasHistoryItem(
                    action=c.action,
                    version=c.version,
                    previous_version=c.previous_version,
                    changed_at=datetime.fromisoformat(c.changed_at),
                    changed_by=c.changed_by,
                )
                for c in reversed(changes)
            ],
        )


def design_mean(
    model: LogisticModel, X: np.ndarray | RowBlocks, *, cells: int = 1 << 22
) -> list[float]:
    """The training mean of each design column of ``model`` (expanded, not standardised), in
    blocks of at most ``cells`` values: the centre of ``explain`` for a model trained without
    standardisation."""
    total = np.zeros(model.coef.shape[1])
    block = max(1, cells // model.coef.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, X.shape[0], block):
            total += model.transform(X[start : start + block]).sum(axis=0)
    return (total / X.shape[0]).tolist()


def _name_summary(entry: NameEntry) -> NameSummary:
    return NameSummary(
        name=entry.name,
        latest_version=entry.latest_version,
        versions=len(entry.versions),
        aliases=dict(sorted(entry.aliases.items())),
    )
