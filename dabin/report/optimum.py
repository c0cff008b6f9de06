"""Where the oracle's best hyper-parameter setting lies on each axis of a sweep, per task.

A selection experiment tells validators apart only if its grid brackets the optimum: when target
accuracy rises along an axis over the whole grid, the best setting sits at the grid's corner and any
validator that rewards "more training" wins. For each (method, norm, task) this module averages
each setting's target test accuracy at its last checkpoint over the seeds (the oracle, target
labels: a description of the grid, never a selection), takes the best setting, and says for each
axis whether its value there is the lowest, highest or an interior value among the settings that
hold every other axis at the best's values (the line through the best along that axis). On a full
grid that line has every value of the axis; on a sparse one (a star around a centre, per-task
values) a value run only elsewhere brackets nothing, so it does not count. *Interior* then means
bracketed: a setting on each side of the best along the axis, both below it (the best is the
maximum). Settings that tie the best's accuracy form a plateau with it: on each axis the plateau's
values on the line must be bracketed, and a line whose every value ties is *flat*; the best named
among tied settings is the one interior on most axes (then the last in text order), and ``tied``
counts the others. It also counts the settings that failed as models:

* **diverged**: in some seed, training stopped on a non-finite loss (the run failed) or every
  validator is undefined at the last point (non-finite outputs);
* **collapsed**: at least :data:`COLLAPSE_SHARE` % of the target predictions fall in one class
  (mean over seeds); a diverged setting whose outputs are still finite usually shows up here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from dabin.record import Run
from dabin.report.pivot import group_by
from dabin.report.selection import Candidate

__all__ = ["COLLAPSE_SHARE", "Optimum", "optimum_csv", "setting_optima"]

#: What a run's failure says when training stopped on a non-finite loss (dabin.modules.base).
_NONFINITE = ("became nan", "became inf", "became -inf")
#: A setting whose mean largest class share (%) of target predictions reaches this counts as collapsed.
COLLAPSE_SHARE = 50.0


@dataclasses.dataclass(frozen=True)
class Optimum:
    """The oracle's best setting of one (method, norm, task) and where it lies on each axis.

    Attributes:
        method: The method.
        norm: The normalization layer.
        task: ``Source→Target``.
        best: Axis key -> value of the best setting.
        accuracy: Its target test accuracy (%), mean over seeds.
        position: Axis key -> ``low``, ``high`` or ``interior`` on the line through the best along
            that axis; ``alone``: the axis is swept but no other value lies on that line; ``flat``:
            every value on it ties the best; ``only``: the sweep has one value of the axis.
        settings: Settings compared.
        tied: Other settings with the best's accuracy (the best is the tied one interior on most axes).
        diverged: Settings that diverged (see the module docstring).
        collapsed: Settings that collapsed.
    """

    method: str
    norm: str
    task: str
    best: Mapping[str, str]
    accuracy: float
    position: Mapping[str, str]
    settings: int
    tied: int
    diverged: int
    collapsed: int

    @property
    def interior(self) -> bool:
        """Whether the best value is bracketed on every swept axis (interior on its line)."""
        return all(p in ("interior", "only") for p in self.position.values())


def _setting(hparams: str) -> dict[str, str]:
    """``model.lr=0.1 model.lambda_max=1.0`` -> ``{"model.lr": "0.1", "model.lambda_max": "1.0"}``."""
    return dict(part.split("=", 1) for part in hparams.split())


def _order(value: str) -> tuple[int, float | str]:
    # Numbers in numeric order, anything else after them in text order.
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def _position(line: Sequence[str], plateau: Sequence[str], values: set[str]) -> str:
    """The best's place on its ``line`` (see the module docstring).

    Args:
        line: The axis's values on the line through the best.
        plateau: Those of them whose settings tie the best (the best's own value among them).
        values: The axis's values anywhere in the sweep.
    """
    if len(values) == 1:
        return "only"  # not a swept axis
    ordered = sorted(set(line), key=_order)
    if len(ordered) == 1:
        return "alone"  # swept, but nothing else on the best's line: not bracketed
    top = sorted(set(plateau), key=_order)
    at_low, at_high = top[0] == ordered[0], top[-1] == ordered[-1]
    return "flat" if at_low and at_high else "low" if at_low else "high" if at_high else "interior"


def _line(settings: Iterable[Mapping[str, str]], best: Mapping[str, str], key: str) -> list[str]:
    """The values of ``key`` among ``settings`` that agree with ``best`` on every other axis."""
    others = {k: v for k, v in best.items() if k != key}
    return [s[key] for s in settings if key in s and all(s.get(k) == v for k, v in others.items())]


def setting_optima(runs: Sequence[Run], candidates: Mapping[str, Sequence[Candidate]]) -> list[Optimum]:
    """Per (method, norm, task) of a sweep with hyper-parameter axes, the oracle's best setting.

    Args:
        runs: The sweep's runs (a failed run counts its setting as diverged when its loss became
            non-finite).
        candidates: From :func:`dabin.report.selection.load_candidates`.

    Returns:
        One optimum per (method, norm, task) with a finished setting, in the order first seen.
    """
    def group(run: Run) -> tuple[str, str, str]:
        return run.method, run.norm, run.task

    def last(run: Run) -> Candidate | None:
        return next((c for c in reversed(candidates.get(run.key, ())) if c.last), None)

    swept = [run for run in runs if run.transfer and run.hparams]
    ended = [(run, point) for run in swept if (point := last(run)) is not None]
    # (method, norm, task) -> setting -> the last checkpoints of its seeds.
    lasts = {key: {setting: [point for _, point in mine]
                   for setting, mine in group_by(items, lambda item: item[0].hparams).items()}
             for key, items in group_by(ended, lambda item: group(item[0])).items()}
    broken = [run for run in swept if last(run) is None and run.status == "failed"
              and any(text in run.reason for text in _NONFINITE)]
    failed = {key: {run.hparams for run in mine} for key, mine in group_by(broken, group).items()}
    optima = []
    for key, settings in lasts.items():
        diverged_runs = failed.get(key, set())
        mean = {h: sum(c.accuracy for c in points) / len(points) for h, points in settings.items()
                if h not in diverged_runs}
        if not mean:
            continue
        peak = max(mean.values())
        # Accuracies are shares of one test set: equal ones differ by float rounding at most.
        top = [h for h in mean if math.isclose(mean[h], peak, rel_tol=0.0, abs_tol=1e-9)]
        parsed = {h: _setting(h) for h in (*settings, *diverged_runs)}
        # Axis key -> its values anywhere in the sweep of this (method, norm, task).
        swept_values: dict[str, set[str]] = {}
        for setting in parsed.values():
            for axis, value in setting.items():
                swept_values.setdefault(axis, set()).add(value)

        def positions(h: str) -> dict[str, str]:
            return {key: _position(_line(parsed.values(), parsed[h], key),
                                   _line((parsed[t] for t in top), parsed[h], key), swept_values[key])
                    for key in parsed[h]}

        # Among tied settings, the one whose lines bracket the most (the others' lines may be unexplored).
        placed = {h: positions(h) for h in top}
        best = max(top, key=lambda h: (sum(p == "interior" for p in placed[h].values()), h))
        position = placed[best]
        diverged = diverged_runs | {h for h, points in settings.items()
                                    if any(all(not math.isfinite(v) for v in c.scores.values()) for c in points)}
        shares = {h: [c.max_class_share for c in points if c.max_class_share is not None]
                  for h, points in settings.items() if h not in diverged}
        collapsed = sum(bool(s) and sum(s) / len(s) >= COLLAPSE_SHARE for s in shares.values())
        method, norm, task = key
        optima.append(Optimum(method=method, norm=norm, task=task, best=parsed[best], accuracy=mean[best],
                              position=position, settings=len(parsed), tied=len(top) - 1,
                              diverged=len(diverged), collapsed=collapsed))
    return optima


def optimum_csv(optima: Sequence[Optimum]) -> str:
    """``setting_optima.csv``: per (method, norm, task), the best setting, its accuracy, its position per axis."""
    keys = list(dict.fromkeys(key for o in optima for key in o.best))
    lines = [",".join(["method", "norm", "task", *keys, *(f"{k} position" for k in keys), "oracle_accuracy",
                       "settings", "tied", "diverged", "collapsed"])]
    for o in optima:
        lines.append(",".join([o.method, o.norm, o.task, *(o.best.get(k, "") for k in keys),
                               *(o.position.get(k, "") for k in keys), f"{o.accuracy:.4f}", str(o.settings),
                               str(o.tied), str(o.diverged), str(o.collapsed)]))
    return "\n".join(lines) + "\n"
