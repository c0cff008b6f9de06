"""The run record: what a run was asked to do and what happened, the one thing results and reports read.

A :class:`Run` is read from a run folder (:meth:`Run.read`): its :class:`Request` from ``job.json``
(written by the sweep before the run starts), its status from the ``done`` and ``failed`` markers,
and for a finished run what the trainer recorded in ``metrics.json``
(:class:`~dabin.record.metrics.RunRecord`): the test accuracy per evaluated domain, the evaluation
points with their validator scores, steps and time. ``results.csv`` is a flat view of runs
(:mod:`dabin.record.table`), and a run can be rebuilt from its rows where there are no run
folders. Nothing here knows how a sweep runs its jobs: the sweep's
:class:`~dabin.sweep.job.Job` *is* a :class:`Request` with its config and command-line extras.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dabin.methods.names import RUN_KINDS, RunKind
from dabin.record.files import JOB, METRICS, failure_reason, run_state
from dabin.record.metrics import AccuracyPoint, EvaluationPoint, RecordError, RunRecord, TestResult
from datamodules.naming import domain_key, format_task

__all__ = ["Request", "Run", "RunStatus", "Scalar", "format_hparams", "hparam_text", "read_runs"]

#: What a hyper-parameter axis may take: a YAML scalar.
Scalar = bool | int | float | str
#: Where a run stands in its record: finished (``ok``), failed, started and stopped, never started.
RunStatus = Literal["ok", "failed", "incomplete", "missing"]


def hparam_text(value: Scalar) -> str:
    """A hyper-parameter value as the training CLI reads it and the record writes it (``true``, ``0.3``)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def format_hparams(hparams: Sequence[tuple[str, Scalar]]) -> str:
    """``model.lambda_max=0.3 model.lr=0.05`` ("" without hyper-parameter axes)."""
    return " ".join(f"{key}={hparam_text(value)}" for key, value in hparams)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """What a run is asked to do: the method, where (a task or a fold), the seed, the varied settings.

    Attributes:
        method: A name of :data:`~dabin.methods.names.RUN_KINDS` (``dann``, ``source_only``, ``mixed``, ...).
        norm: Normalization layer (``bn``, ``bin``, ``in``, ``bnin``).
        seed: Seed of the run.
        source: Source domain name (transfer methods).
        target: Target domain name (transfer methods).
        fold: Held-out fold (the mixed method).
        hparams: The values of the sweep's hyper-parameter axes for this run, as ``(key, value)``
            pairs in the spec's order (``(("model.lambda_max", 0.3),)``).
    """

    method: str
    norm: str
    seed: int
    source: str | None = None
    target: str | None = None
    fold: int | None = None
    hparams: tuple[tuple[str, Scalar], ...] = ()

    @property
    def task(self) -> str:
        """``Ar→Cl`` for transfer runs, empty for the mixed method."""
        return format_task(self.source, self.target) if self.source and self.target else ""

    @property
    def setting(self) -> str:
        """The hyper-parameter values as results and reports write them (``model.lambda_max=0.3``)."""
        return format_hparams(self.hparams)

    def to_json(self) -> dict[str, Any]:
        """The fields of ``job.json`` (and of a manifest's job entry) that say what was asked."""
        return {"method": self.method, "norm": self.norm, "seed": self.seed, "source": self.source,
                "target": self.target, "fold": self.fold, "hparams": dict(self.hparams), "task": self.task}

    @classmethod
    def from_json(cls, data: Any) -> Request:
        """Read what was asked from a ``job.json`` (or a manifest's job entry); other keys are the sweep's.

        Raises:
            RecordError: Not an object, or a field missing or of the wrong kind.
        """
        if not isinstance(data, Mapping):
            raise RecordError(f"a job is a JSON object, got {data!r}")
        try:
            fold = data.get("fold")
            return cls(method=str(data["method"]), norm=str(data["norm"]), seed=int(data["seed"]),
                       source=data.get("source"), target=data.get("target"),
                       fold=None if fold is None else int(fold),
                       hparams=tuple((str(key), value) for key, value in (data.get("hparams") or {}).items()))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RecordError(f"a job's fields have the wrong shape ({error!r})") from None


@dataclasses.dataclass(frozen=True)
class Run:
    """One run as its record says: what was asked, where it stands, what it measured.

    Attributes:
        key: The run folder's name (``run`` column), or a key made of the run's fields.
        line: Line of its first row in ``results.csv`` (for messages; 0 when read from its folder).
        method: A method name (``dann``, ``source_only``, ``mixed``, ...).
        norm: Normalization layer.
        source: Source domain (transfer runs), else "".
        target: Target domain (transfer runs), else "".
        seed: Seed.
        fold: Fold (mixed runs), else None.
        status: ``ok``, ``failed``, ``incomplete`` or ``missing``.
        reason: Why it failed (failed runs).
        test: Evaluated set -> result, for ok runs (a transfer run's target first).
        model_selection: The checkpoint-selection rule the run recorded ("" if none).
        batch: The batch one optimizer step saw, e.g. ``32+32 on 1 device`` ("" if not recorded).
        gate_lr: The BIN gates' learning rate rule, e.g. ``10× group rate`` ("" if none).
        domain_stats: How the domains shared normalization statistics (``joint``, ``separate``,
            ``domain_specific``; "" if not recorded).
        source_val: Accuracy (%) on the source validation split at the run's last validation
            (transfer runs; None if not recorded).
        hparams: The values of the sweep's hyper-parameter axes (``model.lr=0.01 model.lambda_max=1.0``;
            "" without such axes).
        points: The evaluation points of its record (none when read from ``results.csv``).
        accuracy_points: A domain-generalization run's accuracy on every evaluated set by step (none
            when read from ``results.csv``).
        steps: Steps it trained (None if not known).
        time_s: Seconds it spent fitting (None if not known).
        evaluation_s: Of those, seconds scoring evaluation points (None if not recorded).
        test_s: Seconds it spent testing (None if not recorded).
    """

    key: str
    line: int
    method: str
    norm: str
    source: str
    target: str
    seed: int
    fold: int | None
    status: RunStatus
    reason: str
    test: dict[str, TestResult]
    model_selection: str
    batch: str = ""
    gate_lr: str = ""
    domain_stats: str = ""
    source_val: float | None = None
    hparams: str = ""
    points: tuple[EvaluationPoint, ...] = ()
    steps: int | None = None
    time_s: float | None = None
    evaluation_s: float | None = None
    test_s: float | None = None
    accuracy_points: tuple[AccuracyPoint, ...] = ()

    @classmethod
    def asked(cls, key: str, request: Request, status: RunStatus, reason: str = "",
              record: RunRecord | None = None) -> Run:
        """A run from what was asked, its status and (a finished run) its trainer's record."""
        return cls(key=key, line=0, method=request.method, norm=request.norm, source=request.source or "",
                   target=request.target or "", seed=request.seed, fold=request.fold, status=status, reason=reason,
                   test=dict(record.test) if record else {},
                   model_selection=record.model_selection if record else "",
                   batch=record.batch.text() if record and record.batch else "",
                   gate_lr=record.gate_lr.text() if record and record.gate_lr else "",
                   domain_stats=(record.domain_stats or "") if record else "",
                   source_val=record.source_val.accuracy if record and record.source_val else None,
                   hparams=request.setting, points=record.evaluation_points if record else (),
                   steps=record.steps if record else None, time_s=record.time_s if record else None,
                   evaluation_s=record.evaluation_s if record else None, test_s=record.test_s if record else None,
                   accuracy_points=record.accuracy_points if record else ())

    @classmethod
    def read(cls, run_dir: Path, request: Request) -> Run:
        """A run from its folder: its markers and, when it is done, its trainer's record.

        A done run whose ``metrics.json`` was removed or damaged afterwards is a failed run whose
        reason says so: shown, not hidden.
        """
        state = run_state(run_dir)
        if state == "done":
            try:
                return cls.asked(run_dir.name, request, "ok", record=RunRecord.read(run_dir))
            except RecordError as error:
                return cls.asked(run_dir.name, request, "failed",
                                 reason=f"{METRICS} unreadable after the run finished ({error})")
        if state == "failed":
            return cls.asked(run_dir.name, request, "failed", reason=failure_reason(run_dir))
        return cls.asked(run_dir.name, request, state)

    @property
    def accuracy(self) -> dict[str, float]:
        """Evaluated set -> test accuracy (%), for ok runs."""
        return {name: result.accuracy for name, result in self.test.items()}

    @property
    def kind(self) -> RunKind:
        """``transfer`` (source -> target, Table 4), ``mixed`` (Table 3) or ``dg`` (domain generalization)."""
        return RUN_KINDS[self.method]

    @property
    def transfer(self) -> bool:
        """True for source -> target runs (Table 4)."""
        return self.kind == "transfer"

    @property
    def task(self) -> str:
        """``Ar→Cl`` for transfer runs, ``In,Ne,Ph→Sk`` for DG runs, "" for mixed ones."""
        return format_task(self.source, self.target) if self.kind != "mixed" else ""

    @property
    def place(self) -> str:
        """The task or the fold, for listings (with the hyper-parameter values, if any)."""
        return " ".join(filter(None, (self.task or f"fold {self.fold}", self.hparams)))

    def target_result(self) -> TestResult | None:
        """The target-test result of an ok transfer run (the evaluated set that is its target, any spelling)."""
        return next((result for name, result in self.test.items() if domain_key(name) == domain_key(self.target)),
                    None)

    def target_accuracy(self) -> float | None:
        """The target-test accuracy (%) of an ok transfer run."""
        result = self.target_result()
        return None if result is None else result.accuracy


def _folder_requests(folder: Path, skip: set[str]) -> list[tuple[str, Request]]:
    """Every run folder's request but those in ``skip``, by folder name.

    A folder whose ``job.json`` is unreadable, or names another folder (copied by hand), is not a run.
    """
    found = []
    for job_file in sorted(folder.glob(f"*/{JOB}")):
        name = job_file.parent.name
        if name in skip:
            continue
        try:
            data = json.loads(job_file.read_text())
            request = Request.from_json(data)
        except (OSError, ValueError, RecordError):
            continue
        if data.get("name") == name:
            found.append((name, request))
    return found


def read_runs(folder: Path, planned: Sequence[tuple[str, Request]]) -> list[Run]:
    """The runs of a sweep folder: the planned ones, then every other run folder (an earlier, wider spec).

    Args:
        folder: The sweep's output folder.
        planned: (folder name, request) of every run the sweep asks for, in its order; those
            without a folder are ``missing``.

    Returns:
        The runs, planned ones first, then the others by folder name.
    """
    others = _folder_requests(folder, {name for name, _ in planned})
    return [Run.read(folder / name, request) for name, request in [*planned, *others]]
