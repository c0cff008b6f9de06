"""The report's model selection: each validator's pick beside the oracle, correlations, ``--select``.

Runs come from a real sweep with the fake trainer (made-up scores at three evaluation points per run);
every expected number is computed here by hand from the runs' ``metrics.json``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from dabin.cli import main
from dabin.record import Run
from dabin.report.selection import Candidate
from tests.sweep.conftest import TINY_SPEC, fake_command, write_spec

SPEC = TINY_SPEC.replace("methods: [dann, source_only, mixed]", "methods: [dann, mixed]").replace(
    "norms: [bn, bin]", "norms: [bin]").replace("  folds: [0, 1]", "  folds: [0]\n  model.lr: {{values: [0.01, 0.1, 0.3], methods: [dann]}}")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sweep: DANN BIN on 2 tasks x 2 seeds x 3 learning rates, plus one mixed fold."""
    folder = tmp_path_factory.mktemp("selection")
    spec = write_spec(folder, SPEC)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DABIN_SWEEP_COMMAND", fake_command())
        assert main(["sweep", str(spec), "--workers", "2"]) == 0
    return folder / "out"


def _runs(out: Path) -> list[dict]:
    runs = []
    for job_file in sorted(out.glob("*/job.json")):
        job = json.loads(job_file.read_text())
        metrics = json.loads((job_file.parent / "metrics.json").read_text())
        if job["method"] == "dann":
            runs.append({"job": job, "points": metrics["evaluation_points"],
                         "final": metrics["test"][job["target"]]["accuracy"], "source_val": metrics.get("source_val")})
    return runs


def _best(points: list[dict], name: str) -> dict:
    # Highest score; among equal scores the later point.
    return max(points, key=lambda p: (p["scores"][name], p["step"]))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(values)
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def _rho(x: list[float], y: list[float]) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])  # no ties in the fake scores


def test_each_validator_pick_and_the_oracle_match_a_hand_computation(swept: Path) -> None:
    assert main(["report", str(swept)]) == 0
    runs = _runs(swept)
    assert len(runs) == 12 and all(len(r["points"]) == 3 for r in runs)
    table = {(row["rule"], row["scope"]): row for row in _csv(swept / "selection.csv")}
    groups = defaultdict(list)
    for run in runs:
        groups[run["job"]["target"], run["job"]["seed"]].append(run)
    for name in ("source_val", "entropy", "snd"):
        within = statistics.mean(_best(r["points"], name)["oracle"]["target_test_accuracy"] for r in runs)
        settings = statistics.mean(max(g, key=lambda r: r["points"][-1]["scores"][name])["final"]
                                   for g in groups.values())
        both = statistics.mean(_best([p for r in g for p in r["points"]], name)["oracle"]["target_test_accuracy"]
                               for g in groups.values())
        assert float(table[name, "checkpoints"]["mean_accuracy"]) == pytest.approx(within, abs=1e-4)
        assert float(table[name, "settings"]["mean_accuracy"]) == pytest.approx(settings, abs=1e-4)
        assert float(table[name, "both"]["mean_accuracy"]) == pytest.approx(both, abs=1e-4)
        assert table[name, "both"]["uses_target_labels"] == "false" and table[name, "both"]["n"] == "4"
    oracle = statistics.mean(max(p["oracle"]["target_test_accuracy"] for r in g for p in r["points"])
                             for g in groups.values())
    assert float(table["oracle", "both"]["mean_accuracy"]) == pytest.approx(oracle, abs=1e-4)
    assert table["oracle", "both"]["uses_target_labels"] == "true"
    assert float(table["last checkpoint", "checkpoints"]["mean_accuracy"]) == pytest.approx(
        statistics.mean(r["final"] for r in runs), abs=1e-4)
    # Every validator's pick is at most the oracle's, in every scope.
    for scope in ("checkpoints", "settings", "both"):
        assert all(float(row["mean_accuracy"]) <= float(table["oracle", scope]["mean_accuracy"]) + 1e-9
                   for (rule, s), row in table.items() if s == scope)
    text = (swept / "report.md").read_text()
    assert "## Choosing without target labels" in text and "| **oracle** (bound) | **yes** |" in text
    assert "![Validator score vs target test accuracy" in text and (swept / "validator_scores.png").stat().st_size > 1000


def _mean_ranks(pool: list[dict], names: tuple[str, ...]) -> list[float]:
    """MixVal's combination, written out: per score, rank 1 = lowest, ties their mean rank; the mean over scores."""
    total = [0.0] * len(pool)
    for name in names:
        values = [p["scores"][name] for p in pool]
        for i, v in enumerate(values):
            below, equal = sum(w < v for w in values), sum(w == v for w in values)
            total[i] += below + (equal + 1) / 2
    return [t / len(names) for t in total]


def test_mixval_ranks_the_candidates_by_intra_and_inter_and_averages_the_ranks(swept: Path) -> None:
    # Hu et al. (NeurIPS 2023), section 3.3: rank the candidates by ICE_intra and by ICE_inter, average the ranks.
    assert main(["report", str(swept)]) == 0
    runs = _runs(swept)
    table = {(row["rule"], row["scope"]): row for row in _csv(swept / "selection.csv")}
    groups = defaultdict(list)
    for run in runs:
        groups[run["job"]["target"], run["job"]["seed"]].append(run)
    parts = ("mixval_intra", "mixval_inter")

    def best(pool: list[dict]) -> dict:
        ranks = _mean_ranks(pool, parts)
        return max(zip(ranks, pool), key=lambda pair: (pair[0], pair[1]["step"]))[1]

    within = statistics.mean(best(r["points"])["oracle"]["target_test_accuracy"] for r in runs)
    both = statistics.mean(best([p for r in g for p in r["points"]])["oracle"]["target_test_accuracy"]
                           for g in groups.values())
    assert float(table["mixval", "checkpoints"]["mean_accuracy"]) == pytest.approx(within, abs=1e-4)
    assert float(table["mixval", "both"]["mean_accuracy"]) == pytest.approx(both, abs=1e-4)
    # The largest class share of the picks, beside each rule.
    share = statistics.mean(best(r["points"])["target_predictions"]["max_class_share"] for r in runs)
    assert float(table["mixval", "checkpoints"]["mean_max_class_share"]) == pytest.approx(share, abs=1e-4)
    text = (swept / "report.md").read_text()
    assert "| `mixval` | no |" in text and "; share " in text
    rows = list(_csv(swept / "candidates.csv"))
    assert len(rows) == 12 * 3 and {"mixval_intra", "mixval_inter", "max_class_share"} <= set(rows[0])
    assert "mixval" not in rows[0]  # a rank needs the other candidates: not a score of one point


def test_spearman_correlations_match_a_hand_computation(swept: Path) -> None:
    assert main(["report", str(swept)]) == 0
    runs = _runs(swept)
    rows = {row["validator"]: row for row in _csv(swept / "validator_correlations.csv")}
    for name in ("source_val", "entropy", "snd"):
        within = statistics.mean(_rho([p["scores"][name] for p in r["points"]],
                                      [p["oracle"]["target_test_accuracy"] for p in r["points"]]) for r in runs)
        by_task = defaultdict(list)
        for run in runs:
            by_task[run["job"]["target"]].append(run)
        across = statistics.mean(_rho([r["points"][-1]["scores"][name] for r in group], [r["final"] for r in group])
                                 for group in by_task.values())
        assert float(rows[name]["spearman_over_checkpoints"]) == pytest.approx(within, abs=1e-4)
        assert rows[name]["runs"] == "12" and rows[name]["tasks"] == "2"
        assert float(rows[name]["spearman_over_runs"]) == pytest.approx(across, abs=1e-4)


def test_select_makes_a_validator_pick_the_headline(swept: Path, tmp_path: Path) -> None:
    runs = _runs(swept)
    assert main(["report", str(swept), "--select", "snd", "--out", str(tmp_path / "report.md")]) == 0
    cells = {row["task"]: row for row in _csv(tmp_path / "table4.csv") if row["task"] != "Avg"}
    by_cell = defaultdict(list)
    for target in {r["job"]["target"] for r in runs}:
        for seed in (0, 1):
            pool = [p for r in runs if (r["job"]["target"], r["job"]["seed"]) == (target, seed) for p in r["points"]]
            by_cell[target].append(_best(pool, "snd")["oracle"]["target_test_accuracy"])
    for row in cells.values():
        assert float(row["mean"]) == pytest.approx(statistics.mean(by_cell[row["target"]]), abs=1e-3)
        assert row["n"] == "2"  # one pick per seed, not one row per setting
    text = (tmp_path / "report.md").read_text()
    assert "**Headline tables**: validator `snd`'s pick over evaluation points and hyper-parameter settings" in text
    # The mixed-domain runs have no evaluation points: their table is the last checkpoint as always.
    assert "## Table 3: mixed-domain classification" in text


def test_by_default_a_hyper_parameter_sweep_chooses_settings_by_source_validation(swept: Path, tmp_path: Path) -> None:
    runs = _runs(swept)
    assert main(["report", str(swept), "--out", str(tmp_path / "report.md")]) == 0
    cells = {row["target"]: float(row["mean"]) for row in _csv(tmp_path / "table4.csv") if row["task"] != "Avg"}
    for target, mean in cells.items():
        picks = [max((r for r in runs if (r["job"]["target"], r["job"]["seed"]) == (target, seed)),
                     key=lambda r: r["points"][-1]["scores"]["source_val"])["final"] for seed in (0, 1)]
        assert mean == pytest.approx(statistics.mean(picks), abs=1e-3)
    assert "the one with the best source validation accuracy" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(("select", "message"), [
    ("oracle", "--select oracle: the oracle uses target labels and is never the headline"),
    ("nope", "--select nope: not a validator the runs recorded (source_val, entropy, snd, mixval_intra, mixval_inter, mixval)"),
])
def test_bad_select_is_one_line_and_writes_nothing(swept: Path, tmp_path: Path, capsys, select, message) -> None:
    out = tmp_path / "report.md"
    assert main(["report", str(swept), "--select", select, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not out.exists()


def test_select_without_evaluation_points_says_how_to_get_them(tmp_path: Path, capsys) -> None:
    spec = write_spec(tmp_path, TINY_SPEC.replace("methods: [dann, source_only, mixed]", "methods: [dann]"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DABIN_SWEEP_COMMAND", fake_command())
        patch.setenv("FAKE_FIT_NO_POINTS", "1")
        assert main(["sweep", str(spec)]) == 0
    out = tmp_path / "out"
    assert main(["report", str(out)]) == 0
    assert "No finished transfer run has evaluation points (8 without)" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", str(out), "--select", "snd"]) == 2
    assert "--select snd: not a validator the runs recorded (no run has evaluation points)" in capsys.readouterr().err


def test_over_runs_ranks_every_candidate_of_a_task_whatever_its_method_or_norm() -> None:
    from dabin.report.selection import validator_correlations

    def run(key: str, method: str, norm: str) -> Run:
        return Run(key=key, line=0, method=method, norm=norm, source="Aa", target="Bb", seed=0, fold=None,
                   status="ok", reason="", test={}, model_selection="")

    # Three runs of one task by two methods and two norms: one ranking of three (scores rank as accuracies).
    candidates = {key: (Candidate(run=run(key, method, norm), step=1, scores={"im": score}, accuracy=acc, last=True),)
                  for key, method, norm, score, acc in (("a", "dann", "bn", 0.1, 30.0), ("b", "source_only", "bn", 0.2, 40.0),
                                                        ("c", "dann", "bin", 0.3, 35.0))}
    (correlation,) = validator_correlations(candidates)
    assert correlation.tasks == 1 and correlation.over_runs == pytest.approx(0.5)  # ranks (1,2,3) vs (1,3,2)
    assert correlation.runs == 0 and correlation.over_checkpoints is None  # one point per run: no ranking


def test_setting_optima_name_the_oracles_best_setting_and_its_place_on_each_axis(swept: Path) -> None:
    assert main(["report", str(swept)]) == 0
    by_task: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    shares: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in _runs(swept):
        task = f"{run['job']['source']}→{run['job']['target']}"
        lr = str(run["job"]["hparams"]["model.lr"]) if "hparams" in run["job"] else None
        assert lr is not None, run["job"]
        by_task[task][lr].append(run["points"][-1]["oracle"]["target_test_accuracy"])
        shares[task][lr].append(run["points"][-1]["target_predictions"]["max_class_share"])
    rows = {row["task"]: row for row in _csv(swept / "setting_optima.csv")}
    assert set(rows) == set(by_task)
    for task, settings in by_task.items():
        mean = {lr: statistics.mean(values) for lr, values in settings.items()}
        best = max(mean, key=lambda lr: (mean[lr], lr))
        row = rows[task]
        assert float(row["model.lr"]) == float(best)
        assert row["model.lr position"] == {0.01: "low", 0.1: "interior", 0.3: "high"}[float(best)]
        assert float(row["oracle_accuracy"]) == pytest.approx(mean[best], abs=1e-4)
        assert row["settings"] == "3" and row["diverged"] == "0"
        assert int(row["collapsed"]) == sum(statistics.mean(s) >= 50.0 for s in shares[task].values())
    assert "### Where the best setting lies" in (swept / "report.md").read_text()


def _optimum_point(task: str, hparams: str, accuracy: float) -> tuple[str, tuple[Candidate, ...]]:
    """One finished DANN BIN run of ``task`` with ``hparams`` and its last checkpoint at ``accuracy`` (%)."""
    source, target = task.split("→")
    run = Run(key=f"{task} {hparams}", line=0, method="dann", norm="bin", source=source, target=target, seed=0,
              fold=None, status="ok", reason="", test={}, model_selection="", hparams=hparams)
    return run.key, (Candidate(run=run, step=10, scores={"im": 0.0}, accuracy=accuracy, last=True),)


def test_a_sparse_grid_brackets_the_best_only_along_the_line_through_it() -> None:
    """A star around a centre: a value run only off the best's line brackets nothing."""
    from dabin.report.optimum import setting_optima

    star = {  # Aa→Bb: lr bracketed around 0.1 at λ 1; λ 0.3 run only at lr 0.3, so λ 1 is the low end of its line
        "model.lr=0.1 model.lambda_max=1 trainer.max_steps=50": 80.0,
        "model.lr=0.01 model.lambda_max=1 trainer.max_steps=50": 70.0,
        "model.lr=0.3 model.lambda_max=1 trainer.max_steps=50": 60.0,
        "model.lr=0.1 model.lambda_max=3 trainer.max_steps=50": 75.0,
        "model.lr=0.3 model.lambda_max=0.3 trainer.max_steps=50": 50.0,
    }
    alone = {  # Bb→Cc: the best's λ has no other value on its line
        "model.lr=0.1 model.lambda_max=1 trainer.max_steps=50": 60.0,
        "model.lr=0.3 model.lambda_max=1 trainer.max_steps=50": 55.0,
        "model.lr=0.01 model.lambda_max=1 trainer.max_steps=50": 58.0,
        "model.lr=0.3 model.lambda_max=3 trainer.max_steps=50": 40.0,
    }
    candidates = (dict(_optimum_point("Aa→Bb", h, a) for h, a in star.items())
                  | dict(_optimum_point("Bb→Cc", h, a) for h, a in alone.items()))
    runs = [c[0].run for c in candidates.values()]
    first, second = setting_optima(runs, candidates)
    assert first.best == {"model.lr": "0.1", "model.lambda_max": "1", "trainer.max_steps": "50"}
    assert first.position == {"model.lr": "interior", "model.lambda_max": "low", "trainer.max_steps": "only"}
    assert not first.interior and first.settings == 5
    assert second.position == {"model.lr": "interior", "model.lambda_max": "alone", "trainer.max_steps": "only"}
    assert not second.interior


def test_settings_tied_with_the_best_are_bracketed_together_and_counted() -> None:
    """A plateau of equal accuracies is bracketed only when settings below it lie on both sides."""
    from dabin.report.optimum import optimum_csv, setting_optima

    edge = {  # Aa→Bb: λ 1 and 3 tie; nothing above 3, so the plateau reaches the line's high end
        "model.lr=0.1 model.lambda_max=0.3": 80.0,
        "model.lr=0.1 model.lambda_max=1": 84.6,
        "model.lr=0.1 model.lambda_max=3": 84.6,
        "model.lr=0.03 model.lambda_max=3": 82.0,
        "model.lr=0.3 model.lambda_max=3": 13.2,
    }
    # λ 10 below the plateau brackets it; λ 1 above λ 3 by float rounding only (a mean over seeds) still ties,
    # so the best stays λ 3, whose lr line is run (λ 1's has lr 0.1 alone).
    bracketed = edge | {"model.lr=0.1 model.lambda_max=10": 70.0, "model.lr=0.1 model.lambda_max=1": 84.6 + 1e-12}
    flat = {"model.lr=0.1 model.lambda_max=1": 50.0, "model.lr=0.1 model.lambda_max=3": 50.0,
            "model.lr=0.3 model.lambda_max=3": 40.0, "model.lr=0.03 model.lambda_max=3": 45.0}
    # Dd→Ee: 4,800 and 9,600 steps tie; only 4,800's lr line is run, so it is named although 9,600 sorts last.
    longer = {"model.lr=0.1 trainer.max_steps=4800": 87.9, "model.lr=0.1 trainer.max_steps=9600": 87.9,
              "model.lr=0.1 trainer.max_steps=2400": 83.5, "model.lr=0.03 trainer.max_steps=4800": 79.1,
              "model.lr=0.3 trainer.max_steps=4800": 9.9}
    candidates = (dict(_optimum_point("Aa→Bb", h, a) for h, a in edge.items())
                  | dict(_optimum_point("Bb→Cc", h, a) for h, a in bracketed.items())
                  | dict(_optimum_point("Cc→Dd", h, a) for h, a in flat.items())
                  | dict(_optimum_point("Dd→Ee", h, a) for h, a in longer.items()))
    first, second, third, fourth = setting_optima([c[0].run for c in candidates.values()], candidates)
    # λ 3 is named: its lr line is run (λ 1's has lr 0.1 alone); the other tied setting is counted.
    assert first.best == {"model.lr": "0.1", "model.lambda_max": "3"} and first.tied == 1
    assert first.position == {"model.lr": "interior", "model.lambda_max": "high"} and not first.interior
    assert second.best == first.best and second.tied == 1
    assert second.position == {"model.lr": "interior", "model.lambda_max": "interior"}
    assert second.interior
    assert third.position == {"model.lr": "interior", "model.lambda_max": "flat"} and not third.interior
    assert fourth.best == {"model.lr": "0.1", "trainer.max_steps": "4800"} and fourth.tied == 1
    assert fourth.position == {"model.lr": "interior", "trainer.max_steps": "high"} and not fourth.interior
    rows = list(csv.DictReader(io.StringIO(optimum_csv([first, second, third]))))
    assert [row["tied"] for row in rows] == ["1", "1", "1"]
