"""experiments/gpu_check.py runs end to end on the CPU (``--quick``) and refuses a missing GPU in one line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "gpu_check.py"
COLUMNS = ["measurement", "shape", "precision", "format", "mode", "unit", "BIN", "BN", "BIN/BN time", "target"]
GRID = {(p, f) for p in ("fp32", "bf16") for f in ("contiguous", "channels_last")}


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def _table(stdout: str) -> list[dict[str, str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert lines, stdout
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS, header
    assert set(lines[1].replace("|", "").split()) == {"---"}
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def _positive(text: str) -> float:
    value = float(text.rstrip("x"))
    assert math.isfinite(value) and value > 0, text
    return value


def test_quick_cpu_run_prints_every_row_kind() -> None:
    result = _run("--device", "cpu", "--quick", "--markdown")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _table(result.stdout)
    by_kind: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_kind.setdefault(row["measurement"], []).append(row)
        assert len(row) == len(COLUMNS), row
        bin_value, bn_value, ratio = (_positive(row[c]) for c in ("BIN", "BN", "BIN/BN time"))
        expected = bin_value / bn_value if row["unit"] == "ms" else bn_value / bin_value
        assert ratio == pytest.approx(expected, rel=0.02, abs=2e-3), row  # cells are rounded
        assert row["target"] == "-" or row["target"].endswith((" ok", " MISSED")), row
    assert set(by_kind) == {"layer train", "layer eval", "resnet18 step", "DANN train"}, set(by_kind)

    for kind in ("layer train", "layer eval"):
        shapes = {row["shape"] for row in by_kind[kind]}
        assert len(shapes) >= 2, shapes
        for shape in shapes:
            settings = {(r["precision"], r["format"]) for r in by_kind[kind] if r["shape"] == shape and
                        r["mode"] == "eager"}
            assert settings == GRID, (kind, shape, settings)
            assert any(r["mode"] == "compiled" for r in by_kind[kind] if r["shape"] == shape), (kind, shape)
        assert all(r["unit"] == "ms" and r["target"] != "-" for r in by_kind[kind])
    assert {(r["precision"], r["format"]) for r in by_kind["resnet18 step"]} == GRID
    assert all(r["unit"] == "ms" for r in by_kind["resnet18 step"])
    assert {r["precision"] for r in by_kind["DANN train"]} == {"fp32", "bf16"}
    assert all(r["unit"] == "img/s" and r["target"] == "-" for r in by_kind["DANN train"])
    assert "graph breaks" in result.stdout and "worst BIN/BN" in result.stdout


def test_cuda_missing_is_one_line() -> None:
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on GPU machines too.
    result = _run("--device", "cuda", "--quick", env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gpu_check: error: CUDA is not available"), lines[0]
    assert result.stdout == ""


def test_bad_parts_is_one_line() -> None:
    result = _run("--device", "cpu", "--parts", "layers,gpu", timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("gpu_check: error:"), result.stderr
    assert "'layers,gpu'" in lines[0]


def test_drawn_table_has_the_markdown_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (rich) rendering shows the same cells as the markdown one."""
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    import gpu_check

    setting = gpu_check.Setting("bf16", "channels_last", "compiled")
    rows = [gpu_check.Row("layer train", "32x64x56x56", setting, "ms", 1.5, 1.0, 1.2),
            gpu_check.Row("DANN train", "2x32x3x224x224", setting, "img/s", 900.0, 1000.0, None)]
    drawn = gpu_check.render(rows, markdown=False, title="t")
    markdown = gpu_check.render(rows, markdown=True, title="t")
    assert "1.500x" in markdown and "<= 1.2x MISSED" in markdown and "1.111x" in markdown
    for cells in (gpu_check._cells(row) for row in rows):
        for cell in cells:
            assert cell in drawn, (cell, drawn)
