"""Pre-emption: SIGUSR1/SIGTERM save ``last.ckpt`` and exit 75; a resumed run continues; checkpoints
are written atomically."""

from __future__ import annotations

import errno
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.demos.boring_classes import BoringModel
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dabin.errors import EXIT_PREEMPTED
from dabin.io import WriteError
from dabin.lightning_cli import DabinCLI
from dabin.modules.checkpoints import AtomicCheckpointIO, Preemption

from .conftest import DEMO, REPO

#: The demo's mixed-domain run, small: a 1/8-width ResNet on 32-px digits, ~0.1 s a step on a CPU.
FIT = [sys.executable, "-m", "dabin", "fit", "-c", str(DEMO / "mixed.yaml"), "--trainer.limit_val_batches", "1",
       "--trainer.limit_test_batches", "1", "--data.batch_size", "16", "--trainer.log_every_n_steps", "1"]


def test_failed_save_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"global_step": 1, "weight": torch.ones(3)}, path)
    before = path.read_bytes()
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    def disk_full(obj: object, handle: object, *args: object, **kwargs: object) -> None:
        handle.write(b"PK\x03\x04 the first half of a checkpoint")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(WriteError) as caught:
        checkpoint_io.save_checkpoint({"global_step": 2, "weight": torch.zeros(3)}, path)
    assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_cli_wires_atomic_checkpoints_and_preemption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGUSR1)}
    seen = {}

    def run_subcommand(cli: DabinCLI, subcommand: str) -> None:  # instead of fitting: look at the handlers
        seen.update({signum: signal.getsignal(signum) for signum in handlers})

    monkeypatch.setattr(DabinCLI, "_run_subcommand", run_subcommand)
    cli = DabinCLI(["fit", "-c", str(DEMO / "mixed.yaml"), "--trainer.default_root_dir", str(tmp_path)])
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert cli.preemption in cli.trainer.callbacks and cli.preemption.save
    assert all(seen[signum] == cli.preemption._handler for signum in handlers)  # handled during the command
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers  # and put back after it


class _Signalling(BoringModel):
    """Sends itself a signal in the middle of validation (during fit) or of testing."""

    def __init__(self, signum: int, stage: str) -> None:
        super().__init__()
        self.signum, self.stage = signum, stage

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> object:
        fitting = not self.trainer.sanity_checking
        if self.stage == "validation" and fitting and self.global_step == 10 and batch_idx == 1:
            os.kill(os.getpid(), self.signum)
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> object:
        if self.stage == "test" and batch_idx == 1:
            os.kill(os.getpid(), self.signum)
        return super().test_step(batch, batch_idx)


def _trainer(root: Path, preemption: Preemption, max_steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=max_steps, val_check_interval=5, limit_val_batches=4, limit_test_batches=4,
                      accelerator="cpu", devices=1, default_root_dir=root, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, plugins=[AtomicCheckpointIO()],
                      callbacks=[ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0),
                                 preemption])


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_signal_while_validating_saves_the_step_and_resumes(signum: int, tmp_path: Path) -> None:
    # SIGTERM: Lightning's own eval loop cuts validation (SIGTERMException); SIGUSR1: Preemption does.
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    preemption = Preemption()
    with preemption.handling(), pytest.raises(SIGTERMException):
        _trainer(tmp_path, preemption, 50).fit(_Signalling(signum, "validation"))
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert (preemption.stopped, preemption.signum, preemption.stage) == (True, signum, "validation")
    assert preemption.step == 10
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert preemption.checkpoint == last and torch.load(last, weights_only=False)["global_step"] == 10
    assert "at step 10 while validating; checkpoint saved to" in preemption.summary()

    resumed = _trainer(tmp_path, Preemption(), 13)
    resumed.fit(_Signalling(signum, "none"), ckpt_path=last)
    assert resumed.global_step == 13


def test_signal_while_testing_stops_without_saving(tmp_path: Path) -> None:
    preemption = Preemption()
    trainer = _trainer(tmp_path, preemption, 4)
    model = _Signalling(signal.SIGUSR1, "test")
    with preemption.handling():
        trainer.fit(model)
        saved = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
        with pytest.raises(SIGTERMException):
            trainer.test(model, verbose=False)
    assert (preemption.stopped, preemption.stage, preemption.checkpoint) == (True, "test", None)
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == saved
    assert "while testing; kept the last checkpoint" in preemption.summary()


class _LateSignal(BoringModel):
    def on_train_end(self) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)  # after the last batch: fit ends normally


def test_signal_as_training_ends_saves_and_stops_before_testing(tmp_path: Path) -> None:
    preemption = Preemption()
    trainer = _trainer(tmp_path, preemption, 4)
    with preemption.handling():
        trainer.fit(_LateSignal())
        assert preemption.stop_after_fit(trainer)  # what DabinCLI.after_fit asks instead of testing
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert (preemption.stopped, preemption.checkpoint, preemption.step) == (True, last, 4)
    assert torch.load(last, weights_only=False)["global_step"] == 4
    assert preemption.summary().startswith("pre-empted (SIGUSR1) at step 4; checkpoint saved to")


def _wait_for(text: str, log: Path, process: subprocess.Popen[bytes], err: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        if process.poll() is not None:
            pytest.fail(f"trainer ended (status {process.returncode}) before {text!r}:\n{err.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} after {timeout} s")
        time.sleep(0.1)


def _run(args: list[str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        # Its own session, as the sweep starts trainers: the signal is ours to send, not the terminal's.
        return subprocess.Popen([*FIT, *args], stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=REPO,
                                env=env, start_new_session=True)


@pytest.mark.parametrize(("signum", "extra", "resume"), [
    (signal.SIGUSR1, [], True),  # Slurm's / submitit's requeue signal, to the trainer
    # The sweep stopping a trainer: its whole process group. The resume is the same whichever signal
    # saved the checkpoint, so it is run once (above).
    (signal.SIGTERM, ["--data.num_workers", "2"], False),
], ids=["SIGUSR1", "SIGTERM-group"])
def test_preempted_trainer_saves_exits_75_and_resumes(signum: int, extra: list[str], resume: bool,
                                                       tmp_path: Path) -> None:
    root, out, err = tmp_path / "run", tmp_path / "out.txt", tmp_path / "err.txt"
    process = _run(["--trainer.max_steps", "400", "--trainer.default_root_dir", str(root), *extra], out, err)
    try:
        # Past step 50 (the plain progress line), so the first attempt has logged a training curve.
        _wait_for("step 50/400", out, process, err)
        if signum == signal.SIGTERM:
            os.killpg(process.pid, signum)  # data-loader workers get it too, as from the sweep
        else:
            os.kill(process.pid, signum)
        status = process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr = err.read_text()
    assert status == EXIT_PREEMPTED, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "pre-empted" in line]
    assert len(lines) == 1 and lines[0].startswith(f"dabin: pre-empted ({signal.Signals(signum).name}) at step"), stderr
    last = root / "checkpoints" / "last.ckpt"
    assert f"checkpoint saved to {last}; resume with --ckpt_path {last}" in lines[0]
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]
    step = torch.load(last, weights_only=False, map_location="cpu")["global_step"]
    assert 0 < step < 400 and f"at step {step};" in lines[0]
    assert not (root / "metrics.json").exists()  # not tested: a half-trained model has no result
    log = root / "logs" / "metrics.csv"
    first = [row for row in csv.DictReader(log.open()) if row.get("train/loss")]
    assert first and all(int(row["step"]) < step for row in first)  # the first attempt's training curve
    if not resume:
        return

    resumed = subprocess.run([*FIT, "--trainer.max_steps", str(step + 3), "--trainer.default_root_dir", str(root),
                              "--ckpt_path", str(last)], capture_output=True, text=True, cwd=REPO, timeout=180,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"training from step {step} to {step + 3}" in resumed.stdout  # continued, not restarted
    assert json.loads((root / "metrics.json").read_text())["steps"] == step + 3
    rows = list(csv.DictReader(log.open()))
    # The resumed run appended to the log: the first attempt's rows are all still there.
    kept = {(row["step"], row["train/loss"]) for row in rows}
    assert all((row["step"], row["train/loss"]) in kept for row in first)
    assert any(row.get("test/acc/avg") for row in rows)
