"""``dabin fit | validate | test | predict``: the Lightning CLI over dabin's tasks and data modules.

    dabin fit -c experiments/demo/dann.yaml
    dabin fit -c experiments/officehome/dann.yaml --data.root /data/OfficeHome --model.weights /w/resnet18.pth
    dabin test -c experiments/demo/mixed.yaml --ckpt_path runs/x/checkpoints/last.ckpt

Model and data are chosen by ``class_path`` in the config; ``data.num_classes`` is linked to
``model.num_classes``. ``fit`` tests the final model afterwards (``--test_after_fit false`` skips
it), and every run folder (``--trainer.default_root_dir``) receives ``metrics.json``, ``gates.csv``
(BIN models), ``checkpoints/last.ckpt``, CSV logs (TensorBoard too if installed) under ``logs/``
with the resolved ``config.yaml``. Several GPUs or nodes: ``--trainer.devices 4 --trainer.strategy
ddp --trainer.num_nodes 2`` (Lightning detects Slurm by itself).

Checkpoints are written atomically (:class:`~dabin.modules.checkpoints.AtomicCheckpointIO`). SIGUSR1
or SIGTERM (pre-emption, a sweep stopping its trainers) saves ``checkpoints/last.ckpt`` at the next
batch end and exits with status 75 (:data:`~dabin.errors.EXIT_PREEMPTED`) without testing; the
same command with ``--ckpt_path <run>/checkpoints/last.ckpt`` continues the run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from lightning_fabric.plugins import CheckpointIO
from pytorch_lightning.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from pytorch_lightning.plugins.layer_sync import LayerSync
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from dabin.errors import EXIT_PREEMPTED, DabinError
from dabin.io import checkpoint_problem
from dabin.nn import SyncNorm
from dabin.modules import DomainModule, RunSummary, progress_callback
from dabin.modules.checkpoints import AtomicCheckpointIO, Preemption
from datamodules import DomainDataModule

__all__ = ["DabinCLI", "main"]


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted."""

    def _check_log_dir_exists(self) -> None:
        # Lightning removes the file here; a resumed (pre-empted) run must keep its first part.
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])


class _ResumableCSVLogger(CSVLogger):
    """A CSV logger whose metrics a resumed run appends to (columns merged as new ones appear)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def _loggers(root: Path) -> list[Logger]:
    # One fixed folder (no version_N): a resumed run appends to the same logs.
    loggers: list[Logger] = [_ResumableCSVLogger(root, name="logs", version="")]
    if _TENSORBOARD_AVAILABLE:
        loggers.append(TensorBoardLogger(root, name="logs", version="", default_hp_metric=False))
    return loggers


class DabinCLI(LightningCLI):
    """LightningCLI with dabin's links, run outputs and progress display.

    Args:
        args: Command-line arguments including the subcommand (``["fit", "-c", "x.yaml"]``).
    """

    def __init__(self, args: Sequence[str]) -> None:
        #: Pre-emption signals are handled for the whole command (building, fit, test); after it,
        #: ``preemption.stopped`` says whether a signal cut the run short.
        self._logs = _HeldLogs()
        self.preemption = Preemption()
        with self.preemption.handling():
            try:
                super().__init__(
                    DomainModule, DomainDataModule, subclass_mode_model=True, subclass_mode_data=True,
                    save_config_kwargs={"overwrite": True},  # a resumed run rewrites its config.yaml
                    parser_kwargs={"exit_on_error": False}, seed_everything_default=0, args=list(args),
                    auto_configure_optimizers=False,
                )
            except SIGTERMException:
                # Raised by Preemption, or by Lightning's loops after SIGTERM: a stop, not a failure.
                self.preemption.stopped = True
            except RuntimeError:
                if not self.preemption.stopped:  # else a data-loader worker killed by the same signal
                    raise

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's class count into the model and add ``--test_after_fit``."""
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the final model and write metrics.json")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured trainer plus a last-checkpoint callback, loggers, progress and run summary."""
        config = self._get(self.config_init, "trainer", default={})
        root = Path(config.get("default_root_dir") or os.getcwd())
        callbacks = list(config.get("callbacks") or [])
        if config.get("logger") in (None, True):
            kwargs["logger"] = _loggers(root)
        checkpointing = config.get("enable_checkpointing") is not False
        if checkpointing and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            # The model is selected without target labels: the last one. Saved every epoch so an
            # interrupted run resumes (``--ckpt_path .../last.ckpt``) where it was.
            callbacks.append(ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0,
                                             enable_version_counter=False))
        if config.get("enable_progress_bar") is not False:
            progress = progress_callback()
            callbacks.append(progress)
            kwargs["enable_progress_bar"] = not hasattr(progress, "every_n_steps")
        seed = self._get(self.config, "seed_everything")
        callbacks.append(RunSummary(self._config_dict(), seed if isinstance(seed, int) else None))
        # SIGUSR1/SIGTERM: save last.ckpt and stop (a Preemption of the user's own replaces ours).
        own = next((c for c in callbacks if isinstance(c, Preemption)), None)
        if own is None:
            self.preemption.save = checkpointing
            callbacks.append(self.preemption)
        else:
            self.preemption = own
        kwargs["callbacks"] = callbacks
        plugins = _plugins(config)
        if plugins:
            kwargs["plugins"] = plugins
        return super().instantiate_trainer(**kwargs)

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; a value they refuse is one line naming it, not a traceback."""
        built = False
        try:
            super().instantiate_classes()
            # Lightning accepts it and then divides by it when it counts the run's steps.
            if self.trainer.accumulate_grad_batches < 1:
                raise DabinError(f"trainer.accumulate_grad_batches must be at least 1, got "
                                 f"{self.trainer.accumulate_grad_batches}")
            built = True
        except DabinError:
            raise
        except (ValueError, TypeError, MisconfigurationException) as error:
            if _from_parser(error):
                raise  # jsonargparse's wrapper of a class's error: main() reduces it to one line
            # Raised while building from a config that parsed (e.g. --trainer.max_steps -5,
            # --trainer.devices 3 on a 2-GPU machine): the value is the user's, so is the fix.
            raise DabinError(_first_line(error)) from None
        finally:
            self._logs.finish(emit=built)

    def _set_seed(self) -> None:
        """Seed, holding Lightning's info lines from here until the classes are built."""
        self._logs.start()
        super()._set_seed()

    def _config_dict(self) -> dict[str, Any]:
        try:
            return json.loads(self._parser(self.subcommand).dump(self.config[self.subcommand], format="json"))
        except Exception:  # noqa: BLE001 - the summary must not fail a finished run over a dump
            return {}

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` before Lightning reads the model's hyper-parameters from it.

        A checkpoint to resume or evaluate from must be readable: a torn one (disk full, node lost
        while writing) is one line naming it, instead of torch's unpickler error.
        """
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt is not None and ckpt not in _LIGHTNING_CKPT_NAMES:
            self._check_ckpt_path(str(ckpt))
        super()._parse_ckpt_path()

    @staticmethod
    def _check_ckpt_path(ckpt: str) -> None:
        """Raise a one-line :class:`DabinError` if ``ckpt`` is not a readable checkpoint file."""
        path = Path(ckpt).expanduser()
        if not path.is_file():
            raise DabinError(f"--ckpt_path {ckpt}: no such checkpoint file")
        problem = checkpoint_problem(path)
        if problem:
            raise DabinError(f"--ckpt_path {ckpt} cannot be read ({problem}); give another checkpoint, or none to "
                             "start afresh")

    def after_fit(self) -> None:
        """Test the final model (the model-selection rule: last checkpoint, no target labels).

        Not after a pre-emption signal: a signal that arrived as training ended saves the final
        state and stops here (a pre-empted fit does not get this far: it ends in SIGTERMException).
        """
        if self.preemption.stop_after_fit(self.trainer):
            return
        if self._get(self.config, "test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)


def _plugins(config: dict[str, Any]) -> list[Any]:
    """The trainer's plugins: the config's own plus dabin's synced BIN and atomic checkpoints."""
    plugins = config.get("plugins")
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    added: list[Any] = []
    if config.get("sync_batchnorm") and not any(isinstance(p, LayerSync) for p in plugins):
        # Lightning's own layer sync turns BIN layers into SyncBatchNorm (gates lost, GPUs only).
        added.append(SyncNorm())
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        # Write checkpoints to a temporary file and rename it: a kill or a full disk mid-write
        # leaves the previous last.ckpt whole. A CheckpointIO of the user's own is kept.
        added.append(AtomicCheckpointIO())
    return [*plugins, *added] if added else plugins


#: ``ckpt_path`` values Lightning resolves itself (not files).
_LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")

#: Lightning's package loggers, whose handlers print its info lines ("Seed set to 0", "GPU available").
_LIGHTNING_LOGGERS = ("lightning_fabric", "pytorch_lightning")


class _Hold(logging.Filter):
    """Keeps what a handler would print, to print it later or not at all."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        # Lightning's advertising line is dropped for good; everything else is held.
        if not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip:"):
            self.records.append(record)
        return False


class _HeldLogs:
    """Lightning's info lines ("Seed set to 0", "GPU available"), held from seeding until the classes
    are built: printed if that succeeds, dropped if a bad value stops it, so the error is the only line."""

    def __init__(self) -> None:
        self._held: list[tuple[logging.Handler, _Hold]] = []

    def start(self) -> None:
        """Hold from now on."""
        self._held = [(handler, _Hold()) for name in _LIGHTNING_LOGGERS
                      for handler in logging.getLogger(name).handlers]
        for handler, hold in self._held:
            handler.addFilter(hold)

    def finish(self, emit: bool) -> None:
        """Stop holding; print what was held if ``emit``."""
        for handler, hold in self._held:
            handler.removeFilter(hold)
            for record in hold.records if emit else ():
                handler.handle(record)
        self._held = []


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


_NOISE = re.compile(r"^(Does not validate|Subtypes:|Errors:|Given value|Expected a <class 'NoneType'>)")


def _one_line(error: BaseException) -> str:
    """jsonargparse's nested message reduced to ``key.path: problem`` (or the DabinError behind it)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, DabinError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    keys: list[str] = []
    class_path = ""
    detail = ""
    for raw in str(error).splitlines():
        line = raw.strip().lstrip("- ").strip()
        key = re.match(r'Parser key "([^"]+)":\s*(.*)', line)
        if key:
            keys.append(key.group(1))
            line = key.group(2)
        given = re.match(r"Problem with given class_path '([^']+)'", line)
        if given:
            class_path = given.group(1)
        elif line and not _NOISE.match(line):
            detail = line
    where = f"{'.'.join(keys)}: " if keys else ""
    return f"{where}{detail or 'invalid arguments'}{f' (in {class_path})' if class_path else ''}"


def _from_parser(error: BaseException) -> bool:
    # jsonargparse raises ArgumentError, or ValueError from a class it failed to instantiate.
    return isinstance(error, ArgumentError) or "Does not validate against any of the Union subtypes" in str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the Lightning CLI (``argv`` starts with the subcommand).

    Returns:
        0 on success, :data:`~dabin.errors.EXIT_PREEMPTED` (75) when SIGUSR1 or SIGTERM stopped the
        run (after saving its checkpoint; one line on stderr says how to resume).

    Raises:
        DabinError: A bad argument or config key (jsonargparse's message reduced to one line).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # We pass the arguments explicitly (also when they came from sys.argv); Lightning's warning
    # about that, and its advertising tip, would be noise in every run's log.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    try:
        cli = DabinCLI(args)
    except DabinError:
        raise
    except (ArgumentError, ValueError, TypeError) as error:
        # Problems in a config or in the arguments of a class it names; errors raised while
        # training are not wrapped this way and keep their traceback.
        if not _from_parser(error):
            raise
        raise DabinError(_one_line(error)) from None
    except MisconfigurationException as error:
        # Lightning's word for a flag it refuses, also when it checks only at fit time
        # (e.g. --trainer.limit_train_batches 1.5).
        raise DabinError(_first_line(error)) from None
    if cli.preemption.stopped:
        if cli.preemption.is_global_zero:
            print(f"dabin: {cli.preemption.summary()}", file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    return 0
