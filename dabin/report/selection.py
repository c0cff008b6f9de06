"""Model selection without target labels, as the report shows it: each validator's pick beside the oracle.

A transfer run with evaluation points (:mod:`dabin.selection.probe`) recorded, at a few steps, every
validator's score and, apart, the target test accuracy at that step (the *oracle*). From the run
records the report makes **candidates**, one per (run, evaluation point), and picks among them:

* **over checkpoints**: within one run, the point with the highest score;
* **over settings**: among the runs of one (method, norm, task, seed) that differ only in the
  sweep's hyper-parameter axes, the run whose last checkpoint scores highest;
* **over both**: among every point of those runs.

A pick's accuracy is the oracle's value at the picked point: what the selection would have
obtained, read after the fact. The *last checkpoint* (averaged over settings) is the no-selection
baseline; the *oracle* row picks by target test accuracy itself, an upper bound that uses target
labels and is never a headline.

How well a validator tracks target accuracy is the Spearman rank correlation between its score and
the oracle's accuracy (:func:`scipy.stats.spearmanr`), as in Musgrave et al. (2022):

* **over checkpoints**: within each run across its points, then the mean over runs;
* **over runs**: across the runs of one task (every method, norm, setting and seed of the sweep:
  the candidates one would choose among on that task; last checkpoint), then the mean over tasks.

A validator of :data:`~dabin.selection.mixval.RANK_COMBINED` (MixVal) scores a candidate by its
mean rank under several recorded scores among the candidates of the same pool (a run's points, a
group's settings, a task's runs), as its paper does; ties get their mean rank.

A ranking needs three values at least; a group with fewer, or whose scores or accuracies are all
equal, has no correlation and is left out of the mean (the count says how many were used).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence

from dabin.errors import DabinError
from dabin.record import Run, TestResult
from dabin.report.inputs import Sweep
from dabin.report.pivot import group_by
from dabin.selection.mixval import RANK_COMBINED, rank_average
from dabin.selection.validators import VALIDATOR_NAMES

__all__ = [
    "LAST",
    "ORACLE",
    "SCOPES",
    "Candidate",
    "Correlation",
    "Selection",
    "SelectionReport",
    "SelectionTable",
    "headline_rule",
    "headline_runs",
    "load_candidates",
    "pick",
    "recorded_validators",
    "selection_report",
    "selection_tables",
    "validator_correlations",
]

#: The rule that picks by target test accuracy: a bound, using target labels, never a headline.
ORACLE = "oracle"
#: The rule that picks nothing: the last checkpoint, every setting averaged.
LAST = "last checkpoint"
#: Where a rule picks: within a run, among the runs of a hyper-parameter sweep, among both.
SCOPES: tuple[str, ...] = ("checkpoints", "settings", "both")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One evaluation point of one finished transfer run.

    Attributes:
        run: The run.
        step: Steps done at the point.
        scores: Validator name -> score (higher is better; NaN where undefined).
        accuracy: The oracle: target test accuracy (%) at the point.
        last: Whether the point is the end of training (the tested last checkpoint).
        max_class_share: Percent of the target train predictions in the most predicted class
            (None: not recorded).
    """

    run: Run
    step: int
    scores: Mapping[str, float]
    accuracy: float
    last: bool
    max_class_share: float | None = None


def load_candidates(sweep: Sweep) -> dict[str, tuple[Candidate, ...]]:
    """The evaluation points of every finished transfer run that recorded some.

    Args:
        sweep: The checked sweep (runs read from their records carry their points).

    Returns:
        Run key -> its candidates in step order (runs without points are absent).
    """
    candidates: dict[str, tuple[Candidate, ...]] = {}
    for run in sweep.runs:
        if run.status != "ok" or not run.transfer or not run.points:
            continue
        end = max(point.step for point in run.points) if run.steps is None else run.steps
        candidates[run.key] = tuple(
            Candidate(run=run, step=point.step, scores=point.scores, accuracy=point.oracle_target_test,
                      last=point.step == end, max_class_share=point.max_class_share)
            for point in sorted(run.points, key=lambda point: point.step))
    return candidates


def pool_scores(candidates: Sequence[Candidate], rule: str) -> list[float]:
    """Each candidate's score under ``rule`` within this pool (NaN where undefined).

    A recorded validator's score is the candidate's own; a rank-combined one
    (:data:`~dabin.selection.mixval.RANK_COMBINED`) is its mean rank among ``candidates``.
    """
    if rule == ORACLE:
        return [c.accuracy for c in candidates]
    if rule in RANK_COMBINED:
        return rank_average([[c.scores.get(name, math.nan) for c in candidates] for name in RANK_COMBINED[rule]])
    return [c.scores.get(rule, math.nan) for c in candidates]


def pick(candidates: Sequence[Candidate], rule: str) -> Candidate:
    """The candidate a rule keeps: the highest score; among equals the later step (fewer choices made).

    A score that is NaN (the validator was undefined there) ranks below every number, so a
    validator undefined everywhere keeps the last point.

    Args:
        candidates: At least one candidate.
        rule: A validator's name, a rank-combined one, or :data:`ORACLE`.
    """
    scores = pool_scores(candidates, rule)
    best = max(range(len(candidates)),
               key=lambda i: (-math.inf if math.isnan(scores[i]) else scores[i], candidates[i].step))
    return candidates[best]


def _last_point(points: Sequence[Candidate]) -> Candidate | None:
    return next((c for c in reversed(points) if c.last), None)


def _group_key(run: Run) -> tuple[str, str, str, str, int]:
    return run.method, run.norm, run.source, run.target, run.seed


def _pool(candidates: Mapping[str, Sequence[Candidate]], scope: str) -> list[list[Candidate]]:
    """The pools a rule picks from in one scope (a run's points; a group's last points; all of a group's)."""
    if scope == "checkpoints":
        return [list(points) for points in candidates.values()]
    if scope == "settings":
        lasts = [last for points in candidates.values() if (last := _last_point(points)) is not None]
        return list(group_by(lasts, lambda c: _group_key(c.run)).values())
    return list(group_by([c for points in candidates.values() for c in points], lambda c: _group_key(c.run)).values())


@dataclasses.dataclass(frozen=True)
class Selection:
    """What one rule obtained in one scope for one (method, norm).

    Attributes:
        rule: :data:`LAST`, a validator's name or :data:`ORACLE`.
        scope: One of :data:`SCOPES`.
        mean: Mean target test accuracy (%) of the picks (None: nothing to pick from).
        n: Picks averaged (runs for ``checkpoints``, task × seed groups otherwise).
        max_class_share: Mean, over the picks, of the share (%) of target predictions in the most
            predicted class (None: not recorded); high where a rule rewards a collapsing model.
    """

    rule: str
    scope: str
    mean: float | None
    n: int
    max_class_share: float | None = None

    @property
    def uses_target_labels(self) -> bool:
        """Only the oracle reads target labels."""
        return self.rule == ORACLE


@dataclasses.dataclass(frozen=True)
class SelectionTable:
    """Every rule in every scope for one (method, norm).

    Attributes:
        method: The method.
        norm: The normalization layer.
        scopes: The scopes shown (``settings`` and ``both`` only for sweeps with hyper-parameter axes).
        rules: Rules in display order: last checkpoint, the validators, the oracle.
        cells: (rule, scope) -> selection.
        runs: Runs with evaluation points.
    """

    method: str
    norm: str
    scopes: tuple[str, ...]
    rules: tuple[str, ...]
    cells: dict[tuple[str, str], Selection]
    runs: int


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _share(picks: Sequence[Candidate]) -> float | None:
    shares = [c.max_class_share for c in picks if c.max_class_share is not None]
    return _mean(shares) if len(shares) == len(picks) else None


def recorded_validators(candidates: Mapping[str, Sequence[Candidate]]) -> tuple[str, ...]:
    """The validators the candidates recorded, in :data:`VALIDATOR_NAMES` order, then their rank combinations."""
    names = dict.fromkeys(name for points in candidates.values() for c in points for name in c.scores)
    known = [name for name in VALIDATOR_NAMES if name in names]
    combined = [rule for rule, parts in RANK_COMBINED.items() if all(part in names for part in parts)]
    return tuple(known + combined + [name for name in names if name not in known])


def selection_tables(candidates: Mapping[str, Sequence[Candidate]], hyper: bool) -> list[SelectionTable]:
    """Per (method, norm), the mean accuracy each rule obtains in each scope.

    Args:
        candidates: From :func:`load_candidates`.
        hyper: Whether the sweep has hyper-parameter axes (the ``settings`` and ``both`` scopes).

    Returns:
        One table per (method, norm) with candidates, in the order first seen.
    """
    scopes = SCOPES if hyper else SCOPES[:1]
    rules = (LAST, *recorded_validators(candidates), ORACLE)
    columns = dict.fromkeys((points[0].run.method, points[0].run.norm) for points in candidates.values())
    tables = []
    for method, norm in columns:
        mine = {key: points for key, points in candidates.items()
                if (points[0].run.method, points[0].run.norm) == (method, norm)}
        last = [c for points in mine.values() if (c := _last_point(points)) is not None]
        cells = {}
        for scope in scopes:
            pools = _pool(mine, scope)
            cells[LAST, scope] = Selection(LAST, scope, _mean([c.accuracy for c in last]), len(last), _share(last))
            for rule in rules[1:]:
                picks = [pick(pool, rule) for pool in pools]
                cells[rule, scope] = Selection(rule, scope, _mean([c.accuracy for c in picks]), len(picks),
                                               _share(picks))
        tables.append(SelectionTable(method=method, norm=norm, scopes=scopes, rules=rules, cells=cells,
                                     runs=len(mine)))
    return tables


@dataclasses.dataclass(frozen=True)
class Correlation:
    """How well one validator ranks like the target accuracy.

    Attributes:
        validator: The validator.
        over_checkpoints: Mean Spearman ρ within runs (None: no run with a ranking).
        runs: Runs it averages.
        over_runs: Mean Spearman ρ across the runs of each task.
        tasks: Tasks it averages.
    """

    validator: str
    over_checkpoints: float | None
    runs: int
    over_runs: float | None
    tasks: int


def _spearman_in(pool: Sequence[Candidate], rule: str) -> float | None:
    return _spearman(list(zip(pool_scores(pool, rule), (c.accuracy for c in pool))))


def _spearman(pairs: Sequence[tuple[float, float]]) -> float | None:
    from scipy.stats import spearmanr

    pairs = [(s, a) for s, a in pairs if math.isfinite(s)]
    if len(pairs) < 3 or len({s for s, _ in pairs}) < 2 or len({a for _, a in pairs}) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr([s for s, _ in pairs], [a for _, a in pairs]).statistic)
    return rho if math.isfinite(rho) else None


def validator_correlations(candidates: Mapping[str, Sequence[Candidate]]) -> list[Correlation]:
    """Spearman correlations of every validator with the target accuracy, over checkpoints and over runs."""
    lasts = [last for points in candidates.values() if (last := _last_point(points)) is not None]
    groups = group_by(lasts, lambda c: (c.run.source, c.run.target))
    result = []
    for name in recorded_validators(candidates):
        within = [rho for points in candidates.values() if (rho := _spearman_in(points, name)) is not None]
        across = [rho for pool in groups.values() if (rho := _spearman_in(pool, name)) is not None]
        result.append(Correlation(validator=name, over_checkpoints=_mean(within), runs=len(within),
                                  over_runs=_mean(across), tasks=len(across)))
    return result


def headline_runs(sweep: Sweep, candidates: Mapping[str, Sequence[Candidate]], validator: str | None) -> list[Run]:
    """The runs the headline tables show: one per (method, norm, task or fold, seed).

    Args:
        sweep: The checked sweep.
        candidates: From :func:`load_candidates`.
        validator: ``--select``: this validator's pick over checkpoints and settings, its accuracy
            the oracle's value at the picked point. None: the last checkpoint; in a sweep with
            hyper-parameter axes the setting with the best source validation accuracy at the end.

    Returns:
        Transfer runs with ``test`` = ``{target: picked accuracy}``, then the other runs as they are.

    Raises:
        DabinError: ``validator`` is not one the runs recorded, or a finished transfer run has no
            evaluation point to pick from (or, by default, a setting has no source validation accuracy).
    """
    if validator is not None:
        known = recorded_validators(candidates)
        if validator == ORACLE:
            raise DabinError("--select oracle: the oracle uses target labels and is never the headline; "
                             "the report shows it beside the validators")
        if validator not in known:
            raise DabinError(f"--select {validator}: not a validator the runs recorded"
                             + (f" ({', '.join(known)})" if known else " (no run has evaluation points)"))
    groups = group_by([run for run in sweep.runs if run.transfer], _group_key)
    others = [run for run in sweep.runs if not run.transfer]
    chosen: list[Run] = []
    for runs in groups.values():
        finished = [run for run in runs if run.status == "ok"]
        if not finished:
            chosen += runs
        elif validator is not None:
            missing = [run for run in finished if run.key not in candidates]
            if missing:
                raise DabinError(f"--select {validator}: run {missing[0].key} ({missing[0].method} {missing[0].norm} "
                                 f"{missing[0].place} seed {missing[0].seed}) has no evaluation points to pick from "
                                 "(train with --model.evaluation_points K)")
            best = pick([c for run in finished for c in candidates[run.key]], validator)
            tested = best.run.target_result()
            picked = TestResult(best.accuracy, tested.n if tested else 0)
            chosen.append(dataclasses.replace(best.run, test={best.run.target: picked}))
        elif len(finished) == 1:
            chosen.append(finished[0])
        else:
            chosen.append(max(finished, key=lambda run: (_source_val(run, candidates), run.key)))
    return chosen + others


def _source_val(run: Run, candidates: Mapping[str, Sequence[Candidate]]) -> float:
    last = _last_point(candidates.get(run.key, ()))
    if last is not None and math.isfinite(last.scores.get("source_val", math.nan)):
        return last.scores["source_val"]
    if run.source_val is not None:
        return run.source_val
    raise DabinError(f"run {run.key} ({run.place} seed {run.seed}) has no source validation accuracy to choose "
                     "its hyper-parameters by; give --select VALIDATOR")


@dataclasses.dataclass(frozen=True)
class SelectionReport:
    """What the report's selection section shows.

    Attributes:
        headline: How the headline tables chose their runs and checkpoints, in words.
        tables: Per (method, norm), every rule in every scope.
        correlations: Per validator, its rank correlations with target accuracy.
        with_points: Finished transfer runs with evaluation points.
        without_points: Finished transfer runs without (trained with ``evaluation_points: 0``, or
            no run folder beside ``results.csv``).
        hyper: Whether the sweep has hyper-parameter axes.
    """

    headline: str
    tables: tuple[SelectionTable, ...]
    correlations: tuple[Correlation, ...]
    with_points: int
    without_points: int
    hyper: bool


def headline_rule(validator: str | None, hyper: bool) -> str:
    """The headline's selection rule in words ("" when it is the runs' own: the last checkpoint)."""
    if validator is not None:
        over = "evaluation points and hyper-parameter settings" if hyper else "evaluation points"
        return (f"validator `{validator}`'s pick over {over}, per task and seed (no target labels); a cell's "
                "accuracy is the target test accuracy at the picked point (`--select`)")
    if hyper:
        return ("last checkpoint; of the hyper-parameter settings, per task and seed, the one with the best source "
                "validation accuracy (no target labels; `--select VALIDATOR` picks by another)")
    return ""


def selection_report(sweep: Sweep, candidates: Mapping[str, Sequence[Candidate]],
                     validator: str | None) -> SelectionReport:
    """Everything the selection section shows (the tables are empty when no run has points)."""
    hyper = any(run.hparams for run in sweep.runs)
    finished = [run for run in sweep.runs if run.status == "ok" and run.transfer]
    return SelectionReport(headline=headline_rule(validator, hyper),
                           tables=tuple(selection_tables(candidates, hyper)) if candidates else (),
                           correlations=tuple(validator_correlations(candidates)) if candidates else (),
                           with_points=sum(run.key in candidates for run in finished),
                           without_points=sum(run.key not in candidates for run in finished), hyper=hyper)
