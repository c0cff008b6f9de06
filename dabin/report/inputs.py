"""What a report is made from: a sweep folder's run records, or its ``results.csv`` alone.

A sweep folder holds one folder per run; each run's :class:`~dabin.record.RunRecord` and markers
are the truth, and :meth:`Run.from_folder` reads them. ``results.csv`` is their export: a report
reads it only where there are no run folders (a results file shared or made by hand). Then its
rows, one per (run, evaluated domain), are grouped back into runs, and every inconsistency a hand
edit can introduce is one :class:`~dabin.errors.DabinError` naming the file, the line and the value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dabin.errors import DabinError
from dabin.report.paper import PAPER_TASKS
from dabin.sweep.jobs import Job, jobs_in
from dabin.record import JOB, MANIFEST, RESULTS, EvaluationPoint, RunFolder, run_state
from dabin.sweep.results import read_results
from dabin.sweep.spec import METHODS, format_task

__all__ = ["MANIFEST", "RESULTS", "Run", "Sweep", "load_sweep", "plain_domain", "task_order"]

#: Fields every row of one run shares; a row disagreeing with its run's first row is an edit error.
_RUN_FIELDS = ("method", "norm", "task", "source", "target", "seed", "fold", "hparams", "status")


def _key(name: str) -> str:
    from datamodules.naming import domain_key

    return domain_key(name)


def plain_domain(domain: str) -> str | None:
    """The domain of a test row, or None for a split-qualified row (``Clipart/train``).

    A run that tested on every split also reports e.g. ``<target>/train``; those rows are not the
    held-out accuracy that the paper's tables show, so the tables skip them.
    """
    return None if "/" in domain else domain


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run, rebuilt from its rows in ``results.csv``.

    Attributes:
        key: The run folder's name (``run`` column), or a key made of the run's fields.
        line: Line of its first row in ``results.csv`` (for messages).
        method: ``dann``, ``source_only`` or ``mixed``.
        norm: Normalization layer.
        source: Source domain (transfer runs), else "".
        target: Target domain (transfer runs), else "".
        seed: Seed.
        fold: Fold (mixed runs), else None.
        status: ``ok``, ``failed``, ``incomplete`` or ``missing``.
        reason: Why it failed (failed runs).
        accuracy: Domain -> test accuracy (%) for ok runs, every row of the run.
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
        steps: Steps it trained (None if not known).
    """

    key: str
    line: int
    method: str
    norm: str
    source: str
    target: str
    seed: int
    fold: int | None
    status: str
    reason: str
    accuracy: dict[str, float]
    model_selection: str
    batch: str = ""
    gate_lr: str = ""
    domain_stats: str = ""
    source_val: float | None = None
    hparams: str = ""
    points: tuple[EvaluationPoint, ...] = ()
    steps: int | None = None

    @classmethod
    def from_folder(cls, job: Job, run_dir: Path) -> Run:
        """A run from its job and its folder's markers and record."""
        folder = RunFolder.read(run_dir)
        record = folder.record
        return cls(key=job.name, line=0, method=job.method, norm=job.norm, source=job.source or "",
                   target=job.target or "", seed=job.seed, fold=job.fold, status=folder.status, reason=folder.reason,
                   accuracy={name: result.accuracy for name, result in record.test.items()} if record else {},
                   model_selection=record.model_selection if record else "",
                   batch=record.batch.text() if record and record.batch else "",
                   gate_lr=record.gate_lr.text() if record and record.gate_lr else "",
                   domain_stats=(record.domain_stats or "") if record else "",
                   source_val=record.source_val.accuracy if record and record.source_val else None,
                   hparams=job.setting, points=record.evaluation_points if record else (),
                   steps=record.steps if record else None)

    @property
    def transfer(self) -> bool:
        """True for source -> target runs (Table 4), False for mixed-domain runs (Table 3)."""
        return METHODS[self.method] == "transfer"

    @property
    def task(self) -> str:
        """``Ar→Cl`` for transfer runs, "" for mixed ones."""
        return format_task(self.source, self.target) if self.transfer else ""

    @property
    def place(self) -> str:
        """The task or the fold, for listings (with the hyper-parameter values, if any)."""
        return " ".join(filter(None, (self.task if self.transfer else f"fold {self.fold}", self.hparams)))

    def target_accuracy(self) -> float | None:
        """The target-test accuracy of an ok transfer run (the row whose domain is the target)."""
        for domain, value in self.accuracy.items():
            if _key(domain) == _key(self.target):
                return value
        return None


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweep folder's checked inputs.

    Attributes:
        folder: The sweep folder.
        name: The sweep's name (manifest), else the folder's name.
        dataset: ``embedded``, ``officehome`` or ``custom``.
        domains: The dataset's domains, in table order.
        office_home: True when the paper's numbers apply (Office-Home domains).
        runs: The runs, in file order.
        has_manifest: Whether ``sweep.json`` was there.
        spec: The spec file the sweep ran from (manifest), else None.
        from_records: Whether the runs were read from their records (else from ``results.csv``).
    """

    folder: Path
    name: str
    dataset: str
    domains: tuple[str, ...]
    office_home: bool
    runs: tuple[Run, ...]
    has_manifest: bool
    spec: str | None = None
    from_records: bool = False


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DabinError(f"{path}: not a readable sweep manifest ({error})") from None
    if not isinstance(manifest, dict):
        raise DabinError(f"{path}: a sweep manifest is a JSON object, got {type(manifest).__name__}")
    domains = manifest.get("domains")
    if domains is not None and (not isinstance(domains, list) or not all(isinstance(d, str) for d in domains)):
        raise DabinError(f"{path}: domains must be a list of names, got {domains!r}")
    return manifest


def _run_key(row: dict[str, str]) -> str:
    # Hand-made files may lack the run column; the fields that identify a run stand in for it.
    return row.get("run") or "|".join(row.get(field, "") for field in ("method", "norm", "task", "fold", "seed", "hparams"))


def _group_runs(path: Path, rows: Sequence[dict[str, str]]) -> list[Run]:
    first: dict[str, int] = {}
    runs: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(rows, start=2):
        key = _run_key(row)
        if key not in runs:
            first[key] = line
            runs[key] = {"rows": [], "selection": row.get("model_selection", "")}
        else:
            head = rows[first[key] - 2]
            for field in _RUN_FIELDS:
                if row.get(field, "") != head.get(field, ""):
                    raise DabinError(f"{path}: line {line}: run {key!r} has {field}={row.get(field, '')!r} here but "
                                     f"{field}={head.get(field, '')!r} on line {first[key]}")
        runs[key]["rows"].append(row)
    result: list[Run] = []
    identities: dict[tuple[Any, ...], Run] = {}
    for key, entry in runs.items():
        head = entry["rows"][0]
        accuracy = {r["domain"]: float(r["accuracy"]) for r in entry["rows"] if r["status"] == "ok"}
        run = Run(key=key, line=first[key], method=head["method"], norm=head["norm"], source=head["source"],
                  target=head["target"], seed=int(head["seed"]), fold=int(head["fold"]) if head["fold"] else None,
                  status=head["status"], reason=head.get("reason", ""), accuracy=accuracy,
                  model_selection=entry["selection"], batch=head.get("batch") or "",
                  gate_lr=head.get("gate_lr") or "", domain_stats=head.get("domain_stats") or "",
                  source_val=float(head["source_val"]) if head.get("source_val") else None,
                  hparams=head.get("hparams") or "")
        if run.status == "ok" and run.transfer and run.target_accuracy() is None:
            raise DabinError(f"{path}: line {run.line}: ok run {key!r} ({run.method} {run.norm} {run.task} seed "
                             f"{run.seed}) has no row for its target domain {run.target!r}")
        # Two folders for one (method, norm, place, seed) would be counted as two seeds of one cell.
        identity = (run.method, run.norm, _key(run.source), _key(run.target), run.fold, run.seed, run.hparams)
        if identity in identities:
            raise DabinError(f"{path}: line {run.line}: run {key!r} repeats run {identities[identity].key!r} of "
                             f"line {identities[identity].line} ({run.method} {run.norm} {run.place} seed {run.seed})")
        identities[identity] = run
        result.append(run)
    return result


def _planned_jobs(folder: Path, manifest: dict[str, Any] | None) -> list[Job]:
    """The jobs the manifest lists (every run the spec asks for), in order; none without a list."""
    planned = (manifest or {}).get("jobs")
    if not isinstance(planned, list):
        return []
    jobs = []
    for entry in planned:
        try:
            jobs.append(Job.from_json(entry))
        except (KeyError, TypeError, ValueError):
            raise DabinError(f"{folder / MANIFEST}: a job entry is damaged ({entry!r})") from None
    return jobs


def _unfinished_runs(folder: Path, planned: Sequence[Job], runs: Sequence[Run]) -> list[Run]:
    """The spec's runs that have no row (results.csv holds results only): incomplete or missing."""
    listed = {run.key for run in runs}
    unfinished = []
    for job in planned:
        if job.name in listed:
            continue
        state = run_state(folder / job.name)
        # A done or failed run without a row means results.csv is older than the folders: rerun the sweep.
        unfinished.append(Run(key=job.name, line=0, method=job.method, norm=job.norm, source=job.source or "",
                              target=job.target or "", seed=job.seed, fold=job.fold,
                              status=state if state in ("incomplete", "missing") else "incomplete",
                              reason="", accuracy={}, model_selection="", hparams=job.setting))
    return unfinished


def _record_runs(folder: Path, planned: Sequence[Job]) -> list[Run] | None:
    """The sweep's runs from their folders: the manifest's jobs, then any other run folder.

    Returns None when the folder holds no run folder (a ``results.csv`` alone).
    """
    jobs = jobs_in(folder, planned)
    if not any((folder / job.name / JOB).is_file() for job in jobs):
        return None
    return [Run.from_folder(job, folder / job.name) for job in jobs]


def _row_domains(rows: Sequence[dict[str, str]]) -> list[tuple[int, str]]:
    """Every (line, domain) a row names: source, target and its tested domain (split suffix dropped)."""
    named = []
    for line, row in enumerate(rows, start=2):
        for value in (row["source"], row["target"], row["domain"].split("/", 1)[0]):
            if value:
                named.append((line, value))
    return named


def _domains(path: Path, rows: Sequence[dict[str, str]], manifest: dict[str, Any] | None,
             manifest_path: Path) -> tuple[str, ...]:
    named = _row_domains(rows)
    if manifest and manifest.get("domains"):
        domains = tuple(manifest["domains"])
        known = {_key(d) for d in domains}
        for line, value in named:
            if _key(value) not in known:
                raise DabinError(f"{path}: line {line}: domain {value!r} is not one of the sweep's domains "
                                 f"({', '.join(domains)}, from {manifest_path})")
        return domains
    by_key: dict[str, str] = {}
    for _, value in named:
        by_key.setdefault(_key(value), value)
    return tuple(by_key.values())


def _is_office_home(dataset: str, domains: Sequence[str]) -> bool:
    from datamodules.officehome import OFFICE_HOME_DOMAINS

    known = {_key(d) for d in OFFICE_HOME_DOMAINS}
    return dataset == "officehome" or (bool(domains) and all(_key(d) in known for d in domains))


def _office_home_order(domains: Sequence[str]) -> tuple[str, ...]:
    from datamodules.officehome import OFFICE_HOME_DOMAINS

    order = [_key(d) for d in OFFICE_HOME_DOMAINS]
    return tuple(sorted(domains, key=lambda d: order.index(_key(d)) if _key(d) in order else len(order)))


def load_sweep(folder: str | Path) -> Sweep:
    """Read and check a sweep folder.

    Args:
        folder: The sweep's output folder: run folders and ``sweep.json`` as ``dabin sweep`` leaves
            them (read from the run records), or a ``results.csv`` alone.

    Returns:
        The checked sweep.

    Raises:
        DabinError: No such folder, no results, a damaged manifest, or (a ``results.csv`` alone) a
            results file in an inconsistent state (bad value, duplicated row, rows of one run that
            disagree, an ok transfer run without its target's row, a domain the manifest does not
            list); the message names file and line.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DabinError(f"no sweep folder: {folder} does not exist")
    if not folder.is_dir():
        raise DabinError(f"{folder} is not a folder; give the sweep's output folder (it holds {RESULTS})")
    manifest = _read_manifest(folder / MANIFEST)
    planned = _planned_jobs(folder, manifest)
    runs = _record_runs(folder, planned)
    from_records = runs is not None
    if runs is not None:
        named = [name for run in runs for name in (run.source, run.target, *run.accuracy) if name and "/" not in name]
        domains = tuple(manifest["domains"]) if manifest and manifest.get("domains") else tuple(dict.fromkeys(named))
    else:
        path = folder / RESULTS
        rows = read_results(path)
        runs = _group_runs(path, rows)
        runs += _unfinished_runs(folder, planned, runs)
        domains = _domains(path, rows, manifest, folder / MANIFEST)
    dataset = str((manifest or {}).get("dataset") or "")
    office_home = _is_office_home(dataset, domains)
    if office_home:
        domains = _office_home_order(domains)
    return Sweep(folder=folder, name=str((manifest or {}).get("name") or folder.resolve().name),
                 dataset=dataset or ("officehome" if office_home else "custom"), domains=domains,
                 office_home=office_home, runs=tuple(runs), has_manifest=manifest is not None,
                 spec=str(manifest["spec"]) if manifest and manifest.get("spec") else None, from_records=from_records)


def task_order(sweep: Sweep) -> list[tuple[str, str]]:
    """The transfer tasks as ``(source, target)``: the paper's order on Office-Home, else first seen."""
    tasks = list(dict.fromkeys((run.source, run.target) for run in sweep.runs if run.transfer))
    if sweep.office_home:
        order = {task: i for i, task in enumerate(PAPER_TASKS)}
        tasks.sort(key=lambda t: order.get(format_task(*t), len(order)))
    return tasks
