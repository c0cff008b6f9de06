"""Faults of real clusters: a full disk, torn checkpoints, pre-emption, two sweeps, a hand-edited results file.

Each test checks what the user sees (one line, the exit status) and that no finished run is lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dabin.cli import main
from dabin.record import read_results
from dabin.record import table as results_module
from tests.sweep.test_resume import ROOT, _wait_for
from tests.sweep.test_sweep import attempts, run_dir, sweep

#: Aa→Bb seeds 0, 1, then Bb→Cc seeds 0, 1 (DANN, BN): four runs, in that order.
FOUR = ["--methods", "dann", "--norms", "bn"]


def _done(out: Path) -> dict[str, float]:
    """Finished runs and their modification times (a finished run must never be touched again)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/done")}


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("dabin: error:"), err
    assert "Traceback" not in err
    return lines[-1]


# -- full disk ----------------------------------------------------------------------------------


def test_trainer_on_a_full_disk_stops_the_sweep_and_a_rerun_completes(tiny_spec, monkeypatch, capsys):
    out = tiny_spec.parent / "out"
    monkeypatch.setenv("FAKE_FIT_DISK_FULL", "Bb->Cc")  # the third run's trainer meets a full disk
    assert sweep(tiny_spec, *FOUR) == 2
    line = _one_error_line(capsys.readouterr().err)
    stopped = run_dir(out, "dann_bn_Bb-Cc_s0")
    assert line == (f"dabin: error: OSError: [Errno 28] No space left on device (run dann bn Bb→Cc seed 0, log: "
                    f"{stopped / 'log.txt'}); free space and rerun the same command to resume")
    assert not (stopped / "failed").exists() and not (stopped / "done").exists()  # incomplete, not failed
    assert not any(out.glob("dann_bn_Bb-Cc_s1_*"))  # the sweep stopped: the fourth never started
    finished = _done(out)
    assert len(finished) == 2
    assert sorted(r["task"] for r in read_results(out / "results.csv")) == ["Aa→Bb", "Aa→Bb"]

    monkeypatch.delenv("FAKE_FIT_DISK_FULL")  # space freed
    assert sweep(tiny_spec, *FOUR) == 0
    assert {k: v for k, v in _done(out).items() if k in finished} == finished  # runs lost: 0
    assert len(read_results(out / "results.csv")) == 4


def test_sweep_write_refused_is_one_line_and_keeps_results(tiny_spec, monkeypatch, capsys):
    """results.csv cannot be rewritten (ENOSPC injected on the third write): the old file stays whole."""
    out = tiny_spec.parent / "out"
    real_open = results_module.atomic_open
    calls = {"n": 0}

    @contextlib.contextmanager
    def full_disk(path, *args, **kwargs):
        calls["n"] += 1
        with real_open(path, *args, **kwargs) as handle:
            if calls["n"] >= 3:  # the write itself fails, as on a full disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            yield handle

    monkeypatch.setattr(results_module, "atomic_open", full_disk)
    assert sweep(tiny_spec, *FOUR) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"dabin: error: cannot write {out / 'results.csv'}: [Errno 28] No space left on device"
    before = read_results(out / "results.csv")  # the last complete version, readable
    assert len(before) == 2 and not list(out.glob(".results.csv.*.tmp"))
    monkeypatch.setattr(results_module, "atomic_open", real_open)
    assert sweep(tiny_spec, *FOUR) == 0
    assert len(read_results(out / "results.csv")) == 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 320 KiB tmpfs (needs root and mount; skipped where the sandbox refuses)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk(tiny_spec, small_disk, monkeypatch, capsys):
    """Runs with 100 KiB checkpoints on a 320 KiB disk: the disk fills at the third; a rerun with room completes."""
    out = small_disk / "out"
    monkeypatch.setenv("FAKE_FIT_CKPT_BYTES", str(100 * 1024))
    assert sweep(tiny_spec, *FOUR, "--out", str(out)) == 2
    err = capsys.readouterr().err
    line = _one_error_line(err)
    assert "[Errno 28] No space left on device" in line, err
    finished = _done(out)
    assert 1 <= len(finished) <= 3
    assert len(read_results(out / "results.csv")) == len(finished)
    # Free space: grow the disk (as deleting other files would), then one rerun completes.
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    assert sweep(tiny_spec, *FOUR, "--out", str(out)) == 0
    assert {k: v for k, v in _done(out).items() if k in finished} == finished
    assert len(read_results(out / "results.csv")) == 4


# -- torn checkpoints ---------------------------------------------------------------------------


def _incomplete_run(tiny_spec: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Run one job, then make it look interrupted (no done marker): the next sweep resumes it."""
    assert sweep(tiny_spec, *FOUR, "--tasks", "Aa->Bb", "--seeds", "0") == 0
    run = run_dir(tiny_spec.parent / "out", "dann_bn_Aa-Bb_s0")
    (run / "done").unlink()
    (run / "metrics.json").unlink()
    capsys.readouterr()
    return run


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_checkpoint_restarts_the_run_in_the_same_sweep(tiny_spec, capsys, damage):
    run = _incomplete_run(tiny_spec, capsys)
    checkpoint = run / "checkpoints" / "last.ckpt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 100)
    assert sweep(tiny_spec, *FOUR, "--tasks", "Aa->Bb", "--seeds", "0") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "checkpoints/last.ckpt is unreadable" in warnings[0]
    assert "restarting the run from step 0" in warnings[0]
    assert attempts(run)[-1].split()[1] == "ckpt=None" and (run / "done").exists()
    assert (run / "checkpoints" / "last.ckpt.unreadable").exists()  # kept for a look, never resumed


def test_unreadable_last_checkpoint_falls_back_to_an_older_good_one(tiny_spec, capsys):
    run = _incomplete_run(tiny_spec, capsys)
    older = run / "checkpoints" / "epoch=0-step=2.ckpt"
    with zipfile.ZipFile(older, "w") as archive:
        archive.writestr("older/data.pkl", b"good")
    os.utime(older, (time.time() - 60, time.time() - 60))
    (run / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 torn")
    assert sweep(tiny_spec, *FOUR, "--tasks", "Aa->Bb", "--seeds", "0") == 0
    warning = next(line for line in capsys.readouterr().err.splitlines() if "warning" in line)
    assert "trying an older checkpoint" in warning
    assert attempts(run)[-1].split()[1] == f"ckpt={older}"


# -- pre-emption --------------------------------------------------------------------------------


def test_preempted_trainer_is_incomplete_not_failed_and_resumes(tiny_spec, monkeypatch, capsys):
    out = tiny_spec.parent / "out"
    monkeypatch.setenv("FAKE_FIT_PREEMPT", "Bb->Cc")
    assert sweep(tiny_spec, *FOUR, "--retries", "3") == 1
    err = capsys.readouterr().err
    assert err.count("incomplete: dann bn Bb→Cc") == 2 and "retrying" not in err  # not a failure: no retry
    preempted = run_dir(out, "dann_bn_Bb-Cc_s0")
    assert not (preempted / "failed").exists() and len(attempts(preempted)) == 1
    monkeypatch.delenv("FAKE_FIT_PREEMPT")
    assert sweep(tiny_spec, *FOUR) == 0
    assert attempts(preempted)[-1].split()[1] == f"ckpt={preempted / 'checkpoints' / 'last.ckpt'}"


# -- two sweeps, hand-edited results ------------------------------------------------------------


def test_second_sweep_on_the_same_folder_is_refused(tiny_spec, capsys):
    out = tiny_spec.parent / "out"
    env = {**os.environ, "FAKE_FIT_SLEEP_ON": "Aa->Bb", "FAKE_FIT_SLEEP": "60"}
    first = subprocess.Popen([sys.executable, "-m", "dabin", "sweep", str(tiny_spec), *FOUR], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any(out.glob("dann_bn_Aa-Bb_s0_*/pid")) or first.poll() is not None, 60, "the first sweep")
        assert sweep(tiny_spec, *FOUR) == 2
        assert _one_error_line(capsys.readouterr().err) == f"dabin: error: another sweep is running in {out}"
        assert len(attempts(run_dir(out, "dann_bn_Aa-Bb_s0"))) == 1  # the second started nothing
    finally:
        first.terminate()
        first.wait(30)
    assert not any(out.glob("*/done"))  # the first was stopped mid-run: nothing counted, nothing lost


def test_hand_edited_results_file(tiny_spec, tmp_path, capsys):
    """The run folders are the record: the report reads them, not an edited export; a results.csv
    alone is checked line by line; the next sweep rebuilds the export."""
    out = tiny_spec.parent / "out"
    assert sweep(tiny_spec, *FOUR) == 0
    path = out / "results.csv"
    original = path.read_text()
    lines = original.splitlines()
    edited = lines[:2] + [lines[2].replace(",ok,", ",okay,")] + lines[3:]
    path.write_text("\n".join(edited) + "\n")
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "read from the run records (`results.csv` is their export)" in (out / "report.md").read_text()
    alone = tmp_path / "shared"
    alone.mkdir()
    (alone / "results.csv").write_text("\n".join(edited) + "\n")
    capsys.readouterr()
    assert main(["report", str(alone)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "line 3" in line and "'okay'" in line
    path.write_text("\n".join(lines[:-1]) + "\n")  # a row deleted by hand
    assert sweep(tiny_spec, *FOUR) == 0  # nothing to run...
    assert path.read_text() == original  # ...and the file is rebuilt from the run folders


def test_submitit_requeue_saves_then_resumes_from_the_checkpoint(tiny_spec, tmp_path):
    """submitit's checkpoint protocol, run locally: the warning signal stops the trainer after it saved; the
    requeued job resumes from that checkpoint."""
    import shlex
    import threading

    pytest.importorskip("submitit")
    from dabin.record import run_state
    from dabin.sweep.job import Job
    from dabin.sweep.launchers import RequeueableRun

    job = Job(method="dann", norm="bn", seed=0, config="dann.yaml", config_file=str(tiny_spec.parent / "dann.yaml"), source="Aa",
              target="Bb")
    run = tmp_path / "run"
    command = shlex.split(os.environ["DABIN_SWEEP_COMMAND"])
    os.environ.update(FAKE_FIT_SLEEP_ON="Aa->Bb", FAKE_FIT_SLEEP="60")
    try:
        runner = RequeueableRun()
        worker = threading.Thread(target=runner, args=(job, run, command))  # what the node runs
        worker.start()
        _wait_for(lambda: (run / "pid").exists(), 30, "the trainer to start")
        delayed = runner.checkpoint(job, run, command)  # what submitit calls on the signal
        worker.join(30)
    finally:
        os.environ.pop("FAKE_FIT_SLEEP_ON")
        os.environ.pop("FAKE_FIT_SLEEP")
    assert run_state(run) == "incomplete" and not (run / "failed").exists()
    assert isinstance(delayed.function, RequeueableRun) and delayed.args == (job, run, command)
    outcome = delayed.function(*delayed.args)  # the requeued job
    assert outcome.status == "ok" and run_state(run) == "done"
    assert attempts(run)[-1].split()[1] == f"ckpt={run / 'checkpoints' / 'last.ckpt'}"
