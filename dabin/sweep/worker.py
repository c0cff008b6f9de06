"""A long-lived trainer process: ``python -m dabin.sweep.worker REQUESTS RESULTS`` runs ``dabin fit`` jobs in turn.

A short run spends seconds importing torch and Lightning and loading the compiled BIN kernels
before it trains; a sweep's :class:`~dabin.sweep.running.Worker` pays that once per worker slot. The
sweep writes one JSON line per job on the pipe ``REQUESTS`` (a file descriptor):
``{"argv": ["fit", ...], "log": "<run>/log.txt"}``. The worker runs ``dabin ARGV`` in-process
with file descriptors 1 and 2 appended to the log (so C-level and subprocess output go there too)
and answers one JSON line on ``RESULTS``: ``{"status": <exit status>, "exiting": <bool>}``.

A run must compute what it would in a fresh process, so after each run the process-wide state a
run may change is put back as it was after the imports (:class:`_Baseline`): environment
variables (Lightning's ``PL_GLOBAL_SEED``, which ``seed_everything: true`` would reuse, and
``PL_SEED_WORKERS``, ``CUBLAS_WORKSPACE_CONFIG``, DDP's rank variables), random states, torch's
threads and determinism flags, logging levels, handlers and filters, signal handlers and mask,
warning filters, the working directory. The compiled kernels are kept: that is the point.
After a failed run, or one that left state that cannot be put back (a torch.distributed process
group), the worker exits; the sweep starts a fresh one for the next run. It also exits when
``REQUESTS`` is closed: the end of the sweep, or the sweep's death.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import importlib.util
import json
import logging
import os
import random
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

__all__ = ["main"]

_Call = Callable[[Sequence[str]], int | None]


@dataclasses.dataclass
class _Baseline:
    """Process-wide state as it was before the first run, to put back after each run."""

    environ: dict[str, str]
    cwd: str
    streams: tuple[TextIO, TextIO]
    signals: dict[int, Any]
    mask: set[signal.Signals]
    disable: int
    loggers: list[tuple[logging.Logger, int, bool, bool, list[logging.Handler], list[Any]]]
    handlers: list[tuple[logging.Handler, int, list[Any]]]
    rng: tuple[Any, Any, Any]
    torch: tuple[int, bool, bool, bool, bool, str, Any, bool]
    compiled: bool

    @classmethod
    def capture(cls) -> _Baseline:
        """The state now."""
        import numpy as np
        import torch

        from dabin.nn.compiled import compiled_enabled

        loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                          if isinstance(logger, logging.Logger))]
        handlers = {handler for logger in loggers for handler in logger.handlers}
        return cls(
            environ=dict(os.environ), cwd=os.getcwd(), streams=(sys.stdout, sys.stderr),
            signals={signum: signal.getsignal(signum) for signum in _catchable()},
            mask=signal.pthread_sigmask(signal.SIG_BLOCK, []),
            disable=logging.Logger.manager.disable,
            loggers=[(logger, logger.level, logger.propagate, logger.disabled, list(logger.handlers),
                      list(logger.filters)) for logger in loggers],
            handlers=[(handler, handler.level, list(handler.filters)) for handler in handlers],
            rng=(random.getstate(), np.random.get_state(), torch.random.get_rng_state()),
            torch=(torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
                   torch.backends.cudnn.deterministic, torch.get_float32_matmul_precision(),
                   torch.get_default_dtype(), torch.is_grad_enabled()),
            compiled=compiled_enabled(),
        )

    def restore(self) -> bool:
        """Put the state back; False if the run left state that cannot be put back (the worker must exit)."""
        import numpy as np
        import torch

        from dabin.nn.compiled import set_compiled

        # Lightning sets PL_GLOBAL_SEED / PL_SEED_WORKERS (read by the next seed_everything and the
        # data-loader workers), CUBLAS_WORKSPACE_CONFIG with `deterministic`, rank variables for DDP.
        os.environ.clear()
        os.environ.update(self.environ)
        os.chdir(self.cwd)
        sys.stdout, sys.stderr = self.streams
        # The pre-emption callback and Lightning restore their handlers themselves; this is the
        # safety net for a run that ended where they could not.
        for signum, handler in self.signals.items():
            if signal.getsignal(signum) != handler:
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        # Lightning's handlers carry dabin's held-lines filter while classes are built (_HeldLogs).
        logging.disable(self.disable)
        for logger, level, propagate, disabled, handlers, filters in self.loggers:
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
            logger.handlers, logger.filters = list(handlers), list(filters)  # copies: the next run edits them
        for handler, level, filters in self.handlers:
            handler.setLevel(level)
            handler.filters = list(filters)
        # seed_everything reseeds random, numpy and torch, but a config may turn it off: then a fresh
        # process's torch generator starts from its fixed default seed, and so does the next run here.
        random.setstate(self.rng[0])
        np.random.set_state(self.rng[1])
        torch.random.set_rng_state(self.rng[2])
        threads, deterministic, warn_only, benchmark, cudnn_deterministic, precision, dtype, grad = self.torch
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)  # Trainer(deterministic=...)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_deterministic
        torch.set_float32_matmul_precision(precision)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        set_compiled(self.compiled)  # a compile failure turns the kernels off for the process only
        gc.collect()  # the last run's model and data: memory a fresh process would not hold
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        # A process group is only destroyed at exit; the next run would join the old one.
        return not (torch.distributed.is_available() and torch.distributed.is_initialized())


def _catchable() -> list[int]:
    return [signum for signum in signal.valid_signals() if signum not in (signal.SIGKILL, signal.SIGSTOP)
            and signal.getsignal(signum) is not None]  # None: set outside Python, cannot be put back


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for ``sys.exit(code)`` (printing a message code as it does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _output_to(log: str) -> Iterator[None]:
    """File descriptors 1 and 2 appended to ``log`` (Python's streams write through them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log, "ab") as handle:
            os.dup2(handle.fileno(), 1)
            os.dup2(handle.fileno(), 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):  # a full disk or a closed stream must not kill the worker
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def _as_dabin_command(argv: Sequence[str]) -> Iterator[None]:
    """Look like ``python -m dabin ARGV`` to code that restarts the command: Lightning's DDP launcher
    starts the other ranks as ``python -m <__main__'s module> <sys.argv[1:]>``."""
    main_module = sys.modules["__main__"]
    saved = sys.argv, main_module.__spec__
    spec = importlib.util.find_spec("dabin.__main__")
    sys.argv = [spec.origin if spec and spec.origin else "dabin", *argv]
    main_module.__spec__ = spec
    try:
        yield
    finally:
        sys.argv, main_module.__spec__ = saved


def run_job(call: _Call, argv: Sequence[str], log: str) -> int:
    """Run ``call(argv)`` as a process would run it, its output appended to ``log``; returns the exit status.

    Args:
        call: The command's main function (``dabin.cli.main``).
        argv: Its arguments.
        log: The run's log file.
    """
    with _output_to(log), _as_dabin_command(argv), warnings.catch_warnings():
        try:
            return int(call(argv) or 0)
        except SystemExit as stop:
            return _exit_status(stop.code)
        except Exception:  # noqa: BLE001 - as an uncaught exception in a fresh process: traceback, status 1
            traceback.print_exc()
            return 1


def serve(requests: TextIO, results: TextIO, call: _Call, baseline: _Baseline | None) -> int:
    """Run the jobs read from ``requests`` until it closes or a job fails; returns the exit status.

    Args:
        requests: One JSON line per job: ``argv`` and ``log``.
        results: Where each job's status goes, one JSON line each.
        call: The command's main function.
        baseline: The state to put back after each run (None: exit after the first).
    """
    for line in requests:
        request = json.loads(line)
        status = run_job(call, request["argv"], request["log"])
        # A failed run may have left anything behind (half-built trainer, handlers, threads).
        exiting = status != 0 or baseline is None or not baseline.restore()
        results.write(json.dumps({"status": status, "exiting": exiting}) + "\n")
        results.flush()
        if exiting:
            return status
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Serve jobs on the pipes whose file descriptors are ``argv`` (requests, results)."""
    requests_fd, results_fd = (int(arg) for arg in (sys.argv[1:] if argv is None else argv))
    # Not passed on to what a run starts (a compiler, the ranks of a DDP run); forked data-loader
    # workers hold copies, which is harmless: EOF on the requests comes from the sweep's end.
    os.set_inheritable(requests_fd, False)
    os.set_inheritable(results_fd, False)
    call: _Call
    baseline: _Baseline | None
    try:
        import dabin.lightning_cli  # noqa: F401 - what `dabin fit` runs: its imports are the cost paid once here
        from dabin.cli import main as dabin_main

        call, baseline = dabin_main, _Baseline.capture()
    except Exception:  # noqa: BLE001 - told in the first run's log, where a fresh trainer would print it
        call, baseline = functools.partial(_print_error, traceback.format_exc()), None
    with open(requests_fd, encoding="utf-8") as requests, open(results_fd, "w", encoding="utf-8") as results:
        return serve(requests, results, call, baseline)


def _print_error(text: str, argv: Sequence[str]) -> int:
    print(text, file=sys.stderr, end="")
    return 1


if __name__ == "__main__":
    sys.exit(main())
