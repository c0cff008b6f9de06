"""How a sweep's job runs and ends: a trainer subprocess or a job of a long-lived worker, and its markers.

A run is a fresh ``python -m dabin fit`` subprocess (:class:`RunningJob`), or a job of a long-lived
:class:`Worker` process that runs ``dabin fit`` in-process (:class:`WorkerJob`); both end the same way:
the run folder gets its ``done`` marker once ``metrics.json`` was checked, or ``failed`` with the one
line that says why (:mod:`dabin.record.files`). Only ``done`` makes a run finished: a run killed
after writing metrics.json is still redone.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dabin.errors import EXIT_PREEMPTED
from dabin.io import WriteError, atomic_write_text, checkpoint_problem
from dabin.record.files import DONE, FAILED, JOB, LOG, METRICS, RunState, run_state
from dabin.record.metrics import RecordError, RunRecord
from dabin.sweep.job import DABIN, DEFAULT_COMMAND, Job, job_command

__all__ = ["UNREADABLE_SUFFIX", "Outcome", "RunningJob", "Worker", "WorkerJob", "check_metrics", "start_job"]

#: Seconds a terminated trainer gets to save its checkpoint and exit before it is killed.
_GRACE_S = 60.0
#: Seconds a worker whose request pipe was closed gets to exit before it is killed.
_CLOSE_S = 30.0
#: Seconds between two looks at a worker that has not answered yet.
_POLL_S = 0.1


@dataclasses.dataclass
class Outcome:
    """How a run ended.

    Attributes:
        job: The job.
        run_dir: Its folder.
        status: ``ok``, ``failed`` or ``interrupted``.
        reason: One line for failed runs.
        accuracy: The run's average accuracy (%) for finished runs.
        seconds: Wall time of this attempt.
        fault: For an interrupted run, a fault of the machine rather than of the run (a full disk)
            that stops the whole sweep: retrying other runs would meet it too.
    """

    job: Job
    run_dir: Path
    status: Literal["ok", "failed", "interrupted"]
    reason: str = ""
    accuracy: float | None = None
    seconds: float = 0.0
    fault: str = ""


#: What a trainer's log says when the disk (or the quota) is full: a fault of the machine, not of the run.
_DISK_FULL = re.compile(rf"(No space left on device|Disk quota exceeded|\[Errno ({errno.ENOSPC}|{errno.EDQUOT})\])")


def _disk_full_line(log: Path) -> str:
    """The line of a trainer's log that says the disk is full, or ""."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip()[:300] for line in reversed(lines) if _DISK_FULL.search(line)), "")


def _last_error_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "no log"
    # A traceback's last line is "ExcType: message", the cause in one line; dabin's own errors are
    # "dabin: error: ...".
    for line in reversed(lines):
        if re.match(r"^(dabin: error:|([A-Za-z_][\w.]*\.)?[A-Z]\w*(Error|Exception|Exit|Interrupt)\b)", line):
            return line[:300]
    # The last exception or CLI error line names the cause; progress bars and warnings after it do not.
    for line in reversed(lines):
        if re.search(r"(Error|Exception|error:|Traceback|\bnan\b|NaN)", line) and not line.startswith("Traceback"):
            return line[:300]
    return lines[-1][:300] if lines else "empty log"


def check_metrics(run_dir: Path, expected: Sequence[str] = ()) -> tuple[float | None, str]:
    """Validate a finished run's record; returns (average accuracy, problem or "").

    What :meth:`RunRecord.read` accepts is what ``results.csv`` can export: a run marked done must
    give a readable row, since the sweep never redoes a done run.

    Args:
        run_dir: The run folder.
        expected: Evaluated sets the results must have (a transfer run's target), any spelling.
    """
    if not (run_dir / METRICS).exists():
        return None, f"trainer exited without writing {METRICS}"
    try:
        record = RunRecord.read(run_dir)
    except RecordError as error:
        return None, str(error)
    from datamodules.naming import domain_key

    # A trainer skips a test loader that saw no batch; without its target a transfer run has no result.
    for name in expected:
        if domain_key(name) not in {domain_key(key) for key in record.test}:
            return None, f"{METRICS} has no test result for {name!r} (it has {', '.join(record.test)})"
    return record.average, ""


def _outcome(job: Job, run_dir: Path, code: int, seconds: float) -> Outcome:
    """What a trainer's exit status and run folder say about the run; records ``done`` or ``failed``.

    Args:
        job: The job.
        run_dir: Its folder.
        code: The trainer's exit status (negative: killed by that signal).
        seconds: Wall time of the attempt.
    """
    if code == 0:
        accuracy, problem = check_metrics(run_dir, [job.target] if job.target else [])
        if not problem:
            atomic_write_text(run_dir / DONE, json.dumps({"seconds": round(seconds, 1),
                                                            "finished": time.time()}) + "\n")
            return Outcome(job, run_dir, "ok", accuracy=accuracy, seconds=seconds)
        reason = problem
    else:
        log = run_dir / LOG
        disk_full = _disk_full_line(log)
        # A trainer killed by a pre-emption signal before it could handle it (still starting up)
        # is pre-empted all the same: its last checkpoint, if any, is good.
        preempted = code == EXIT_PREEMPTED or code in (-signal.SIGTERM, -signal.SIGUSR1)
        if preempted or disk_full:
            # Not the run's fault: leave it incomplete, so the next attempt resumes it from its
            # checkpoint, and do not count it as a failure.
            (run_dir / METRICS).unlink(missing_ok=True)
            reason = disk_full or ("pre-empted (checkpoint saved)" if code == EXIT_PREEMPTED else
                                   f"pre-empted by signal {-code} before training started")
            return Outcome(job, run_dir, "interrupted", reason=reason, seconds=seconds, fault=disk_full)
        if code < 0:
            reason = f"killed by signal {-code} ({_last_error_line(log)})"
        else:
            reason = f"exit status {code}: {_last_error_line(log)}"
    atomic_write_text(run_dir / FAILED, reason + "\n")
    return Outcome(job, run_dir, "failed", reason=reason, seconds=seconds)


# Looked up once in the parent: the child must not load libraries between fork and exec.
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the sweep is killed (SIGKILL, OOM), its trainers must not live on and write into run
    # folders that a resumed sweep is redoing. PR_SET_PDEATHSIG = 1.
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)


class RunningJob:
    """A trainer subprocess of one run, started by :func:`start_job`."""

    def __init__(self, job: Job, run_dir: Path, process: subprocess.Popen[bytes], log: Any) -> None:
        self.job = job
        self.run_dir = run_dir
        self.process = process
        self._log = log
        self.started = time.monotonic()

    def poll(self) -> int | None:
        """Exit status, or None while running."""
        return self.process.poll()

    def finish(self) -> Outcome:
        """Record the ended trainer's result in the run folder (``done`` or ``failed`` marker)."""
        code = self._status()
        self._log.close()
        return _outcome(self.job, self.run_dir, code, time.monotonic() - self.started)

    def _status(self) -> int:
        """The ended trainer's exit status."""
        return self.process.wait()

    def terminate(self) -> Outcome:
        """Stop the trainer (and its data-loader workers) and leave the run incomplete for a rerun."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        # On a full disk the note cannot be written; stopping the trainer matters more.
        with contextlib.suppress(OSError):
            self._log.write(b"\n[dabin sweep] interrupted; the run will be redone by the next sweep\n")
        with contextlib.suppress(OSError):
            self._log.close()
        # A trainer stopped by the sweep may still have written metrics; they must not count.
        (self.run_dir / METRICS).unlink(missing_ok=True)
        return Outcome(self.job, self.run_dir, "interrupted", seconds=time.monotonic() - self.started)


class Worker:
    """A long-lived ``python -m dabin.sweep.worker`` that runs ``dabin fit`` jobs one after another.

    It pays the imports (torch, Lightning, the compiled BIN kernels) once instead of once per run
    and puts the process-wide state a run changes back between runs (see :mod:`dabin.sweep.worker`).
    It exits after a job that did not succeed (the next job gets a fresh worker), when its request
    pipe is closed (:meth:`close`), and with the sweep.

    Args:
        env: Extra environment variables (the slot's threads and GPUs) of every job it runs.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        requests_end, self._requests = os.pipe()
        self._results, results_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dabin.sweep.worker", str(requests_end), str(results_end)],
                # Run output goes to each run's log (the worker redirects it); stderr stays the sweep's for
                # a fault of the worker itself, outside any run.
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(requests_end, results_end),
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                # As a trainer's (see start_job): its own session, and it dies with the sweep.
                start_new_session=True, preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
        except BaseException:
            os.close(self._requests)
            os.close(self._results)
            raise
        finally:
            os.close(requests_end)
            os.close(results_end)
        os.set_blocking(self._results, False)
        self._answer = b""
        self._exiting = False

    @property
    def usable(self) -> bool:
        """Whether it can take another job (it is alive and did not say it is exiting)."""
        return not self._exiting and self.process.poll() is None

    def send(self, argv: Sequence[str], log: Path) -> None:
        """Start a job: ``dabin ARGV`` with its output appended to ``log``."""
        try:
            os.write(self._requests, (json.dumps({"argv": list(argv), "log": str(log)}) + "\n").encode())
        except BrokenPipeError:
            # It died while idle (killed, out of memory): status() reports its exit status as the job's.
            self._exiting = True

    def status(self) -> int | None:
        """The running job's exit status once it ended, else None.

        A worker that died without answering (killed by a signal) gives its own exit status.
        """
        exited = self.process.poll()  # before reading: an answer written before the exit is read below
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._results, 4096):
                self._answer += chunk
        if b"\n" in self._answer:
            line, self._answer = self._answer.split(b"\n", 1)
            answer = json.loads(line)
            self._exiting = self._exiting or bool(answer["exiting"])
            return int(answer["status"])
        if exited is not None:
            self._exiting = True
        return exited

    def close(self) -> None:
        """Close the request pipe: an idle worker exits."""
        if self._requests >= 0:
            os.close(self._requests)
            self._requests = -1

    def join(self, timeout: float = _CLOSE_S) -> None:
        """Wait for the worker to exit after :meth:`close`, killing its process group if it does not."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._results >= 0:
            os.close(self._results)
            self._results = -1


class WorkerJob(RunningJob):
    """A run sent to a :class:`Worker`: :class:`RunningJob`'s life cycle, the status from the worker's answer.

    :meth:`terminate` stops the worker's process group as it would a trainer's, worker included.
    """

    def __init__(self, job: Job, run_dir: Path, worker: Worker, log: Any) -> None:
        super().__init__(job, run_dir, worker.process, log)
        self.worker = worker
        self._code: int | None = None

    def poll(self) -> int | None:
        """Exit status of the run, or None while it runs."""
        if self._code is None:
            self._code = self.worker.status()
        return self._code

    def _status(self) -> int:
        code = self.poll()
        while code is None:
            time.sleep(_POLL_S)
            code = self.poll()
        return code


#: Suffix given to a checkpoint that cannot be read, so it is kept for a look but never resumed from.
UNREADABLE_SUFFIX = ".unreadable"


def _resume_checkpoint(run_dir: Path, state: RunState, warn: Callable[[str], None]) -> Path | None:
    """The newest readable checkpoint of an incomplete run; unreadable ones are set aside with a warning."""
    # A failed attempt's checkpoint may hold the NaNs that failed it: restart those from scratch.
    if state != "incomplete":
        return None
    checkpoints = sorted(run_dir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for checkpoint in checkpoints:
        problem = checkpoint_problem(checkpoint)
        if not problem:
            return checkpoint
        aside = checkpoint.with_name(checkpoint.name + UNREADABLE_SUFFIX)
        os.replace(checkpoint, aside)
        older = [c for c in checkpoints if c.exists() and c != checkpoint]
        then = "trying an older checkpoint" if older else "restarting the run from step 0"
        warn(f"{run_dir.name}: checkpoint {checkpoint.relative_to(run_dir)} is unreadable ({problem}); kept as "
             f"{aside.name}, {then}")
    return None


def _warn(message: str) -> None:
    print(f"dabin sweep: warning: {message}", file=sys.stderr, flush=True)


def start_job(job: Job, run_dir: Path, base: Sequence[str] = DEFAULT_COMMAND,
              env: Mapping[str, str] | None = None, worker: Worker | None = None) -> RunningJob:
    """Prepare a run folder and start the trainer in the background (a subprocess, or a job of ``worker``).

    An incomplete run resumes from its ``last.ckpt`` if it has one; stale metrics and markers of
    an earlier attempt are removed first, so nothing from it can be mistaken for this attempt's.

    Args:
        job: The job.
        run_dir: Its folder (created).
        base: The training command.
        env: Extra environment variables (threads, device) for the trainer; a worker has its own.
        worker: An idle worker to run the job in (``base`` must be :data:`DEFAULT_COMMAND`).

    Returns:
        The running job.

    Raises:
        ValueError: A worker for another command than :data:`DEFAULT_COMMAND`.
    """
    if worker is not None and tuple(base) != DEFAULT_COMMAND:
        raise ValueError(f"a worker runs only {shlex.join(DEFAULT_COMMAND)}, not {shlex.join(base)}")
    state = run_state(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(run_dir, error) from None
    notes: list[str] = []

    def warn(message: str) -> None:
        notes.append(message)
        _warn(message)

    ckpt = _resume_checkpoint(run_dir, state, warn)
    for stale in (METRICS, FAILED, DONE):
        (run_dir / stale).unlink(missing_ok=True)
    atomic_write_text(run_dir / JOB, json.dumps(job.to_json(), indent=1) + "\n")
    command = job_command(job, run_dir, base, ckpt)
    try:
        log = open(run_dir / LOG, "ab")
        for note in notes:
            log.write(f"[dabin sweep] warning: {note}\n".encode())
        log.write(f"[dabin sweep] {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
    except OSError as error:
        raise WriteError(run_dir / LOG, error) from None
    if worker is not None:
        worker.send(command[len(DABIN):], run_dir / LOG)
        return WorkerJob(job, run_dir, worker, log)
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        # Own session: the terminal's Ctrl-C reaches only the sweep, which stops its trainers itself
        # (a trainer seeing SIGINT would test and write metrics for a half-trained model).
        start_new_session=True, preexec_fn=_die_with_parent if _PRCTL is not None else None,
    )
    return RunningJob(job, run_dir, process, log)
