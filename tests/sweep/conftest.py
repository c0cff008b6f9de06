"""A tiny sweep (three made-up domains) run by a fake trainer: the whole machinery in seconds."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

FAKE_FIT = Path(__file__).with_name("fake_fit.py")
TINY_SPEC = """\
name: tiny
domains: [Aa, Bb, Cc]
out: {out}
configs: {{dann: dann.yaml, mixed: mixed.yaml}}
axes:
  methods: [dann, source_only, mixed]
  norms: [bn, bin]
  tasks: ["Aa->Bb", "Bb→Cc"]
  seeds: [0, 1]
  folds: [0, 1]
"""
#: Jobs and rows of TINY_SPEC: transfer 2 methods x 2 tasks x 2 norms x 2 seeds (one row each),
#: mixed 2 folds x 2 norms x 2 seeds (a row per domain).
TINY_JOBS = 16 + 8
TINY_ROWS = 16 + 8 * 3


def write_spec(folder: Path, text: str = TINY_SPEC, out: Path | None = None) -> Path:
    """Write a spec and its two (empty) configs into ``folder``; returns the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dann.yaml").write_text("model: {}\n")
    (folder / "mixed.yaml").write_text("model: {}\n")
    spec = folder / "sweep.yaml"
    spec.write_text(text.format(out=out or folder / "out"))
    return spec


def fake_command() -> str:
    """The fake trainer as a DABIN_SWEEP_COMMAND value."""
    return shlex.join([sys.executable, str(FAKE_FIT)])


@pytest.fixture
def tiny_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny spec, with the fake trainer as the training command."""
    monkeypatch.setenv("DABIN_SWEEP_COMMAND", fake_command())
    for name in ("FAKE_FIT_FAIL", "FAKE_FIT_SLEEP_ON", "FAKE_FIT_NAN", "FAKE_FIT_PREEMPT", "FAKE_FIT_CKPT_BYTES",
                 "FAKE_FIT_DISK_FULL", "FAKE_FIT_NO_POINTS"):
        monkeypatch.delenv(name, raising=False)
    return write_spec(tmp_path / "spec")
