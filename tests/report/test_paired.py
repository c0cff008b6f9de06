"""Paired comparisons: adaptation vs source-only and BIN vs BN, per (task, seed)."""

from __future__ import annotations

import math

from scipy import stats

from dabin.report.inputs import load_sweep
from dabin.report.paired import paired_comparisons
from dabin.report.tables import transfer_table
from tests.report.helpers import report, transfer, write_sweep


def _rows() -> list[dict]:
    rows = []
    # Source-only and DANN, BN and BIN, two tasks x two seeds; DANN BIN's seed 1 on Bb->Aa failed.
    for norm, so, dann in (("bn", [40, 42, 30, 31], [45, 44, 33, 30]), ("bin", [41, 43, 32, 33], [50, 49, 36, None])):
        for i, (source, target, seed) in enumerate((("Aa", "Bb", 0), ("Aa", "Bb", 1), ("Bb", "Aa", 0), ("Bb", "Aa", 1))):
            rows.append(transfer("source_only", norm, source, target, seed, so[i]))
            status = "ok" if dann[i] is not None else "failed"
            rows.append(transfer("dann", norm, source, target, seed, dann[i], status=status,
                                 reason="boom" if status == "failed" else ""))
    return rows


def test_differences_their_interval_and_the_verdict(tmp_path):
    folder = write_sweep(tmp_path / "s", _rows())
    comparisons = {(c.treatment, c.baseline): c for c in paired_comparisons(transfer_table(load_sweep(folder)))}
    assert list(comparisons) == [(("dann", "bn"), ("source_only", "bn")), (("dann", "bin"), ("source_only", "bin")),
                                 (("source_only", "bin"), ("source_only", "bn")), (("dann", "bin"), ("dann", "bn"))]
    bn = comparisons[("dann", "bn"), ("source_only", "bn")]
    differences = [5, 2, 3, -1]  # by hand: 45-40, 44-42, 33-30, 30-31
    assert sorted(bn.differences.values()) == sorted(differences)
    half = stats.t.ppf(0.975, 3) * stats.tstd(differences) / math.sqrt(4)
    assert math.isclose(bn.stats.mean, 2.25) and math.isclose(bn.stats.half_width, half)
    assert (bn.wins, bn.losses) == (3, 1) and bn.verdict == "includes 0"
    assert bn.per_task == {("Aa", "Bb"): 3.5, ("Bb", "Aa"): 1.0}
    # The failed run has no pair: 3 pairs, all won, interval above 0.
    bin_ = comparisons[("dann", "bin"), ("source_only", "bin")]
    assert sorted(bin_.differences.values()) == [4, 6, 9] and bin_.verdict == "above 0"
    assert bin_.per_task[("Bb", "Aa")] == 4.0
    norms = comparisons[("source_only", "bin"), ("source_only", "bn")]
    assert sorted(norms.differences.values()) == [1, 1, 2, 2] and norms.verdict == "above 0"


def test_the_report_has_the_section(tmp_path):
    folder = write_sweep(tmp_path / "s", _rows())
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    assert "## Paired comparisons (Table 4)" in text
    assert "| DANN BN − Source only BN | 4 | 2.25 ± " in text
    assert "| Aa→Bb | +3.50 |" in text and "| Per task | DANN BN − Source only BN |" in text


def test_no_section_without_two_comparable_columns(tmp_path):
    folder = write_sweep(tmp_path / "s", [transfer("dann", "bn", "Aa", "Bb", 0, 50)])
    assert report(str(folder)) == 0
    assert "Paired comparisons" not in (folder / "report.md").read_text()
