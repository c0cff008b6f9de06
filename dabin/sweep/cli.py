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
import json
import os
import shlex
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from dabin.errors import DabinError
from dabin.io import atomic_write_text
from dabin.sweep.jobs import DEFAULT_COMMAND, Job, Outcome, expand_jobs, run_state
from dabin.sweep.launchers import LAUNCHERS, make_launcher
from dabin.sweep.progress import Progress
from dabin.sweep.results import collect_results, write_results
from dabin.sweep.spec import SweepSpec, load_spec, narrow

__all__ = ["COMMAND_VARIABLE", "MANIFEST", "main"]

#: Environment variable replacing the training command (a shell-quoted string), e.g. for a fake trainer.
COMMAND_VARIABLE = "DABIN_SWEEP_COMMAND"
MANIFEST = "sweep.json"


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
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and which are done; run nothing")
    return parser


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


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


def _manifest(spec: SweepSpec) -> dict[str, object]:
    return {"name": spec.name, "fingerprint": spec.fingerprint(), "dataset": spec.dataset,
            "domains": list(spec.domains), "configs": spec.configs, "extra": list(spec.extra),
            "spec": str(spec.path)}


def _check_out_dir(out: Path, manifest: dict[str, object]) -> None:
    """Refuse an output folder that holds another sweep's runs (they would mix in one table)."""
    path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise DabinError(f"--out {out} is a file, not a folder")
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            raise DabinError(f"{path} is damaged; use another --out or remove the folder") from None
        if stored.get("fingerprint") != manifest["fingerprint"]:
            changed = [key for key in ("dataset", "domains", "configs", "extra") if stored.get(key) != manifest[key]]
            what = f"its {', '.join(changed)} differ" if changed else "a config file's contents changed"
            raise DabinError(f"{out} holds runs of another sweep ({stored.get('name')!r}; {what}); "
                             "use another --out or remove the folder")
    elif any(out.glob("*/job.json")):
        raise DabinError(f"{out} holds runs but no {MANIFEST}; use another --out or remove the folder")


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


def _dry_run(jobs: Sequence[Job], out: Path) -> None:
    states = [run_state(out / job.name) for job in jobs]
    for job, state in zip(jobs, states):
        where = job.task or f"fold {job.fold}"
        print(f"{state:<10} {job.method:<11} {job.norm:<4} {where:<10} seed {job.seed:<3} {out / job.name}")
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("done", "failed", "incomplete", "missing") if s in states)
    print(f"{len(jobs)} jobs ({counts or 'none'}); {len(jobs) - states.count('done')} would run")


def main(argv: Sequence[str]) -> int:
    """Run ``dabin sweep`` (``argv`` without the word ``sweep``).

    Returns:
        0 if every job finished, 1 if some failed, 130 if interrupted.

    Raises:
        DabinError: A bad spec, filter or output folder.
    """
    args_list = list(argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1:]
    args = _parser().parse_args(args_list)
    spec = load_spec(args.spec)
    spec = dataclasses.replace(spec, extra=(*spec.extra, *extra))
    selected = narrow(spec, methods=_split(args.methods), norms=_split(args.norms), tasks=_split(args.tasks),
                      seeds=_split_ints(args.seeds, "--seeds"), folds=_split_ints(args.folds, "--folds"))
    all_jobs, jobs = expand_jobs(spec), expand_jobs(selected)
    out = Path(args.out) if args.out else spec.out
    manifest = _manifest(spec)
    _check_out_dir(out, manifest)
    if args.dry_run:
        _dry_run(jobs, out)
        return 0
    workers = args.workers if args.workers is not None else spec.workers
    if workers < 1:
        raise DabinError(f"--workers must be at least 1, got {workers}")
    launcher = make_launcher(args.launcher, workers, out, spec.slurm)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.csv"
    with _exclusive(out):
        if not (out / MANIFEST).is_file():
            atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        todo = [(job, out / job.name) for job in jobs if run_state(out / job.name) != "done"]
        print(f"sweep {spec.name!r}: {len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
              f"({workers} at a time, {args.launcher}) in {out}", flush=True)
        progress = Progress(len(todo), workers)
        outcomes: list[Outcome] = []

        def on_outcome(outcome: Outcome) -> None:
            outcomes.append(outcome)
            progress.update(outcome)
            if outcome.status != "interrupted":
                write_results(results, collect_results(out, all_jobs, spec.domains))

        interrupted = False
        try:
            with _sigterm_as_interrupt():
                launcher.run(todo, _command(spec), on_outcome)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            write_results(results, collect_results(out, all_jobs, spec.domains))
    failed = [o for o in outcomes if o.status == "failed"]
    stopped = sum(o.status == "interrupted" for o in outcomes)
    if interrupted:
        print(f"interrupted: {stopped} running job(s) stopped and left incomplete; rerun the same command to resume",
              file=sys.stderr)
        return 130
    for outcome in failed:
        print(f"failed: {outcome.job.label} ({outcome.run_dir}/log.txt): {outcome.reason}", file=sys.stderr)
    print(f"results: {results} ({len(todo) - len(failed)} of {len(todo)} jobs finished"
          f"{f', {len(failed)} failed' if failed else ''})")
    return 1 if failed else 0
