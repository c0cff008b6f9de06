"""Checkpoints that survive a crash, and training that survives pre-emption.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file beside its target, fsyncs
it and renames it over the target: a crash, a kill or a full disk mid-write leaves the previous
``last.ckpt`` as it was, never a torn file that a resumed run would fail to load.

:class:`Preemption` turns SIGUSR1 (Slurm's and submitit's "your time is up" signal) and SIGTERM
(pre-emption, ``kill``, a sweep stopping its trainers) into an orderly stop: at the next batch end
it saves ``last.ckpt`` (when training made progress), stops, and the ``dabin`` command exits with
:data:`~dabin.errors.EXIT_PREEMPTED` without testing the half-trained model or writing
``metrics.json``. Rerunning with ``--ckpt_path .../last.ckpt`` continues where it stopped.

How it meets Lightning's own SIGTERM handling: Lightning installs a SIGTERM handler of its own when
a stage starts (after the ``setup`` hooks) that sets ``trainer.received_sigterm`` and keeps any
handler already there; its loops then raise :class:`~pytorch_lightning.utilities.exceptions.SIGTERMException`
at the next batch boundary, and cut validation or testing short. :class:`Preemption` installs its
handlers in ``setup``, before Lightning's, so Lightning chains ours on SIGTERM (and leaves our
SIGUSR1 alone); ours only records the signal. At the end of a training batch (where our hook runs
before Lightning's check) it saves the checkpoint and raises ``SIGTERMException`` itself, the one
exit Lightning already has for signals. When Lightning raised first (the signal came during
validation, testing, or between our check and Lightning's), :meth:`Preemption.on_exception` saves
the checkpoint in a single process, or keeps the previous one under DDP, where the ranks may stand
at different places and a collective save could hang.

Data-loader workers: torch's workers die of any SIGTERM their parent did not send, and the trainer
then fails with "DataLoader worker ... killed by signal". So while the signals are handled,
processes forked by the trainer start with them blocked: a signal sent to the whole process group
(the sweep's ``killpg``, ``scancel``) reaches the trainer alone, which saves and shuts its workers
down through their queues as usual. (Workers started by ``spawn``/``forkserver`` are not covered:
if one dies of the signal, the run still ends as pre-empted, keeping the previous checkpoint.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dabin.errors import DabinError
from dabin.io import atomic_open

__all__ = ["LAST_CHECKPOINT", "PREEMPTION_SIGNALS", "AtomicCheckpointIO", "Preemption"]

#: The file name the CLI's :class:`~pytorch_lightning.callbacks.ModelCheckpoint` gives the last checkpoint.
LAST_CHECKPOINT = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION
#: Signals that mean "save and stop": Slurm's (and submitit's) requeue signal, and pre-emption / ``kill``.
PREEMPTION_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGUSR1", "SIGTERM") if hasattr(signal, name))  # no SIGUSR1 on Windows


#: How many Preemption objects handle the signals now (their handlers are installed).
_active = 0
_fork_state = threading.local()


def _block_in_children() -> None:
    # Before a fork while the signals are handled: the child (a data-loader worker) starts with
    # them blocked (see the module's docstring); the parent unblocks them right after the fork.
    if _active:
        _fork_state.mask = signal.pthread_sigmask(signal.SIG_BLOCK, PREEMPTION_SIGNALS)


def _unblock_in_parent() -> None:
    mask = getattr(_fork_state, "mask", None)
    if mask is not None:
        _fork_state.mask = None
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_block_in_children, after_in_parent=_unblock_in_parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`~lightning_fabric.plugins.io.torch_io.TorchCheckpointIO` that never leaves a torn file.

    A local checkpoint is written to a temporary file in the target's folder, flushed, fsynced and
    moved over the target with :func:`os.replace`; a failed write (full disk, kill, crash) removes the
    temporary file and leaves the previous checkpoint byte for byte. Remote paths (``s3://``...)
    keep Lightning's own write.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        """Save ``checkpoint`` to ``path`` atomically.

        Args:
            checkpoint: Model and trainer state.
            path: Target file.
            storage_options: Not supported (as for :class:`TorchCheckpointIO`).
        """
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        with atomic_open(target, "wb") as handle:  # the replaced file's mode, else umask's
            torch.save(checkpoint, handle)
        _fsync_folder(target.parent)


def _is_local(path: _PATH) -> bool:
    return isinstance(get_filesystem(path), LocalFileSystem)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable once the folder's entry is on disk (best effort: not every system allows it).
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_Handler = Callable[[int, FrameType | None], Any] | int | None


class Preemption(Callback):
    """Save ``last.ckpt`` and stop when SIGUSR1 or SIGTERM arrives.

    The signal is only recorded; at the next batch end every rank agrees to stop (a rank that got
    the signal is enough), a training batch end saves the checkpoint (collectively, as Lightning's
    saves are) and the stage ends with :class:`SIGTERMException`. After the stop, :attr:`stopped`
    is true and :meth:`summary` says where the run can resume. The ``dabin`` command turns this into
    exit status :data:`~dabin.errors.EXIT_PREEMPTED` (75) and skips testing.

    While installed, the handlers replace any earlier handler of these two signals (Lightning's
    Slurm auto-requeue handler of SIGUSR1 included: resubmitting is the scheduler's or the sweep's
    job); they are restored at teardown. Data-loader workers forked meanwhile start with the two
    signals blocked, so a signal sent to the whole process group does not kill them under the trainer.

    Args:
        dirpath: Folder of the checkpoint; default the ModelCheckpoint's folder, else
            ``<default_root_dir>/checkpoints``.
        save: Whether to save a checkpoint on pre-emption (off when checkpointing is disabled).
    """

    def __init__(self, dirpath: str | os.PathLike[str] | None = None, save: bool = True) -> None:
        self.dirpath = dirpath
        self.save = save
        #: The first pre-emption signal received (None: none yet).
        self.signum: int | None = None
        #: Whether work was cut short by a pre-emption signal.
        self.stopped = False
        #: The checkpoint this callback saved, if it saved one.
        self.checkpoint: Path | None = None
        #: The checkpoint to resume from after the stop: the saved one, or the previous last.ckpt.
        self.resume_from: Path | None = None
        #: The global step at the stop, and what was running (``"train"``, ``"validation"``, ...).
        self.step: int | None = None
        self.stage: str | None = None
        #: Why the pre-emption checkpoint could not be written ("" if it was, or was not tried).
        self.save_error = ""
        self.is_global_zero = True
        self._depth = 0
        self._counted = False  # installed (in the main thread) and counted in _active
        self._held_by_setup = False
        self._previous: dict[int, _Handler] = {}
        self._start_step: int | None = None
        self._handler = self._on_signal  # one bound method, so it can be recognised when installed

    def _reset(self) -> None:
        self.signum = None
        self.stopped = False
        self.checkpoint = self.resume_from = None
        self.step = None
        self.stage = None
        self.save_error = ""

    # ------------------------------------------------------------------ signal handlers

    @property
    def requested(self) -> bool:
        """Whether this process received a pre-emption signal."""
        return self.signum is not None

    def install(self) -> None:
        """Start handling the signals (nestable: the outermost :meth:`restore` puts the old handlers back)."""
        global _active
        if self._depth == 0 and threading.current_thread() is threading.main_thread():
            for signum in PREEMPTION_SIGNALS:
                current = signal.getsignal(signum)
                if current != self._handler:
                    self._previous[signum] = current
                signal.signal(signum, self._handler)
            _active += 1
            self._counted = True
        self._depth += 1

    def restore(self) -> None:
        """Stop handling the signals: the handlers from before :meth:`install` are back."""
        global _active
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and self._counted:
            self._counted = False
            _active -= 1
            for signum in PREEMPTION_SIGNALS:
                if signal.getsignal(signum) == self._handler:
                    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    @contextlib.contextmanager
    def handling(self) -> Iterator[Preemption]:
        """Handle the signals for the duration of a block (the whole ``dabin`` command)."""
        self.install()
        try:
            yield self
        finally:
            self.restore()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._depth > 0:
            if self.signum is None:
                self.signum = signum
            return
        # A stale copy: after a stage that ended in an exception, Lightning puts back the handlers it
        # found when the stage began (ours) after our on_exception restored the earlier ones.
        # Behave as the handler we replaced, and put it back.
        previous = self._previous.get(signum)
        previous = signal.SIG_DFL if previous is None else previous
        installed = signal.getsignal(signum) == self._handler
        if installed:
            signal.signal(signum, previous)
        if callable(previous):
            previous(signum, frame)
        elif installed and previous == signal.SIG_DFL:
            signal.raise_signal(signum)

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Install the handlers (before Lightning installs its SIGTERM handler, which keeps ours)."""
        if self._depth == 0:  # used on its own, not inside handling(): a fresh stage
            self._reset()
        if not self._held_by_setup:
            self.install()
            self._held_by_setup = True
        self._start_step = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Restore the handlers found at setup."""
        self._release()

    def _release(self) -> None:
        if self._held_by_setup:
            self._held_by_setup = False
            self.restore()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After a resumed run restored its step: the step a checkpoint would add something to.
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Save and stop if any rank got a pre-emption signal (all ranks reach here together)."""
        if self._agreed(trainer):
            if self.save:
                self._save(trainer)
            self._stop(trainer, "train")

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Cut validation short; the checkpoint is saved by :meth:`on_exception` (one process)."""
        if self._agreed(trainer):
            self._stop(trainer, "validation")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        """Cut testing short (testing changes no state: nothing to save)."""
        if self._agreed(trainer):
            self._stop(trainer, "test")

    def on_predict_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                             batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Cut prediction short."""
        if self._agreed(trainer):
            self._stop(trainer, "predict")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A stage ended by a signal: save (one process) or keep the last checkpoint (DDP); restore handlers."""
        try:
            if isinstance(exception, SIGTERMException):
                if not self.stopped:  # Lightning stopped first (SIGTERM while validating or testing)
                    self._record(trainer, _stage_of(trainer))
                if (self.save and self.checkpoint is None and not self.save_error
                        and trainer.state.fn == TrainerFn.FITTING and trainer.world_size == 1
                        and self._progressed(trainer)):
                    # At a batch boundary, and one process: nobody to wait for. Under DDP a rank
                    # may be elsewhere, so the last checkpoint is kept.
                    self._save(trainer)
            elif self.requested and _worker_killed(exception):
                # A data-loader worker not started by fork died of the same signal, anywhere in a
                # step: nothing consistent to save, the last checkpoint is kept.
                self._record(trainer, _stage_of(trainer))
        finally:
            self._release()

    def stop_after_fit(self, trainer: pl.Trainer) -> bool:
        """After a fit that ended normally: whether to stop (a signal came late); saves the final state if so.

        Every rank must call it (the decision and the save are collective).
        """
        if not self._agreed(trainer):
            return False
        self._record(trainer, "fit end")
        if self.save and trainer.global_step > 0:
            self._save(trainer)
        return True

    # ------------------------------------------------------------------ helpers

    def _agreed(self, trainer: pl.Trainer) -> bool:
        local = self.requested or bool(getattr(trainer, "received_sigterm", False))
        return bool(trainer.strategy.reduce_boolean_decision(local, all=False))

    def _progressed(self, trainer: pl.Trainer) -> bool:
        return self._start_step is not None and trainer.global_step > self._start_step

    def _stop(self, trainer: pl.Trainer, stage: str) -> None:
        self._record(trainer, stage)
        raise SIGTERMException

    def _record(self, trainer: pl.Trainer, stage: str) -> None:
        if self.signum is None:
            self.signum = signal.SIGTERM  # Lightning's flag, or another rank's signal
        self.stopped = True
        self.stage = stage
        self.step = trainer.global_step
        self.is_global_zero = trainer.is_global_zero
        if self.resume_from is None:
            previous = self.path(trainer)
            self.resume_from = previous if previous.is_file() else None

    def path(self, trainer: pl.Trainer) -> Path:
        """Where the pre-emption checkpoint goes: ``<checkpoint folder>/last.ckpt``."""
        folder = self.dirpath
        if folder is None:
            callback = trainer.checkpoint_callback
            folder = getattr(callback, "dirpath", None) if isinstance(callback, ModelCheckpoint) else None
        if folder is None:
            folder = Path(trainer.default_root_dir) / "checkpoints"
        return Path(folder) / LAST_CHECKPOINT

    def _save(self, trainer: pl.Trainer) -> None:
        path = self.path(trainer)
        try:
            # Every rank calls it; rank 0 writes (through AtomicCheckpointIO).
            trainer.save_checkpoint(path, weights_only=False)
        except (OSError, DabinError) as error:  # a full disk (WriteError), a quota: the old file is intact
            self.save_error = str(error)
            return
        self.checkpoint = self.resume_from = path
        self.step = trainer.global_step

    def summary(self) -> str:
        """One line: the signal, the step, and how to resume."""
        name = signal.Signals(self.signum).name if self.signum is not None else "signal"
        where = f"at step {self.step}" if self.step is not None else "before training"
        if self.stage not in (None, "train", "fit end"):
            where += f" while {'validating' if self.stage == 'validation' else self.stage + 'ing'}"
        if self.save_error:
            where += f"; could not save the checkpoint ({self.save_error})"
        if self.checkpoint is not None:
            return (f"pre-empted ({name}) {where}; checkpoint saved to {self.checkpoint}; "
                    f"resume with --ckpt_path {self.checkpoint}")
        if self.resume_from is not None:
            return (f"pre-empted ({name}) {where}; kept the last checkpoint {self.resume_from}; "
                    f"resume with --ckpt_path {self.resume_from}")
        return f"pre-empted ({name}) {where}; no checkpoint saved: run the command again"


def _worker_killed(exception: BaseException) -> bool:
    return isinstance(exception, RuntimeError) and "DataLoader worker" in str(exception)


def _stage_of(trainer: pl.Trainer) -> str:
    if trainer.sanity_checking or trainer.validating:
        return "validation"
    if trainer.testing:
        return "test"
    if trainer.predicting:
        return "predict"
    return "train"
