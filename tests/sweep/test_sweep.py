"""``dabin sweep`` end to end with the fake trainer: results, dry runs, filters, failures, refusals, report."""

from __future__ import annotations

import json
from pathlib import Path

from dabin.cli import main
from dabin.report.stats import mean_ci
from dabin.record import read_results
from tests.sweep.conftest import TINY_JOBS, TINY_ROWS

SELECTION = "last checkpoint (no target labels)"


def sweep(spec: Path, *flags: str) -> int:
    """``dabin sweep SPEC FLAGS`` in-process."""
    return main(["sweep", str(spec), *flags])


def run_dir(out: Path, prefix: str) -> Path:
    """The one run folder whose name starts with ``prefix`` (e.g. ``dann_bn_Aa-Bb_s0``)."""
    found = [p for p in out.glob(f"{prefix}_*") if p.is_dir()]
    assert len(found) == 1, (prefix, found)
    return found[0]


def cells(text: str, first: str) -> list[str]:
    """The cells of the Markdown table row of ``text`` whose first cell is ``first``."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def attempts(run: Path) -> list[str]:
    """The fake trainer's log of its starts in a run folder."""
    return (run / "attempts").read_text().splitlines()


def test_tiny_sweep_end_to_end_then_report(tiny_spec, capsys):
    out = tiny_spec.parent / "out"
    assert sweep(tiny_spec, "--workers", "2") == 0
    rows = read_results(out / "results.csv")
    assert len(rows) == TINY_ROWS and {r["status"] for r in rows} == {"ok"}
    for row in rows:  # every number is the one its run's trainer wrote
        metrics = json.loads((out / row["run"] / "metrics.json").read_text())
        assert float(row["accuracy"]) == metrics["test"][row["domain"]]["accuracy"]
        assert row["model_selection"] == SELECTION and row["n"] == "50"
    transfer = [r for r in rows if r["method"] != "mixed"]
    assert {r["task"] for r in transfer} == {"Aa→Bb", "Bb→Cc"} and len(transfer) == 16
    assert all(r["domain"] == r["target"] and r["fold"] == "" for r in transfer)
    mixed = [r for r in rows if r["method"] == "mixed"]
    assert sorted({r["domain"] for r in mixed}) == ["Aa", "Bb", "Cc"] and len({r["run"] for r in mixed}) == 8
    manifest = json.loads((out / "sweep.json").read_text())
    assert set(manifest) == {"name", "fingerprint", "dataset", "domains", "configs", "extra", "spec", "jobs"}
    assert sorted(job["name"] for job in manifest["jobs"]) == sorted(p.parent.name for p in out.glob("*/job.json"))
    assert (manifest["name"], manifest["dataset"], manifest["domains"]) == ("tiny", "custom", ["Aa", "Bb", "Cc"])
    capsys.readouterr()

    # A dry run of a finished sweep lists every job as done; a rerun starts nothing.
    assert sweep(tiny_spec, "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == TINY_JOBS + 1 and all(line.startswith("done ") for line in lines[:-1])
    assert lines[-1] == f"{TINY_JOBS} jobs ({TINY_JOBS} done); 0 would run"
    assert sweep(tiny_spec) == 0
    assert all(len(attempts(p.parent)) == 1 for p in out.glob("*/job.json"))
    assert len(read_results(out / "results.csv")) == TINY_ROWS

    assert main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "## Table 4: domain adaptation" in text and "## Table 3: mixed-domain classification" in text
    expected = mean_ci([float(r["accuracy"]) for r in transfer
                        if (r["method"], r["norm"], r["task"]) == ("dann", "bin", "Aa→Bb")])
    assert cells(text, "Task") == ["Task", "Source only BN", "Source only BIN", "DANN BN", "DANN BIN"]
    assert cells(text, "Aa→Bb")[4] == f"{expected.format()} (n=2)"
    assert f"- Model selection: {SELECTION} (recorded by {TINY_JOBS} of {TINY_JOBS} finished runs)" in text
    assert f"None: all {TINY_JOBS} runs finished." in text
    summary = [line.split(",") for line in (out / "gate_summary.csv").read_text().splitlines()[1:]]
    stem = next(s for s in summary if s[:3] == ["dann", "lower", "stem"])
    assert stem[3:6] == ["4", "32", "0.35"]  # 2 tasks x 2 seeds pooled, 8 channels each, gates 0.0..0.7


def test_dry_run_and_filters(tiny_spec, capsys):
    out = tiny_spec.parent / "out"
    flags = ["--methods", "dann", "--norms", "bin", "--tasks", "Aa->Bb"]
    assert sweep(tiny_spec, "--dry-run", *flags) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:6] for line in lines[:-1]] == [["missing", "dann", "bin", "Aa→Bb", "seed", "0"],
                                                         ["missing", "dann", "bin", "Aa→Bb", "seed", "1"]]
    assert lines[-1] == "2 jobs (2 missing); 2 would run" and not out.exists()

    assert sweep(tiny_spec, *flags) == 0
    assert sorted(p.parent.name[:16] for p in out.glob("*/done")) == ["dann_bin_Aa-Bb_s", "dann_bin_Aa-Bb_s"]
    rows = read_results(out / "results.csv")
    # Results only: the runs the filter left out are not placeholder rows...
    assert sorted((r["task"], r["seed"], r["status"]) for r in rows) == [("Aa→Bb", "0", "ok"), ("Aa→Bb", "1", "ok")]
    # ...the end-of-sweep summary says where the whole spec stands, and the report shows them as missing.
    assert f"spec: {TINY_JOBS} jobs, 2 done, {TINY_JOBS - 2} missing" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert cells((out / "report.md").read_text(), "Bb→Cc")[4] == "— (2 missing)"

    # Tasks may be written with the arrow; seeds filter too.
    assert sweep(tiny_spec, "--methods", "source_only", "--norms", "bn", "--tasks", "Bb→Cc", "--seeds", "1") == 0
    capsys.readouterr()
    assert sweep(tiny_spec, "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"{TINY_JOBS} jobs (3 done, {TINY_JOBS - 3} missing); {TINY_JOBS - 3} would run"
    assert any(line.split()[:6] == ["done", "source_only", "bn", "Bb→Cc", "seed", "1"] for line in lines)


def test_failed_and_nan_runs_recorded_and_sweep_goes_on(tiny_spec, monkeypatch, capsys):
    out = tiny_spec.parent / "out"
    flags = ["--methods", "dann,mixed", "--norms", "bn", "--seeds", "0"]  # Aa→Bb, Bb→Cc, fold 0, fold 1
    monkeypatch.setenv("FAKE_FIT_FAIL", "Aa->Bb")
    monkeypatch.setenv("FAKE_FIT_NAN", "fold1")
    assert sweep(tiny_spec, *flags) == 1
    captured = capsys.readouterr()
    assert captured.err.count("failed: ") == 2
    # --retries 1 (the default): each failing run was tried twice in this sweep, then recorded.
    assert captured.err.count("retrying ") == 2 and len(attempts(run_dir(out, "dann_bn_Aa-Bb_s0"))) == 2
    assert "(log: " in captured.err
    rows = read_results(out / "results.csv")
    by_place = {(r["task"] or f"fold{r['fold']}", r["seed"]): r for r in rows
                if r["method"] != "source_only" and r["norm"] == "bn"}
    failed = by_place["Aa→Bb", "0"]
    # The reason is the exception line, not the progress bar printed after it.
    assert failed["status"] == "failed" and failed["reason"] == "exit status 1: RuntimeError: fake failure in Aa->Bb"
    nan_rows = [r for r in rows if (r["method"], r["norm"], r["fold"], r["seed"]) == ("mixed", "bn", "1", "0")]
    assert len(nan_rows) == 1 and nan_rows[0]["status"] == "failed" and nan_rows[0]["domain"] == ""
    assert "NaN" in nan_rows[0]["reason"] and nan_rows[0]["accuracy"] == ""
    assert by_place["Bb→Cc", "0"]["status"] == "ok" and by_place["fold0", "0"]["status"] == "ok"

    # The report of the partial sweep shows what exists and lists the failures with their reasons.
    assert main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert cells(text, "Aa→Bb")[3] == "— (1 failed, 1 missing)"  # DANN BN: seed 0 failed, seed 1 never ran
    assert "### Failed (2)" in text and "RuntimeError: fake failure in Aa->Bb" in text

    # A plain rerun keeps the failed runs (and says so); --rerun-failed starts them again, from
    # scratch: a failed run's checkpoint is not trusted.
    monkeypatch.delenv("FAKE_FIT_FAIL")
    monkeypatch.delenv("FAKE_FIT_NAN")
    capsys.readouterr()
    assert sweep(tiny_spec, *flags) == 1
    assert "2 failed earlier, kept (--rerun-failed redoes them)" in capsys.readouterr().out
    assert len(attempts(run_dir(out, "dann_bn_Aa-Bb_s0"))) == 2
    assert sweep(tiny_spec, *flags, "--rerun-failed") == 0
    assert len(attempts(run_dir(out, "dann_bn_Aa-Bb_s0"))) == 3
    assert attempts(run_dir(out, "mixed_bn_f1_s0"))[2].split()[1] == "ckpt=None"
    assert len(attempts(run_dir(out, "dann_bn_Bb-Cc_s0"))) == 1
    rows = read_results(out / "results.csv")
    assert sum(r["status"] == "ok" for r in rows) == 2 + 2 * 3 and not any(r["status"] == "failed" for r in rows)


def test_out_dir_of_another_sweep_is_refused(tiny_spec, capsys):
    out = tiny_spec.parent / "out"
    one = ["--methods", "dann", "--norms", "bn", "--tasks", "Aa->Bb", "--seeds", "0"]
    assert sweep(tiny_spec, *one) == 0
    before = (out / "results.csv").read_text()
    capsys.readouterr()
    # Different training arguments make runs that must not share a table with these.
    assert sweep(tiny_spec, *one, "--", "--trainer.max_steps", "5") == 2
    assert capsys.readouterr().err == (f"dabin: error: {out} holds runs of another sweep ('tiny'; its extra differ); "
                                       "use another --out or remove the folder\n")
    (tiny_spec.parent / "dann.yaml").write_text("model: {lr: 1.0}\n")
    assert sweep(tiny_spec, "--dry-run") == 2
    assert "a config file's contents changed" in capsys.readouterr().err
    (out / "sweep.json").unlink()
    assert sweep(tiny_spec, *one) == 2
    assert f"{out} holds runs but no sweep.json" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == before
    assert len(attempts(run_dir(out, "dann_bn_Aa-Bb_s0"))) == 1



def test_a_hyper_parameter_axis_is_in_the_results_and_resumes(tiny_spec, capsys):
    out = tiny_spec.parent / "out"
    text = tiny_spec.read_text().replace("methods: [dann, source_only, mixed]", "methods: [dann]")
    text = text.replace("norms: [bn, bin]", "norms: [bin]").replace("seeds: [0, 1]", "seeds: [0]")
    tiny_spec.write_text(text + "  model.lr: [0.01, 0.1]\n")
    assert sweep(tiny_spec) == 0
    rows = read_results(out / "results.csv")
    assert sorted((r["task"], r["hparams"]) for r in rows) == [
        ("Aa→Bb", "model.lr=0.01"), ("Aa→Bb", "model.lr=0.1"), ("Bb→Cc", "model.lr=0.01"), ("Bb→Cc", "model.lr=0.1")]
    for row in rows:  # each run got its value, last on its command line
        job = json.loads((out / row["run"] / "job.json").read_text())
        assert attempts(out / row["run"])[0].endswith(f"--model.lr {job['hparams']['model.lr']}")
    assert len({r["accuracy"] for r in rows}) == 4
    # A value added later runs only the new runs: the others are found by name.
    tiny_spec.write_text(text + "  model.lr: [0.01, 0.1, 0.3]\n")
    capsys.readouterr()
    assert sweep(tiny_spec, "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "6 jobs (4 done, 2 missing); 2 would run"
    assert sweep(tiny_spec) == 0
    assert all(len(attempts(p.parent)) == 1 for p in out.glob("*/job.json"))
    assert len(read_results(out / "results.csv")) == 6
