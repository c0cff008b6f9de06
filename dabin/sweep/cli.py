"""``dabin sweep SPEC``: run a spec's jobs, resumably, and keep ``results.csv`` up to date.

    dabin sweep experiments/demo/sweep.yaml --workers 2
    dabin sweep experiments/officehome/sweep.yaml --tasks Ar->Cl,Cl->Ar --norms bin \\
        -- --data.root /data/OfficeHome --trainer.max_steps 5

Everything after ``--`` is passed to every run (and is part of each run's identity).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import shlex
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from dabin.errors import DabinError
from dabin.io import WriteError
from dabin.record import RESULTS, Manifest, read_runs, result_rows, run_state, write_results
from dabin.sweep.job import DEFAULT_COMMAND, Job, expand_jobs, planned
from dabin.sweep.launchers import LAUNCHERS, make_launcher
from dabin.sweep.progress import Progress
from dabin.record.files import JOB, MANIFEST
from dabin.sweep.running import Outcome
from dabin.sweep.spec import SweepSpec, load_spec, narrow, sweep_fingerprint

__all__ = ["COMMAND_VARIABLE", "main"]

#: Environment variable replacing the training command (a shell-quoted string), e.g. for a fake trainer.
COMMAND_VARIABLE = "DABIN_SWEEP_COMMAND"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dabin sweep", description="Run a resumable sweep of training runs.",
                                     epilog="Arguments after `--` are passed to every run.")
    parser.add_argument("spec", help="sweep spec (YAML), e.g. experiments/demo/sweep.yaml")
    parser.add_argument("--out", help="output folder (default: the spec's `out`)")
    for axis, example in (("tasks", "Ar->Cl,Cl→Ar"), ("norms", "bn,bin"), ("methods", "dann,source_only"),
                          ("seeds", "0,1"), ("folds", "0,1")):
        parser.add_argument(f"--{axis}", help=f"only these {axis}, comma-separated (e.g. {example})")
    parser.add_argument("--workers", type=int, help="jobs at a time (default: the spec's `workers`)")
    parser.add_argument("--launcher", default="local", choices=tuple(LAUNCHERS), help="where jobs run")
    parser.add_argument("--process-per-run", action="store_true",
                        help="start a fresh trainer process for every run; by default the local launcher runs "
                             "`dabin fit` jobs one after another in one long-lived process per worker, which "
                             "saves the seconds of imports and kernel loading per run and computes the same")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and which are done; run nothing")
    parser.add_argument("--retries", type=int, default=1,
                        help="times a failed run is tried again in this sweep (default 1)")
    parser.add_argument("--rerun-failed", action="store_true",
                        help="also redo runs that failed in an earlier sweep (by default they are kept as failed)")
    return parser


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


def _split_tasks(value: str | None) -> list[str] | None:
    """``--tasks`` items: a comma separates tasks, but also a multi-source task's sources (``Ar,Cl->Rw``).

    Every task has an arrow, so a piece without one is a source of the task that follows it.
    """
    pieces = _split(value)
    if pieces is None:
        return None
    tasks: list[str] = []
    pending: list[str] = []
    for piece in pieces:
        pending.append(piece)
        if any(arrow in piece for arrow in ("->", "→", ":")):
            tasks.append(",".join(pending))
            pending = []
    return tasks + pending  # a trailing piece without an arrow: resolve_task names it


def _split_ints(value: str | None, flag: str) -> list[int] | None:
    items = _split(value)
    if items is None:
        return None
    for item in items:
        if not item.isdigit():
            raise DabinError(f"{flag}: {item!r} is not a non-negative integer")
    return [int(item) for item in items]


def _command(spec: SweepSpec) -> list[str]:
    if os.environ.get(COMMAND_VARIABLE):
        return shlex.split(os.environ[COMMAND_VARIABLE])
    return list(spec.command or DEFAULT_COMMAND)


def _manifest(spec: SweepSpec, jobs: Sequence[Job]) -> Manifest:
    # "jobs" is every run the spec asks for (whatever the filters of one invocation), so the report
    # can say what is missing without placeholder rows in results.csv.
    return Manifest(name=spec.name, fingerprint=spec.fingerprint(), dataset=spec.dataset, domains=tuple(spec.domains),
                    configs=dict(spec.configs), extra=tuple(spec.extra), spec=str(spec.path),
                    jobs=tuple(job.to_json() for job in jobs))


def _comparable(manifest: Manifest) -> dict[str, object]:
    """What the fingerprint covers, by name, to say which part differs (a config's contents aside)."""
    return {"dataset": manifest.dataset, "domains": manifest.domains, "configs": manifest.configs,
            "extra": manifest.extra}


def _extends(stored: Manifest, manifest: Manifest) -> bool:
    """Whether ``manifest`` only adds methods to the sweep ``stored`` describes (or leaves some out).

    Same dataset, domains and extra arguments, the same config for every method both name, and the
    stored sweep's configs still as they were (its fingerprint, recomputed from the files now):
    then their runs are comparable, as a sweep with a seed more is.
    """
    if (stored.dataset, tuple(stored.domains), tuple(stored.extra)) != (manifest.dataset, tuple(manifest.domains),
                                                                        tuple(manifest.extra)):
        return False
    if any(manifest.configs[m] != config for m, config in stored.configs.items() if m in manifest.configs):
        return False
    if not stored.spec:
        return False
    folder = Path(stored.spec).parent
    try:
        again = sweep_fingerprint(stored.dataset, stored.domains, dict(stored.configs),
                                  {m: (folder / c).resolve() for m, c in stored.configs.items()}, stored.extra)
    except OSError:
        return False
    return again == stored.fingerprint


def _check_out_dir(out: Path, manifest: Manifest) -> None:
    """Refuse an output folder that holds another sweep's runs (they would mix in one table)."""
    if out.exists() and not out.is_dir():
        raise DabinError(f"--out {out} is a file, not a folder")
    try:
        stored = Manifest.read(out)
    except DabinError:
        raise DabinError(f"{out / MANIFEST} is damaged; use another --out or remove the folder") from None
    if stored is not None:
        if stored.fingerprint != manifest.fingerprint and not _extends(stored, manifest):
            mine, theirs = _comparable(manifest), _comparable(stored)
            changed = [key for key in mine if mine[key] != theirs[key]]
            what = f"its {', '.join(changed)} differ" if changed else "a config file's contents changed"
            raise DabinError(f"{out} holds runs of another sweep ({stored.name!r}; {what}); "
                             "use another --out or remove the folder")
    elif any(out.glob(f"*/{JOB}")):
        raise DabinError(f"{out} holds runs but no {MANIFEST}; use another --out or remove the folder")


def _rows(out: Path, jobs: Sequence[Job]) -> list[dict[str, object]]:
    """``results.csv``'s rows: the records of the sweep's runs, and of any other run folder in ``out``."""
    return [row for run in read_runs(out, planned(jobs)) for row in result_rows(run)]


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold the output folder's lock: two sweeps in one folder would run the same jobs twice."""
    handle = open(out / ".lock", "a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DabinError(f"another sweep is running in {out}") from None
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (Slurm pre-emption, `kill`) stops the sweep as cleanly as Ctrl-C does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _counts(states: Sequence[str]) -> str:
    return ", ".join(f"{states.count(s)} {s}" for s in ("done", "failed", "incomplete", "missing") if s in states)


def _would_run(state: str, rerun_failed: bool) -> bool:
    return state != "done" and (state != "failed" or rerun_failed)


def _dry_run(jobs: Sequence[Job], out: Path, rerun_failed: bool) -> None:
    states = [run_state(out / job.name) for job in jobs]
    for job, state in zip(jobs, states):
        where = job.task or f"fold {job.fold}"
        setting = f"{job.setting}  " if job.setting else ""
        print(f"{state:<10} {job.method:<11} {job.norm:<4} {where:<10} seed {job.seed:<3} {setting}{out / job.name}")
    runs = sum(_would_run(state, rerun_failed) for state in states)
    kept = "" if rerun_failed or "failed" not in states else " (failed runs are kept; --rerun-failed redoes them)"
    print(f"{len(jobs)} jobs ({_counts(states) or 'none'}); {runs} would run{kept}")


def _summary(all_jobs: Sequence[Job], out: Path) -> str:
    """Where the whole spec stands (not only this invocation's filter)."""
    states = [run_state(out / job.name) for job in all_jobs]
    text = f"spec: {len(all_jobs)} jobs, {_counts(states)}"
    if states.count("missing") or states.count("incomplete"):
        text += " (`dabin sweep ... --dry-run` lists them)"
    return text


def main(argv: Sequence[str]) -> int:
    """Run ``dabin sweep`` (``argv`` without the word ``sweep``).

    Returns:
        0 if every selected job is done, 1 if some failed (now or in an earlier sweep) or were left
        incomplete, 130 if interrupted.

    Raises:
        DabinError: A bad spec, filter or output folder; a write the file system refused (full
            disk): the sweep stops, finished runs and ``results.csv`` stay as they were, and a
            rerun after freeing space completes the sweep.
    """
    args_list = list(argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1:]
    args = _parser().parse_args(args_list)
    if args.retries < 0:
        raise DabinError(f"--retries must be 0 or more, got {args.retries}")
    spec = load_spec(args.spec)
    spec = dataclasses.replace(spec, extra=(*spec.extra, *extra))
    selected = narrow(spec, methods=_split(args.methods), norms=_split(args.norms), tasks=_split_tasks(args.tasks),
                      seeds=_split_ints(args.seeds, "--seeds"), folds=_split_ints(args.folds, "--folds"))
    all_jobs, jobs = expand_jobs(spec), expand_jobs(selected)
    out = Path(args.out) if args.out else spec.out
    manifest = _manifest(spec, all_jobs)
    _check_out_dir(out, manifest)
    if args.dry_run:
        _dry_run(jobs, out, args.rerun_failed)
        return 0
    workers = args.workers if args.workers is not None else spec.workers
    if workers < 1:
        raise DabinError(f"--workers must be at least 1, got {workers}")
    launcher = make_launcher(args.launcher, workers, out, spec.slurm, process_per_run=args.process_per_run)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(out, error) from None
    results = out / RESULTS
    with _exclusive(out):
        manifest.write(out)
        states = {job.name: run_state(out / job.name) for job in jobs}
        todo = [(job, out / job.name) for job in jobs if _would_run(states[job.name], args.rerun_failed)]
        kept = sum(state == "failed" for state in states.values()) if not args.rerun_failed else 0
        print(f"sweep {spec.name!r}: {len(jobs)} jobs, {sum(s == 'done' for s in states.values())} already done, "
              f"{len(todo)} to run ({workers} at a time, {args.launcher}) in {out}"
              + (f"; {kept} failed earlier, kept (--rerun-failed redoes them)" if kept else ""), flush=True)
        progress = Progress(len(todo), workers)
        outcomes: list[Outcome] = []
        attempts: dict[str, int] = {}
        retry: list[tuple[Job, Path]] = []

        def on_outcome(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if outcome.fault:
                # A full disk fails every run alike: stop now, leave this run incomplete for the rerun.
                raise DabinError(f"{outcome.fault} (run {outcome.job.label}, log: {outcome.run_dir / 'log.txt'}); "
                                 "free space and rerun the same command to resume")
            attempts[outcome.job.name] = attempts.get(outcome.job.name, 0) + 1
            if outcome.status == "failed" and attempts[outcome.job.name] <= args.retries:
                print(f"retrying {outcome.job.label} (attempt {attempts[outcome.job.name] + 1} of "
                      f"{args.retries + 1}): {outcome.reason}", file=sys.stderr, flush=True)
                retry.append((outcome.job, outcome.run_dir))
            else:
                progress.update(outcome)
            if outcome.status != "interrupted":
                write_results(results, _rows(out, all_jobs))

        interrupted = False
        try:
            with _sigterm_as_interrupt():
                batch = todo
                while batch:
                    launcher.run(batch, _command(spec), on_outcome)
                    batch, retry[:] = list(retry), []
        except KeyboardInterrupt:
            interrupted = True
        except DabinError:
            # The disk may still be full: results.csv keeps its last complete version.
            with contextlib.suppress(DabinError):
                write_results(results, _rows(out, all_jobs))
            raise
        write_results(results, _rows(out, all_jobs))
    last = {o.job.name: o for o in outcomes}
    failed = [o for o in last.values() if o.status == "failed"]
    stopped = [o for o in last.values() if o.status == "interrupted"]
    if interrupted:
        print(f"interrupted: {len(stopped)} running job(s) stopped and left incomplete; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    for outcome in failed:
        print(f"failed: {outcome.job.label}: {outcome.reason} (log: {outcome.run_dir / 'log.txt'})", file=sys.stderr)
    for outcome in stopped:
        print(f"incomplete: {outcome.job.label}: {outcome.reason}; rerun the same command to resume", file=sys.stderr)
    finished = sum(o.status == "ok" for o in last.values())
    print(f"results: {results} ({finished} of {len(todo)} jobs finished"
          f"{f', {len(failed)} failed' if failed else ''}{f', {len(stopped)} incomplete' if stopped else ''}); "
          f"{_summary(all_jobs, out)}")
    # 0 only when every selected job is done (a failed run kept from an earlier sweep is not).
    return 0 if all(run_state(out / job.name) == "done" for job in jobs) else 1
