"""Launchers run a list of jobs: ``local`` (subprocesses on this machine) and ``submitit`` (Slurm).

Both keep at most ``workers`` jobs in flight and report each :class:`~dabin.sweep.running.Outcome` as
it arrives; on Ctrl-C (or SIGTERM, which the sweep turns into one) they stop their jobs, which
stay incomplete and are redone by the next sweep. The local launcher runs the default trainer in
one long-lived :class:`~dabin.sweep.running.Worker` process per slot, so a run does not pay the imports again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from dabin.errors import DabinError
from dabin.sweep.job import DEFAULT_COMMAND, Job
from dabin.sweep.running import Outcome, RunningJob, Worker, start_job

__all__ = ["LAUNCHERS", "Launcher", "LocalLauncher", "RequeueableRun", "SubmititLauncher", "make_launcher",
           "slot_environment"]

Planned = tuple[Job, Path]
OnOutcome = Callable[[Outcome], None]
#: Seconds between two looks at the running jobs.
_POLL_S = 0.1


class Launcher(Protocol):
    """Runs jobs; see :class:`LocalLauncher` and :class:`SubmititLauncher`."""

    workers: int

    def run(self, planned: Sequence[Planned], command: Sequence[str], on_outcome: OnOutcome) -> None:
        """Run every ``(job, run_dir)`` with the training ``command`` and report each outcome."""


def _cpu_count() -> int:
    # The cores this process may use (a Slurm allocation or taskset), not the machine's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _gpu_count() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count()


def slot_environment(slot: int, workers: int, cpus: int, gpus: int) -> dict[str, str]:
    """Environment of the trainer in worker slot ``slot``: its share of CPU threads and its GPU.

    Parallel trainers that each start one thread per core would oversubscribe the CPU and all run
    slower than one after the other; each gets ``cpus // workers`` threads instead.

    Args:
        slot: Worker slot, 0 to ``workers - 1``.
        workers: Jobs running at a time.
        cpus: Cores available to the sweep.
        gpus: GPUs available to the sweep.

    Returns:
        Variables to set (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES``).

    GPUs are dealt out in disjoint blocks of ``gpus // workers`` (slot 0 gets GPUs 0..b-1, slot 1
    the next b, ...), so a run with ``--trainer.devices b`` has GPUs of its own; with more workers
    than GPUs the slots share them round-robin, one each.
    """
    threads = str(max(1, cpus // workers))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus and workers > 1:
        block = max(1, gpus // workers)
        first = (slot * block) % gpus
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(block))
    return env


class LocalLauncher:
    """Jobs as subprocesses of the sweep, ``workers`` at a time, each with its slot's threads/GPU.

    The default trainer (:data:`~dabin.sweep.job.DEFAULT_COMMAND`) runs in one long-lived worker
    process per slot, started when the slot gets its first job and again after a worker exited (a
    failed run ends its worker); another command (a spec's ``command``) is a fresh process per run.

    Args:
        workers: Jobs running at a time.
        reuse: Whether to run the default trainer in workers (False: a fresh process per run).
    """

    def __init__(self, workers: int = 1, reuse: bool = True) -> None:
        self.workers = max(1, workers)
        self.reuse = reuse
        self._cpus = _cpu_count()
        # Importing torch costs seconds; only parallel jobs need to be told which GPU is theirs.
        self._gpus = _gpu_count() if self.workers > 1 else 0

    def run(self, planned: Sequence[Planned], command: Sequence[str], on_outcome: OnOutcome) -> None:
        """Run the jobs; see :class:`Launcher`."""
        pending = deque(planned)
        running: dict[int, RunningJob] = {}
        # A worker imports dabin's trainer: any other command is an arbitrary program, run as one.
        reuse = self.reuse and tuple(command) == DEFAULT_COMMAND
        workers: dict[int, Worker] = {}
        try:
            while pending or running:
                for slot in range(self.workers):
                    if slot not in running and pending:
                        job, run_dir = pending.popleft()
                        env = slot_environment(slot, self.workers, self._cpus, self._gpus)
                        worker = self._worker(workers, slot, env) if reuse else None
                        running[slot] = start_job(job, run_dir, command, env, worker)
                for slot, job in list(running.items()):
                    if job.poll() is not None:
                        del running[slot]
                        on_outcome(job.finish())
                time.sleep(_POLL_S)
        except BaseException:
            for job in running.values():
                on_outcome(job.terminate())
            raise
        finally:
            # Workers live within run(): PR_SET_PDEATHSIG ties them to the thread that started them.
            for worker in workers.values():
                worker.close()
            for worker in workers.values():
                worker.join()

    @staticmethod
    def _worker(workers: dict[int, Worker], slot: int, env: Mapping[str, str]) -> Worker:
        """The slot's idle worker; a new one if it has none or its last one exited (or is exiting)."""
        worker = workers.get(slot)
        if worker is None or not worker.usable:
            if worker is not None:
                worker.close()
                worker.join()
            worker = workers[slot] = Worker(env)
        return worker


#: Seconds a trainer gets to save its checkpoint after the pre-emption signal before it is stopped.
_SAVE_GRACE_S = 120.0


class RequeueableRun:
    """What submitit runs on a node: one job, requeued from its checkpoint on pre-emption or time-out.

    submitit's checkpoint protocol (its ``Checkpointable``): when Slurm warns that the job is
    about to be pre-empted or to reach its time limit (``--signal USR2@90``, submitit's default),
    submitit calls :meth:`checkpoint` on the node and requeues what it returns. Here that sends
    SIGUSR1 to the trainer, which saves ``checkpoints/last.ckpt`` and exits as pre-empted
    (:data:`dabin.errors.EXIT_PREEMPTED`), leaving the run incomplete; the requeued job starts it
    again and :func:`~dabin.sweep.running.start_job` resumes it from that checkpoint. (Lightning's
    own SLURM auto-requeue is not used: it requeues the whole sbatch script, which here is
    submitit's, and saves ``hpc_ckpt_*.ckpt`` files the sweep does not resume from.)
    """

    def __init__(self) -> None:
        self._running: RunningJob | None = None

    def __call__(self, job: Job, run_dir: Path, command: Sequence[str]) -> Outcome:
        """Run the job to its end (or until :meth:`checkpoint` stops it)."""
        self._running = start_job(job, run_dir, command)
        try:
            self._running.process.wait()
        except BaseException:
            self._running.terminate()
            raise
        return self._running.finish()

    def checkpoint(self, job: Job, run_dir: Path, command: Sequence[str]) -> Any:
        """Make the trainer save and stop, then hand submitit the same job to requeue."""
        import submitit

        running = self._running
        if running is not None and running.process.poll() is None:
            try:
                os.killpg(running.process.pid, signal.SIGUSR1)
                running.process.wait(_SAVE_GRACE_S)
            except subprocess.TimeoutExpired:
                running.terminate()
            except ProcessLookupError:
                pass
        if running is not None:
            running.finish()  # exit 75: incomplete, no failure recorded
        return submitit.helpers.DelayedSubmission(RequeueableRun(), job, run_dir, list(command))


class SubmititLauncher:
    """Jobs through submitit: Slurm on a cluster, its local executor elsewhere (the test path).

    Args:
        workers: Jobs in flight at a time (the array parallelism).
        folder: Where submitit keeps its logs and pickles.
        parameters: Executor parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node`` ...);
            ``cluster`` picks ``slurm``, ``local`` or ``debug`` instead of submitit's automatic choice.

    Raises:
        DabinError: submitit is not installed, or a parameter is not one it knows.
    """

    def __init__(self, workers: int, folder: Path, parameters: Mapping[str, Any] | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise DabinError("the submitit launcher needs submitit: pip install 'dabin[slurm]'") from None
        params = dict(parameters or {})
        self.workers = max(1, workers)
        self.executor = submitit.AutoExecutor(folder=folder, cluster=params.pop("cluster", None))
        params.setdefault("timeout_min", 24 * 60)
        try:
            self.executor.update_parameters(**params)
        except (ValueError, TypeError) as error:
            raise DabinError(f"submitit parameters: {str(error).splitlines()[0]}") from None

    def run(self, planned: Sequence[Planned], command: Sequence[str], on_outcome: OnOutcome) -> None:
        """Run the jobs; see :class:`Launcher`."""
        pending = deque(planned)
        in_flight: list[tuple[Any, Job, Path, float]] = []
        try:
            while pending or in_flight:
                while pending and len(in_flight) < self.workers:
                    job, run_dir = pending.popleft()
                    handle = self.executor.submit(RequeueableRun(), job, run_dir, list(command))
                    in_flight.append((handle, job, run_dir, time.monotonic()))
                for entry in list(in_flight):
                    handle, job, run_dir, started = entry
                    if handle.done():
                        in_flight.remove(entry)
                        on_outcome(self._outcome(handle, job, run_dir, started))
                time.sleep(_POLL_S * 5)
        except BaseException:
            for handle, job, run_dir, started in in_flight:
                handle.cancel(check=False)
                on_outcome(Outcome(job, run_dir, "interrupted", seconds=time.monotonic() - started))
            raise

    @staticmethod
    def _outcome(handle: Any, job: Job, run_dir: Path, started: float) -> Outcome:
        try:
            return handle.result()
        except Exception as error:  # the job died before it could record it (node lost, timeout)
            from dabin.io import atomic_write_text

            reason = f"submitit job {handle.job_id}: {str(error).strip().splitlines()[-1][:300]}"
            atomic_write_text(run_dir / "failed", reason + "\n")
            return Outcome(job, run_dir, "failed", reason=reason, seconds=time.monotonic() - started)


#: Launcher name -> factory(workers, out_dir, submitit parameters, process per run).
LAUNCHERS: dict[str, Callable[[int, Path, Mapping[str, Any], bool], Launcher]] = {
    "local": lambda workers, out, params, process_per_run: LocalLauncher(workers, reuse=not process_per_run),
    # Each submitit job is a process of its own anyway.
    "submitit": lambda workers, out, params, process_per_run: SubmititLauncher(workers, out / ".submitit", params),
}


def make_launcher(name: str, workers: int, out_dir: Path, parameters: Mapping[str, Any] | None = None,
                  process_per_run: bool = False) -> Launcher:
    """A launcher by name.

    Args:
        name: ``local`` or ``submitit``.
        workers: Jobs at a time.
        out_dir: The sweep's output folder.
        parameters: submitit parameters (the spec's ``slurm`` section).
        process_per_run: Start a fresh trainer process for every run instead of reusing workers.

    Raises:
        DabinError: Unknown launcher.
    """
    if name not in LAUNCHERS:
        raise DabinError(f"unknown launcher {name!r}; expected one of {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name](workers, out_dir, parameters or {}, process_per_run)
