"""DomainBed's model-selection rules, checked against DomainBed's own output on its own sweep.

``tests/report/data/domainbed_sweep/`` holds the ``results.jsonl`` of every run of DomainBed's test
sweep (facebookresearch/DomainBed, ``domainbed/misc/test_sweep_data/``: ERM on VLCS, 2 trial seeds ×
2 hyper-parameter seeds, every single test environment and every pair, 5 checkpoints each) and
``test_sweep_results.txt``, the tables its ``scripts/collect_results.py`` printed from them (commit
in ``COMMIT``). dabin's :func:`dabin.report.generalization.select` must print the same numbers.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from dabin.report.generalization import RULE_TITLES, RULES, Checkpoint, DGRun, select

DATA = Path(__file__).parent / "data" / "domainbed_sweep"
ENVS = ("C", "L", "S", "V")  # VLCS's environments in DomainBed's order (its table's columns)


def _runs() -> dict[int, list[DGRun]]:
    """DomainBed's runs by trial seed, as dabin's rules see them (accuracies in %)."""
    by_seed: dict[int, list[DGRun]] = {}
    for path in sorted(DATA.glob("*/results.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        args = records[0]["args"]
        held_out = frozenset(ENVS[i] for i in args["test_envs"])
        points = tuple(Checkpoint(step=r["step"], accuracy={f"{env}/{part}": 100 * r[f"env{i}_{part}_acc"]
                                                            for i, env in enumerate(ENVS) for part in ("in", "out")})
                       for r in records)
        by_seed.setdefault(args["trial_seed"], []).append(
            DGRun(setting=str(args["hparams_seed"]), held_out=held_out,
                  train_domains=tuple(e for e in ENVS if e not in held_out), points=points))
    return by_seed


def _expected() -> dict[str, list[str]]:
    """Rule title -> the ERM row of DomainBed's VLCS table (``mean +/- err`` per env, then Avg)."""
    text = (DATA / "test_sweep_results.txt").read_text()
    rows = {}
    for title, body in re.findall(r"-------- Dataset: VLCS, model selection method: (.+)\n.*\n(ERM .*)\n", text):
        rows[title.strip()] = re.split(r"\s{2,}", body.strip())[1:]
    return rows


DOMAINBED_TITLES = {"training_domain": "training-domain validation set",
                    "leave_one_domain_out": "leave-one-domain-out cross-validation",
                    "oracle": "test-domain validation set (oracle)"}


@pytest.mark.parametrize("rule", RULES)
def test_rules_print_domainbeds_numbers(rule: str) -> None:
    runs = _runs()
    expected = _expected()[DOMAINBED_TITLES[rule]]
    cells, means = [], []
    for env in ENVS:
        accs = []
        for seed in sorted(runs):
            group = [run for run in runs[seed] if env in run.held_out]
            choice = select(group, env, rule, part="in")
            assert choice is not None
            accs.append(choice.test)
        mean = statistics.fmean(accs)
        error = statistics.pstdev(accs) / len(accs) ** 0.5  # collect_results: np.std / sqrt(n)
        cells.append(f"{mean:.1f} +/- {error:.1f}")
        means.append(mean)
    cells.append(f"{statistics.fmean(means):.1f}")
    assert cells == expected, RULE_TITLES[rule]


def test_leave_one_out_needs_every_validation_run() -> None:
    runs = [run for run in _runs()[0] if "C" in run.held_out]
    complete = select(runs, "C", "leave_one_domain_out", part="in")
    assert complete is not None
    without_l = [run for run in runs if run.held_out != {"C", "L"}]
    assert select(without_l, "C", "leave_one_domain_out") is None
    # The other rules never read the validation runs.
    assert select(without_l, "C", "training_domain", part="in") == select(runs, "C", "training_domain", part="in")


def test_whole_test_domain_weights_the_parts_by_size() -> None:
    point = Checkpoint(step=1, accuracy={"T/in": 50.0, "T/out": 100.0, "A/out": 70.0},
                       counts={"T/in": 300, "T/out": 100, "A/out": 10})
    run = DGRun(setting="", held_out=frozenset({"T"}), train_domains=("A",), points=(point,))
    assert select([run], "T", "training_domain").test == pytest.approx(62.5)
    assert select([run], "T", "training_domain", part="in").test == 50.0
    assert select([run], "T", "oracle").test == 50.0  # the oracle reports the part it did not select on
