"""``dabin report`` on hand-made sweep folders: numbers, layout, partial sweeps, Office-Home, bad inputs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from tests.report.helpers import mixed, report, transfer, write_sweep

PNG = b"\x89PNG\r\n\x1a\n"


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _line(text: str, start: str) -> str:
    # The paired comparisons repeat the task labels; they are tested in tests/report/test_paired.py.
    if "## Paired comparisons" in text:
        before, after = text.split("## Paired comparisons", 1)
        text = before + after.split("\n## ", 1)[-1]
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    return lines[0]


def _basic_rows() -> list[dict]:
    rows = [transfer("dann", "bn", "Aa", "Bb", s, a) for s, a in enumerate([50, 52, 54, 56, 58])]
    rows += [transfer("dann", "bin", "Aa", "Bb", s, a) for s, a in enumerate([51, 53, 55, 57, 59])]
    rows += [transfer("dann", "bn", "Bb", "Cc", s, 60) for s in range(5)]
    rows += [transfer("dann", "bin", "Bb", "Cc", s, 61 + 2 * s) for s in range(5)]
    rows += [transfer("source_only", "bn", "Aa", "Bb", 0, 40)]
    rows += mixed("bn", 0, 0, {"Aa": 70, "Bb": 80, "Cc": 90}) + mixed("bn", 1, 0, {"Aa": 72, "Bb": 82, "Cc": 92})
    rows += mixed("bin", 0, 0, {"Aa": 75, "Bb": 85, "Cc": 95})
    rows += mixed("bin", 1, 0, dict.fromkeys(["Aa", "Bb", "Cc"]), status="failed", reason="exit status 1: boom")
    return rows


def test_tables_numbers_and_files(tmp_path, capsys):
    folder = write_sweep(tmp_path / "sweep", _basic_rows())
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()

    # Table 4: source-only beside DANN, BN beside BIN; cells are mean ± t(0.975, n-1) s / sqrt(n) (n).
    assert _line(text, "| Task ") == "| Task | Source only BN | DANN BN | DANN BIN |"
    assert _line(text, "| Aa→Bb ") == "| Aa→Bb | 40.00 (n=1) | 54.00 ± 3.93 (n=5) | 55.00 ± 3.93 (n=5) |"
    assert _line(text, "| Bb→Cc ") == "| Bb→Cc | — | 60.00 ± 0.00 (n=5) | 65.00 ± 3.93 (n=5) |"
    # Avg = mean of the task means; interval over seeds of each seed's mean over tasks (55..59 for BN:
    # s = sqrt(2.5), half-width = 2.776445 * sqrt(2.5) / sqrt(5) = 1.963); source-only covers 1 of 2 tasks.
    assert _line(text, "| **Avg** ") == "| **Avg** | **40.00** (1/2 tasks)* | **57.00 ± 1.96** | **60.00 ± 3.93** |"

    # Table 3: mean over folds; Avg over domains; the failed fold shows in the Runs column.
    assert _line(text, "| BN ") == ("| BN | 71.00 ± 12.71 (n=2) | 81.00 ± 12.71 (n=2) | 91.00 ± 12.71 (n=2) | "
                                    "**81.00 ± 12.71** | 2 ok |")
    assert _line(text, "| BIN ") == "| BIN | 75.00 (n=1) | 85.00 (n=1) | 95.00 (n=1) | **85.00** | 1 ok, 1 failed |"
    assert "Model selection: last checkpoint (recorded by 24 of 24 finished runs)" in text

    table4 = {(r["task"], r["method"], r["norm"]): r for r in _csv(folder / "table4.csv")}
    cell = table4["Aa→Bb", "dann", "bn"]
    assert float(cell["mean"]) == 54.0 and int(cell["n"]) == 5
    assert float(cell["ci"]) == pytest.approx(2.776445 * math.sqrt(10) / math.sqrt(5), abs=1e-4)
    assert float(table4["Avg", "dann", "bn"]["ci"]) == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5),
                                                                     abs=1e-4)
    assert table4["Bb→Cc", "source_only", "bn"]["mean"] == "" and table4["Bb→Cc", "source_only", "bn"]["n"] == "0"
    table3 = {(r["norm"], r["domain"]): r for r in _csv(folder / "table3.csv")}
    assert float(table3["bn", "Avg"]["mean"]) == 81.0 and table3["bn", "Avg"]["n"] == "3"
    assert table3["bin", "Aa"]["failed"] == "1" and table3["bin", "Aa"]["ci"] == ""
    for png in ("bn_vs_bin_dann.png", "bn_vs_bin_source_only.png", "bn_vs_bin_mixed.png"):
        assert (folder / png).read_bytes()[:8] == PNG
        assert f"({png})" in text
    printed = capsys.readouterr()
    assert "report.md" in printed.out
    assert printed.err == "note: 1 run has no result; the report lists them\n"  # the failed mixed fold


def test_average_weighs_tasks_not_runs(tmp_path):
    # Task 1 has two seeds (mean 65), task 2 one (40): the average is 52.5, not the run mean 56.67,
    # and it has no interval because the tasks do not share the same seeds.
    rows = [transfer("dann", "bn", "Aa", "Bb", 0, 60), transfer("dann", "bn", "Aa", "Bb", 1, 70),
            transfer("dann", "bn", "Bb", "Aa", 0, 40)]
    folder = write_sweep(tmp_path / "s", rows)
    assert report(str(folder)) == 0
    assert _line((folder / "report.md").read_text(), "| **Avg** ") == "| **Avg** | **52.50** |"


def test_partial_sweep_marks_what_is_missing(tmp_path):
    rows = [transfer("dann", "bn", "Aa", "Bb", 0, 50.5),
            transfer("dann", "bin", "Aa", "Bb", 0, status="failed", reason="exit status 1: RuntimeError: a|b"),
            transfer("dann", "bn", "Bb", "Aa", 0, status="incomplete"),
            transfer("dann", "bin", "Bb", "Aa", 0, status="missing")]
    folder = write_sweep(tmp_path / "s", rows, manifest={"name": "part", "dataset": "custom", "domains": ["Aa", "Bb"],
                                                        "spec": "exp/sweep.yaml"})
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    assert text.startswith("# Sweep report: part\n")
    assert "- 4 runs: 1 finished, 1 failed, 1 incomplete, 1 missing" in text
    assert _line(text, "| Aa→Bb ") == "| Aa→Bb | 50.50 (n=1) | — (1 failed) |"
    assert _line(text, "| Bb→Aa ") == "| Bb→Aa | — (1 incomplete) | — (1 missing) |"
    assert _line(text, "| **Avg** ") == "| **Avg** | **50.50** (1/2 tasks)* | — |"
    assert "### Failed (1)" in text
    assert "| DANN | BIN | Aa→Bb | 0 | exit status 1: RuntimeError: a\\|b | `dann_bin_Aa-Bb_s0` |" in text
    assert "### Incomplete (1; started, not finished)\n\n- DANN BN Bb→Aa seed 0" in text
    assert "### Missing (1; never started)\n\n- DANN BIN Bb→Aa seed 0" in text
    assert f"`dabin sweep exp/sweep.yaml --out {folder}`" in text
    assert "## Table 3" not in text and not (folder / "table3.csv").exists()


@pytest.mark.parametrize("with_manifest", [True, False])
def test_office_home_has_paper_numbers_in_paper_order(tmp_path, with_manifest):
    real = "Real World" if with_manifest else "Real_World"
    rows = [transfer("dann", "bn", real, "Product", 0, 70.0, task="Rw→Pr"),
            transfer("dann", "bn", "Art", "Clipart", 0, 38.0), transfer("dann", "bin", "Art", "Clipart", 0, 39.0),
            *mixed("bin", 0, 0, {"Art": 71.0, "Clipart": 77.0, "Product": 88.0, real: 81.0})]
    manifest = {"name": "oh", "dataset": "officehome", "domains": ["Art", "Clipart", "Product", "Real World"]}
    folder = write_sweep(tmp_path / "s", rows, manifest=manifest if with_manifest else None)
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    assert _line(text, "| Task ") == "| Task | DANN BN | DANN BIN | Paper DANN BN | Paper DANN BIN |"
    assert text.index("| Ar→Cl ") < text.index("| Rw→Pr ")  # the paper's order, not the file's
    assert _line(text, "| Ar→Cl ") == "| Ar→Cl | 38.00 (n=1) | 39.00 (n=1) | 37.23 | 37.46 |"
    assert _line(text, "| Rw→Pr ") == "| Rw→Pr | 70.00 (n=1) | — | 71.17 | 71.85 |"
    # Two of the paper's 12 tasks: the paper's Avg beside ours is its mean over the same two tasks.
    assert _line(text, "| **Avg** ").endswith("| 54.20 | 54.66 |")
    assert "the paper's Avg here is its mean over this table's 2 tasks" in text
    assert _line(text, "| Paper BN ") == "| Paper BN | 70.04 | 76.93 | 88.47 | 80.38 | 78.95 |  |"
    assert _line(text, "| Paper BIN ") == "| Paper BIN | 72.23 | 77.27 | 89.12 | 81.68 | 80.08 |  |"
    assert "Model selection: last checkpoint" in text
    assert "Nam & Kim (2018), Table 4" in text
    table4 = {(r["task"], r["norm"]): r for r in _csv(folder / "table4.csv")}
    assert float(table4["Ar→Cl", "bn"]["paper"]) == 37.23 and float(table4["Avg", "bin"]["paper"]) == 54.655


def test_office_home_all_tasks_use_the_published_average(tmp_path):
    from dabin.report.paper import PAPER_TABLE4, PAPER_TASKS

    names = {"Ar": "Art", "Cl": "Clipart", "Pr": "Product", "Rw": "Real World"}
    rows = [transfer("dann", "bn", names[t[:2]], names[t[-2:]], 0, PAPER_TABLE4["bn"][t], task=t)
            for t in reversed(PAPER_TASKS)]
    folder = write_sweep(tmp_path / "s", rows)
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    assert [line.split(" |")[0][2:] for line in text.splitlines() if "→" in line[:8]] == list(PAPER_TASKS)
    # The mean of the 12 rounded task numbers is 52.2058; the table shows the paper's own 52.21.
    assert _line(text, "| **Avg** ") == "| **Avg** | **52.21** | 52.21 | 52.76 |"
    assert "mean over this table's" not in text


def test_gates_pooled_per_method(tmp_path):
    rows = [transfer("dann", "bin", "Aa", "Bb", s, 50 + s) for s in range(3)]
    rows.append(transfer("dann", "bn", "Aa", "Bb", 0, 50))
    folder = write_sweep(tmp_path / "s", rows)
    for seed, gate in ((0, 0.2), (1, 0.4)):  # seed 2 has no gate table
        run = folder / f"dann_bin_Aa-Bb_s{seed}"
        run.mkdir()
        lines = ["layer,stage,level,depth,channel,gate"]
        lines += [f"bn1,stem,lower,0,{c},{gate}" for c in range(4)]
        lines += [f"layer4.0.bn1,layer4,upper,1,{c},{1 - gate}" for c in range(4)]
        (run / "gates.csv").write_text("\n".join(lines) + "\n")
    assert report(str(folder)) == 0
    summary = {r["stage"]: r for r in _csv(folder / "gate_summary.csv")}
    assert set(summary) == {"stem", "layer4"}
    assert summary["stem"]["runs"] == "2" and summary["stem"]["values"] == "8"
    assert float(summary["stem"]["mean"]) == pytest.approx(0.3)
    assert float(summary["layer4"]["mean"]) == pytest.approx(0.7)
    assert (folder / "gates_dann.png").read_bytes()[:8] == PNG
    text = (folder / "report.md").read_text()
    assert "| DANN | lower | stem | 2 | 8 | 0.300 | 0.200 | 0.400 | 0% | 0% |" in text
    assert "1 finished BIN run(s) of DANN have no gates.csv" in text


def test_dsbin_gates_and_switchable_weights_pooled_per_stage(tmp_path):
    rows = [transfer("dann", "dsbin", "Aa", "Bb", s, 50 + s) for s in range(2)]
    rows += [transfer("dann", "switchable", "Aa", "Bb", s, 50 + s) for s in range(3)]
    folder = write_sweep(tmp_path / "s", rows)
    for seed, (source, target) in enumerate(((0.9, 0.5), (1.0, 0.7))):
        lines = ["layer,stage,level,depth,channel,gate,target_gate"]
        lines += [f"bn1,stem,lower,0,{c},{source},{target}" for c in range(4)]
        lines += [f"layer4.0.bn1,layer4,upper,1,{c},1.0,0.95" for c in range(2)]
        (folder / f"dann_dsbin_Aa-Bb_s{seed}").mkdir()
        (folder / f"dann_dsbin_Aa-Bb_s{seed}" / "gates.csv").write_text("\n".join(lines) + "\n")
    for seed, bn in enumerate((0.5, 0.7)):  # seed 2 has no table
        lines = ["layer,stage,level,depth,statistic,in,ln,bn"]
        for depth, layer in enumerate(("bn1", "layer1.0.bn1")):
            lines.append(f"{layer},{'stem' if depth == 0 else 'layer1'},lower,{depth},mean,{(1 - bn) / 2},{(1 - bn) / 2},{bn}")
            lines.append(f"{layer},{'stem' if depth == 0 else 'layer1'},lower,{depth},var,0.2,0.3,0.5")
        (folder / f"dann_switchable_Aa-Bb_s{seed}").mkdir()
        (folder / f"dann_switchable_Aa-Bb_s{seed}" / "switch_weights.csv").write_text("\n".join(lines) + "\n")
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    # stem: ρ_s (0.9, 1.0) x 4 channels -> 0.95, ρ_t (0.5, 0.7) -> 0.6, |ρ_s - ρ_t| (0.4, 0.3) -> 0.35
    assert "| DANN | lower | stem | 2 | 8 | 0.950 | 0.600 | 0.350 | 0% | 0% |" in text
    assert "| DANN | upper | layer4 | 2 | 4 | 1.000 | 0.950 | 0.050 | 0% | 100% |" in text
    dsbin = {r["stage"]: r for r in _csv(folder / "dsbin_gate_summary.csv")}
    assert float(dsbin["stem"]["target_mean"]) == pytest.approx(0.6)
    # w_BN of the means: (0.5 + 0.7) / 2 = 0.6, IN and LN 0.2 each; w' the same in both runs
    assert "| DANN | lower | stem | 2 | 2 | 0.200 | 0.200 | 0.600 | 0.200 | 0.300 | 0.500 |" in text
    assert "1 finished run(s) of DANN have no switch_weights.csv (not pooled)." in text
    switch = {r["stage"]: r for r in _csv(folder / "switch_summary.csv")}
    assert set(switch) == {"stem", "layer1"} and float(switch["layer1"]["mean_bn"]) == pytest.approx(0.6)
    assert "## BIN gates" not in text  # no plain BIN runs: Figure 2's section stays out


def test_no_mixture_sections_without_dsbin_or_switchable_runs(tmp_path):
    folder = write_sweep(tmp_path / "s", _basic_rows())
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    assert "Domain-specific BIN" not in text and "Switchable Norm" not in text


def test_out_file_elsewhere(tmp_path):
    folder = write_sweep(tmp_path / "s", [transfer("dann", "bn", "Aa", "Bb", 0, 50)])
    out = tmp_path / "docs" / "demo.md"
    assert report(str(folder), "--out", str(out)) == 0
    assert "| Aa→Bb | 50.00 (n=1) |" in out.read_text()
    assert (out.parent / "table4.csv").is_file() and not (folder / "report.md").exists()


def _corrupt(kind: str, folder: Path) -> None:
    rows = [transfer("dann", "bn", "Aa", "Bb", 0, 50), transfer("dann", "bin", "Aa", "Bb", 0, 51)]
    if kind == "no results":
        folder.mkdir()
    elif kind == "header only":
        write_sweep(folder, [])
    elif kind == "duplicated row":
        write_sweep(folder, [*rows, rows[0]])
    elif kind == "run rows disagree":
        write_sweep(folder, [*rows, {**rows[0], "seed": 1, "domain": "Aa"}])
    elif kind == "two runs, one cell":
        write_sweep(folder, [*mixed("bn", 0, 0, {"Aa": 50}), {**mixed("bn", 0, 0, {"Bb": 50})[0], "run": "other"}])
    elif kind == "no target row":
        write_sweep(folder, [{**rows[0], "domain": "Bb/train"}])
    elif kind == "bad accuracy":
        write_sweep(folder, [{**rows[0], "accuracy": 123}])
    elif kind == "domain not in manifest":
        write_sweep(folder, [*rows, transfer("dann", "bn", "Aa", "Cc", 0, 50)], manifest={"domains": ["Aa", "Bb"]})
    elif kind == "broken manifest":
        write_sweep(folder, rows)
        (folder / "sweep.json").write_text("{")
    elif kind == "bad gate table":
        write_sweep(folder, rows)
        (folder / "dann_bin_Aa-Bb_s0").mkdir()
        (folder / "dann_bin_Aa-Bb_s0" / "gates.csv").write_text("a,b\n1,2\n")


@pytest.mark.parametrize(("kind", "message"), [
    ("no results", "no results: {folder}/results.csv not found"),
    ("header only", "no results: {folder}/results.csv has no rows"),
    ("duplicated row", "{folder}/results.csv: line 4 duplicates line 2"),
    ("run rows disagree",
     "{folder}/results.csv: line 4: run 'dann_bn_Aa-Bb_s0' has seed='1' here but seed='0' on line 2"),
    ("two runs, one cell", "{folder}/results.csv: line 3: run 'other' repeats run 'mixed_bn_f0_s0' of line 2"),
    ("no target row",
     "line 2: ok run 'dann_bn_Aa-Bb_s0' (dann bn Aa→Bb seed 0) has no row for its target domain 'Bb'"),
    ("bad accuracy", "{folder}/results.csv: line 2: accuracy='123' is not a percentage"),
    ("domain not in manifest", "line 4: domain 'Cc' is not one of the sweep's domains (Aa, Bb"),
    ("broken manifest", "{folder}/sweep.json: not a readable sweep manifest"),
    ("bad gate table", "{folder}/dann_bin_Aa-Bb_s0/gates.csv: not a gate table"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, kind, message):
    folder = tmp_path / "s"
    _corrupt(kind, folder)
    (folder / "report.md").write_text("OLD REPORT\n")
    before = sorted(p.name for p in folder.iterdir())
    assert report(str(folder)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dabin: error: ")
    assert message.format(folder=folder) in err
    assert (folder / "report.md").read_text() == "OLD REPORT\n"
    assert sorted(p.name for p in folder.iterdir()) == before


def test_missing_folder_file_and_out_folder(tmp_path, capsys):
    assert report(str(tmp_path / "nope")) == 2
    assert capsys.readouterr().err == f"dabin: error: no sweep folder: {tmp_path / 'nope'} does not exist\n"
    (tmp_path / "file").write_text("x")
    assert report(str(tmp_path / "file")) == 2
    assert f"{tmp_path / 'file'} is not a folder" in capsys.readouterr().err
    folder = write_sweep(tmp_path / "s", [transfer("dann", "bn", "Aa", "Bb", 0, 50)])
    assert report(str(folder), "--out", str(tmp_path)) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
    assert not (folder / "report.md").exists() and not (folder / "table4.csv").exists()


def test_table3_interval_is_over_folds_with_seeds_averaged_first(tmp_path):
    """3 folds × 2 seeds: n = 3 fold means, not 6 runs (the seeds of a fold share its test images)."""
    accuracy = {(0, 0): 70, (0, 1): 74, (1, 0): 80, (1, 1): 76, (2, 0): 90, (2, 1): 88}
    rows = [row for (fold, seed), acc in accuracy.items() for row in mixed("bin", fold, seed, {"Aa": acc, "Bb": acc})]
    folder = write_sweep(tmp_path / "s", rows)
    assert report(str(folder)) == 0
    fold_means = [72.0, 78.0, 89.0]  # each fold's two seeds averaged
    mean = sum(fold_means) / 3
    s = math.sqrt(sum((v - mean) ** 2 for v in fold_means) / 2)
    table3 = {(r["norm"], r["domain"]): r for r in _csv(folder / "table3.csv")}
    assert table3["bin", "Aa"]["n"] == "3"
    assert float(table3["bin", "Aa"]["mean"]) == pytest.approx(mean)
    assert float(table3["bin", "Aa"]["ci"]) == pytest.approx(4.302653 * s / math.sqrt(3), abs=1e-4)
    assert float(table3["bin", "Avg"]["ci"]) == pytest.approx(4.302653 * s / math.sqrt(3), abs=1e-4)
    assert "the interval is over the folds" in (folder / "report.md").read_text()


def test_header_states_batch_and_gate_rate_per_method(tmp_path):
    rows = [transfer("dann", "bin", "Aa", "Bb", s, 50, batch="32+32 on 1 device", gate_lr="10× group rate")
            for s in range(2)]
    rows += [transfer("dann", "bin", "Bb", "Aa", 0, 50, batch="64+64 on 2 devices", gate_lr="10× group rate")]
    rows += mixed("bin", 0, 0, {"Aa": 70, "Bb": 80})
    folder = write_sweep(tmp_path / "s", [{**r, "batch": r.get("batch", "128 on 1 device"),
                                           "gate_lr": r.get("gate_lr", "10× base rate")} for r in rows])
    assert report(str(folder)) == 0
    text = (folder / "report.md").read_text()
    batch = _line(text, "- Batch per optimizer step")
    assert "DANN: 32+32 on 1 device (2 runs), 64+64 on 2 devices (1 runs) — **differs between runs**" in batch
    assert batch.endswith("; Mixed: 128 on 1 device")
    gates = _line(text, "- BIN gate learning rate")
    assert "DANN: 10× group rate;" in gates and "10× base rate" in gates
