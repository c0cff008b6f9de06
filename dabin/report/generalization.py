"""DomainBed's three model-selection rules for domain generalization, over recorded checkpoints.

Defined as DomainBed defines them (facebookresearch/DomainBed, ``domainbed/model_selection.py``):
for one (method, norm, test domain, seed) group, each candidate is a hyper-parameter setting's run
and one of its checkpoints (evaluation points); a rule scores each candidate on data it may look at
and reports the test accuracy of the best one.

- **training-domain validation** (``IIDAccuracySelectionMethod``, the default): a checkpoint's
  score is the mean accuracy over the training domains' held-out 20 % (``<d>/out``); the best
  checkpoint of every run, then the best run.
- **leave-one-domain-out cross-validation** (``LeaveOneOutSelectionMethod``): for a setting and a
  step, the mean over the training domains ``V`` of the accuracy on ``V``'s 80 % part (``<V>/in``)
  of the run that also left ``V`` out, divided by the number of training domains; a setting counts
  only if every such run reached that step.
- **test-domain validation (oracle)** (``OracleSelectionMethod``): the last checkpoint of every run,
  scored by the test domain's 20 % (``<t>/out``): uses test labels, never the headline.

DomainBed reports the test domain's 80 % part (``<t>/in``) under all three. dabin reports every
image of the test domain (``<t>/in`` and ``<t>/out`` weighted by their sizes) under the two rules
that never look at it, and the 80 % part under the oracle, whose selection set is the other 20 %
(:data:`REPORTED`); ``test_part="in"`` gives DomainBed's numbers exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = ["RULES", "RULE_TITLES", "Checkpoint", "Choice", "DGRun", "Rule", "TestPart", "select"]

#: A model-selection rule.
Rule = Literal["training_domain", "leave_one_domain_out", "oracle"]
#: The rules, the headline first.
RULES: tuple[Rule, ...] = ("training_domain", "leave_one_domain_out", "oracle")
#: How tables name them (DomainBed's names).
RULE_TITLES: dict[Rule, str] = {
    "training_domain": "training-domain validation",
    "leave_one_domain_out": "leave-one-domain-out cross-validation",
    "oracle": "test-domain validation (oracle)",
}
#: What is reported of the test domain: ``all`` of its images, or its 80 % part (``in``).
TestPart = Literal["all", "in"]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One evaluation point of a run.

    Attributes:
        step: Optimizer steps done.
        accuracy: ``"<domain>/in"`` or ``"<domain>/out"`` -> accuracy (%).
        counts: Images of the same sets (needed to report every image of the test domain).
    """

    step: int
    accuracy: Mapping[str, float]
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def test_accuracy(self, domain: str, part: TestPart) -> float:
        """Accuracy on the test domain's 80 % part, or on all of it (the parts weighted by size)."""
        inside = self.accuracy[f"{domain}/in"]
        if part == "in":
            return inside
        n_in, n_out = self.counts[f"{domain}/in"], self.counts[f"{domain}/out"]
        return (inside * n_in + self.accuracy[f"{domain}/out"] * n_out) / (n_in + n_out)


@dataclasses.dataclass(frozen=True)
class DGRun:
    """One run, as the rules see it.

    Attributes:
        setting: Its hyper-parameter setting (runs of one setting share it).
        held_out: Domains it did not train on: the test domain, and a leave-one-domain-out run's
            validation domain.
        train_domains: Domains it trained on.
        points: Its checkpoints.
    """

    setting: str
    held_out: frozenset[str]
    train_domains: tuple[str, ...]
    points: tuple[Checkpoint, ...]


@dataclasses.dataclass(frozen=True)
class Choice:
    """What a rule chose.

    Attributes:
        val: The chosen candidate's score.
        test: Its test accuracy (%).
        setting: Its setting.
        step: Its step.
    """

    val: float
    test: float
    setting: str
    step: int


def _best(candidates: Sequence[Choice]) -> Choice | None:
    # max() keeps the first of equal scores, as DomainBed's Q.argmax does within a run.
    return max(candidates, key=lambda c: c.val) if candidates else None


def _training_domain(run: DGRun, test: str, part: TestPart) -> Choice | None:
    scores = [Choice(sum(p.accuracy[f"{d}/out"] for d in run.train_domains) / len(run.train_domains),
                     p.test_accuracy(test, part), run.setting, p.step) for p in run.points]
    return _best(scores)


def _oracle(run: DGRun, test: str) -> Choice | None:
    if not run.points:
        return None
    last = max(run.points, key=lambda p: p.step)
    return Choice(last.accuracy[f"{test}/out"], last.accuracy[f"{test}/in"], run.setting, last.step)


def _leave_one_out(full: DGRun, validation: Sequence[DGRun], test: str, part: TestPart) -> Choice | None:
    by_domain = {next(iter(run.held_out - {test})): run for run in validation}
    candidates = []
    for point in full.points:
        accuracies = []
        for domain in full.train_domains:
            run = by_domain.get(domain)
            match = None if run is None else next((p for p in run.points if p.step == point.step), None)
            if match is None:
                break  # DomainBed: a training domain without its validation run at this step
            accuracies.append(match.accuracy[f"{domain}/in"])
        else:
            candidates.append(Choice(sum(accuracies) / len(full.train_domains), point.test_accuracy(test, part),
                                     full.setting, point.step))
    return _best(candidates)


def select(runs: Sequence[DGRun], test: str, rule: Rule, part: TestPart = "all") -> Choice | None:
    """The candidate a rule chooses among the runs of one group, and its test accuracy.

    Args:
        runs: The group's runs (every setting), those that held out ``test`` (alone, or with one
            validation domain for leave-one-domain-out).
        test: The test domain.
        rule: The rule.
        part: What training-domain and leave-one-domain-out validation report of the test domain
            (``all`` its images, or DomainBed's ``in``); the oracle always reports ``in``.

    Returns:
        The choice, or None when no setting has what the rule needs.
    """
    full = [run for run in runs if run.held_out == {test}]
    per_setting = []
    for run in full:
        if rule == "training_domain":
            choice = _training_domain(run, test, part)
        elif rule == "oracle":
            choice = _oracle(run, test)
        else:
            validation = [r for r in runs if r.setting == run.setting and len(r.held_out) == 2 and test in r.held_out]
            choice = _leave_one_out(run, validation, test, part)
        if choice is not None:
            per_setting.append(choice)
    # DomainBed sorts the settings by score, highest first, and takes the first.
    return _best(per_setting)
