"""Long-lived trainer workers: same results as fresh processes, failures and interrupts end them cleanly."""

from __future__ import annotations

import _thread
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from dabin.cli import main
from dabin.sweep import launchers
from dabin.record import run_state
from dabin.sweep.job import DEFAULT_COMMAND, Job, job_command
from dabin.sweep.running import Outcome, Worker
from dabin.sweep.launchers import LocalLauncher, make_launcher
from dabin.sweep.worker import _Baseline, run_job
from tests.sweep.test_resume import ROOT, _alive, _wait_for
from tests.sweep.test_sweep import attempts, run_dir, sweep

CONFIG = str(Path(__file__).resolve().parents[2] / "experiments" / "demo" / "dann.yaml")
#: A real demo run cut to a few steps and two test batches: about a second once the process is warm.
TINY = ("--trainer.max_steps", "4", "--data.batch_size", "8", "--trainer.limit_val_batches", "0",
        "--trainer.limit_test_batches", "2")


def _job(norm: str, seed: int, source: str = "Ink", target: str = "Neon", extra: tuple[str, ...] = TINY) -> Job:
    return Job(method="dann", norm=norm, seed=seed, config=CONFIG, config_file=CONFIG, source=source, target=target, extra=extra)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Worker]:
    """The workers the local launcher starts, in order; one thread per slot (2 would contend on a busy CPU)."""
    workers: list[Worker] = []

    class Recorded(Worker):
        def __init__(self, env: Mapping[str, str] | None = None) -> None:
            super().__init__(env)
            workers.append(self)

    monkeypatch.setattr(launchers, "Worker", Recorded)
    monkeypatch.setattr(launchers, "_cpu_count", lambda: 1)
    return workers


def _run(jobs: list[Job], out: Path, reuse: bool) -> list[Outcome]:
    outcomes: list[Outcome] = []
    LocalLauncher(1, reuse=reuse).run([(job, out / job.name) for job in jobs], DEFAULT_COMMAND, outcomes.append)
    return outcomes


def _gone(pid: int) -> bool:
    """Whether no process of the group ``pid`` (a worker and what it started) is left."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_reused_worker_computes_what_fresh_processes_do(tmp_path: Path, started: list[Worker]) -> None:
    # Both BIN, so the second run reuses the kernels the first compiled; another seed and task, so
    # state the first left behind (random state, seed variables) would change the second's numbers.
    # Only the second run is compared with a fresh process: what the worker's start or the first run
    # leaves behind shows there (a fresh process for the first as well would only repeat the check).
    jobs = [_job("bin", 0), _job("bin", 1, "Neon", "Photo")]
    fresh = _run(jobs[1:], tmp_path / "fresh", reuse=False)
    assert not started
    reused = _run(jobs, tmp_path / "reused", reuse=True)
    assert len(started) == 1 and started[0].process.returncode == 0  # one worker, shut down at the end
    assert [o.status for o in fresh + reused] == ["ok"] * 3, [o.reason for o in fresh + reused]
    job = jobs[1]
    a, b = tmp_path / "fresh" / job.name, tmp_path / "reused" / job.name
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (a, b)]
    assert metrics[0]["test"] == metrics[1]["test"] and metrics[0]["steps"] == 4
    assert (a / "gates.csv").read_text() == (b / "gates.csv").read_text()
    saved = [torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"] for run in (a, b)]
    assert saved[0].keys() == saved[1].keys()
    assert all(torch.equal(saved[0][key], saved[1][key]) for key in saved[0])
    # The log starts as a fresh trainer's does: the command line it stands for.
    assert (b / "log.txt").read_text().splitlines()[0].endswith(" " + " ".join(job_command(job, b)))


def test_failed_run_ends_its_worker_and_the_next_run_gets_a_fresh_one(tmp_path: Path, started: list[Worker]) -> None:
    jobs = [_job("bn", 0, extra=(*TINY, "--model.no_such_key", "1")), _job("bn", 0)]
    bad, good = _run(jobs, tmp_path, reuse=True)
    assert bad.status == "failed"
    assert bad.reason == ("exit status 2: dabin: error: model: Option 'no_such_key' is not accepted "
                          "(in dabin.modules.TransferModule)")
    assert (bad.run_dir / "failed").read_text().strip() == bad.reason
    assert good.status == "ok" and run_state(good.run_dir) == "done"
    assert [worker.process.returncode for worker in started] == [2, 0]


def test_interrupt_stops_the_worker_and_leaves_the_run_incomplete(tmp_path: Path, started: list[Worker]) -> None:
    job = _job("bn", 0, extra=("--trainer.max_steps", "100000", "--data.batch_size", "8"))
    log = tmp_path / job.name / "log.txt"

    def interrupt_when_training() -> None:
        try:
            # Bytes: a read while the trainer writes may end inside a multi-byte character.
            _wait_for(lambda: log.is_file() and b"training from step" in log.read_bytes(), 120, "training to start")
        finally:
            _thread.interrupt_main()  # Ctrl-C in the sweep (also if the wait failed: never a 100000-step run)

    outcomes: list[Outcome] = []
    # interrupt_main does nothing unless Python's own SIGINT handler is installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_when_training, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            LocalLauncher(1).run([(job, tmp_path / job.name)], DEFAULT_COMMAND, outcomes.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [o.status for o in outcomes] == ["interrupted"]
    assert run_state(tmp_path / job.name) == "incomplete" and not (tmp_path / job.name / "metrics.json").exists()
    assert (tmp_path / job.name / "checkpoints" / "last.ckpt").is_file()  # the trainer saved on SIGTERM
    assert log.read_text().rstrip().endswith("interrupted; the run will be redone by the next sweep")
    (worker,) = started
    _wait_for(lambda: _gone(worker.process.pid), 10, "the worker's process group to end")


def test_worker_dies_with_the_sweep() -> None:
    code = "import time; from dabin.sweep.running import Worker; print(Worker().process.pid, flush=True); time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True) as sweep_process:
        try:
            assert sweep_process.stdout is not None
            worker = int(sweep_process.stdout.readline())
            assert _alive(worker)
        finally:
            sweep_process.kill()  # SIGKILL: the sweep cannot stop its workers itself
    _wait_for(lambda: not _alive(worker), 10, f"worker {worker} to die with the sweep")


def test_a_custom_command_is_a_fresh_process_per_run(tiny_spec: Path, started: list[Worker]) -> None:
    assert sweep(tiny_spec, "--methods", "dann", "--norms", "bn", "--tasks", "Aa->Bb") == 0
    assert not started
    out = tiny_spec.parent / "out"
    pids = [attempts(run_dir(out, f"dann_bn_Aa-Bb_s{seed}"))[0].split()[0] for seed in (0, 1)]
    assert pids[0] != pids[1]
    assert make_launcher("local", 2, out).reuse and not make_launcher("local", 2, out, process_per_run=True).reuse
    assert main(["sweep", str(tiny_spec), "--process-per-run", "--dry-run"]) == 0


def test_state_a_run_changes_is_put_back() -> None:
    baseline = _Baseline.capture()
    before = torch.random.get_rng_state()
    lightning = logging.getLogger("pytorch_lightning")
    level, filters = lightning.level, list(lightning.filters)
    # What Lightning and dabin change in a run: seed variables, determinism, threads, held log
    # lines, the pre-emption handler.
    os.environ["PL_GLOBAL_SEED"] = "7"
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(torch.get_num_threads() + 1)
    lightning.addFilter(logging.Filter("x"))
    lightning.setLevel(logging.ERROR)
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    torch.manual_seed(5)
    assert baseline.restore()
    assert os.environ.get("PL_GLOBAL_SEED") == baseline.environ.get("PL_GLOBAL_SEED") != "7"
    assert not torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == baseline.torch[0]
    assert (lightning.level, lightning.filters) == (level, filters)
    assert signal.getsignal(signal.SIGUSR1) == previous
    assert torch.equal(torch.random.get_rng_state(), before)


def test_run_job_behaves_as_a_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.txt"
    # As in a worker: Python's streams write to file descriptors 1 and 2 (pytest's capture does not).
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)

    def noisy(argv: object) -> int:
        print("from python")
        os.write(2, b"from C\n")
        sys.exit("a message")

    assert run_job(noisy, [], str(log)) == 1
    assert run_job(lambda argv: sys.exit(75), [], str(log)) == 75
    assert run_job(lambda argv: None, [], str(log)) == 0

    def broken(argv: object) -> int:
        raise RuntimeError("boom")

    assert run_job(broken, [], str(log)) == 1
    text = log.read_text()
    assert "from python\nfrom C\na message\n" in text and text.rstrip().endswith("RuntimeError: boom")
