"""The report of a sweep folder written by an earlier release, held byte for byte against that release's.

``data/sweep/`` is what ``dabin sweep data/fixture_sweep.yaml`` left (run folders with ``job.json``,
``metrics.json``, ``gates.csv`` and markers; ``sweep.json``; ``results.csv``), with the checkpoints,
logs and Lightning folders removed and this machine's paths cut from the records: 32 finished runs of
source-only, DANN on a hyper-parameter axis and the mixed-domain method, BN and BIN, 2 tasks, 2 folds,
2 seeds; 2 runs failed, 1 interrupted (incomplete), 13 never started. ``data/report*/`` are the reports
that release made of it (``dabin report``; with ``--select im``; of its ``results.csv`` without the
DANN rows, alone). A change to how the report reads runs must leave every file the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import pytest

from dabin.errors import DabinError
from dabin.report.build import build_report

DATA = Path(__file__).parent / "data"


def _expected(name: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((DATA / name).iterdir()) if path.name != "MATPLOTLIB"}


def _compare(files: dict[str, bytes], expected: dict[str, bytes]) -> None:
    assert list(files)[-1] == "report.md"  # written last, so it never links to a missing file
    assert sorted(files) == sorted(expected)
    text = [name for name in expected if not name.endswith(".png") and files[name] != expected[name]]
    assert not text, f"differ from the release's report: {text}"
    pictures = [name for name in expected if name.endswith(".png") and files[name] != expected[name]]
    made_with = (DATA / "report" / "MATPLOTLIB").read_text().strip()
    if pictures and matplotlib.__version__ != made_with:
        pytest.skip(f"PNGs differ, but they were drawn with matplotlib {made_with}, this is {matplotlib.__version__}")
    assert not pictures, f"differ from the release's report: {pictures}"


@pytest.mark.parametrize(("select", "expected"), [(None, "report"), ("im", "report_im")])
def test_report_of_a_release_sweep_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                select: str | None, expected: str) -> None:
    shutil.copytree(DATA / "sweep", tmp_path / "sweep")
    monkeypatch.chdir(tmp_path)  # the report names its folder as given: `sweep`
    report = build_report("sweep", select=select)
    assert report.sweep.from_records
    _compare(report.files, _expected(expected))


def test_report_of_a_release_results_file_alone_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "csvonly").mkdir()
    shutil.copy(DATA / "results_without_dann.csv", tmp_path / "csvonly" / "results.csv")
    monkeypatch.chdir(tmp_path)
    report = build_report("csvonly")
    assert not report.sweep.from_records
    _compare(report.files, _expected("report_csv"))


def test_results_file_alone_without_source_validation_says_how_to_choose(tmp_path: Path) -> None:
    # The DANN runs have a hyper-parameter axis; results.csv alone has no evaluation points and these
    # 20-step runs recorded no source validation, so nothing can choose among their settings.
    (tmp_path / "csv").mkdir()
    shutil.copy(DATA / "sweep" / "results.csv", tmp_path / "csv" / "results.csv")
    with pytest.raises(DabinError, match=r"^run dann_bn_In-Ne_s0_lambda_max0.3_5dcf473a \(In→Ne "
                                         r"model.lambda_max=0.3 seed 0\) has no source validation accuracy to "
                                         r"choose its hyper-parameters by; give --select VALIDATOR$"):
        build_report(tmp_path / "csv")


def test_results_file_is_the_flat_view_of_the_records(tmp_path: Path) -> None:
    from dabin.record import Manifest, read_runs, result_rows, write_results

    folder = DATA / "sweep"
    manifest = Manifest.read(folder)
    assert manifest is not None
    rows = [row for run in read_runs(folder, manifest.planned(folder)) for row in result_rows(run)]
    write_results(tmp_path / "results.csv", rows)
    # What that release's sweep wrote after its last run, from the same folders.
    assert (tmp_path / "results.csv").read_bytes() == (folder / "results.csv").read_bytes()
