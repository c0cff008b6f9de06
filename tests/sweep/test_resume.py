"""A sweep killed with SIGKILL mid-run: its trainer dies with it, and a rerun completes without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dabin.cli import main
from dabin.record import read_results
from tests.sweep.conftest import TINY_ROWS
from tests.sweep.test_sweep import attempts, run_dir

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    # A killed trainer may linger as a zombie until its new parent reaps it: that is dead too.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_resume_after_sigkill(tiny_spec):
    out = tiny_spec.parent / "out"
    flags = ["--methods", "dann", "--norms", "bn"]  # Aa→Bb seeds 0, 1, then Bb→Cc seeds 0, 1
    env = {**os.environ, "FAKE_FIT_SLEEP_ON": "Bb->Cc", "FAKE_FIT_SLEEP": "120"}
    process = subprocess.Popen([sys.executable, "-m", "dabin", "sweep", str(tiny_spec), *flags], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any(out.glob("dann_bn_Bb-Cc_s0_*/pid")) or process.poll() is not None, 120,
                  "the Bb→Cc run to start")
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        sleeping = run_dir(out, "dann_bn_Bb-Cc_s0")
        trainer = int((sleeping / "pid").read_text())
        assert _alive(trainer)
        before = read_results(out / "results.csv")
        assert sorted(r["task"] for r in before if r["status"] == "ok") == ["Aa→Bb", "Aa→Bb"]
        process.send_signal(signal.SIGKILL)
        assert process.wait(30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        if process.stderr:
            process.stderr.close()
    # PR_SET_PDEATHSIG: the trainer must not outlive the sweep and write into a folder being redone.
    try:
        _wait_for(lambda: not _alive(trainer), 10, f"trainer {trainer} to die with the sweep")
    finally:
        if _alive(trainer):  # do not leave a failed test's sleeping trainer behind
            os.kill(trainer, signal.SIGKILL)
    assert not (sleeping / "done").exists() and not (sleeping / "metrics.json").exists()

    assert main(["sweep", str(tiny_spec), *flags]) == 0
    rows = read_results(out / "results.csv")  # raises on a duplicated row
    assert len(rows) == 4 and len({r["run"] for r in rows}) == 4  # results only: the 4 finished runs
    ok = sorted((r["task"], r["seed"]) for r in rows if r["status"] == "ok")
    assert ok == [("Aa→Bb", "0"), ("Aa→Bb", "1"), ("Bb→Cc", "0"), ("Bb→Cc", "1")]
    # Done runs were not redone; the killed one was, resuming from its last checkpoint.
    assert len(attempts(run_dir(out, "dann_bn_Aa-Bb_s0"))) == 1 and len(attempts(run_dir(out, "dann_bn_Aa-Bb_s1"))) == 1
    again = attempts(sleeping)
    assert len(again) == 2 and again[1].split()[1] == f"ckpt={sleeping / 'checkpoints' / 'last.ckpt'}"
    assert len(attempts(run_dir(out, "dann_bn_Bb-Cc_s1"))) == 1
    assert (sleeping / "log.txt").read_text().count("[dabin sweep] ") == 2
