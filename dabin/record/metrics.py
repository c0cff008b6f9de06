"""``metrics.json``: what the trainer records of a run, its schema defined once.

The trainer writes a :class:`RunRecord` (:meth:`RunRecord.write`, last and atomically); the sweep
reads it to decide that a run is done; :class:`dabin.record.run.Run` reads it into the run record
that ``results.csv`` and the report are made from. :meth:`RunRecord.read` checks every field it reads
and names the field and the value of the first problem, so a damaged or hand-edited record is one line.
Fields added since the first records (a test result's ``class_accuracy`` and ``per_class``, ...) are
optional: an older record reads with None there, and a record without them is written as before.

``metrics.json``, for a transfer run with evaluation points::

    {"test": {"Clipart": {"accuracy": 63.2, "n": 872, "class_accuracy": 61.9,
                          "per_class": {"classes": ["Alarm_Clock", ...], "accuracy": [80.0, ...],
                                        "n": [40, ...], "correct": [32, ...]}}},
     "average": 63.2, "model_selection": "last checkpoint (no selection on target labels)",
     "method": "dann", "norm": "bin", "domain_stats": "joint", "num_classes": 65,
     "source": "Art", "target": "Clipart", "fold": null, "seed": 0, "steps": 10000, "time_s": 812.4,
     "batch": {"per_device": {"source": 32, "target": 32}, "devices": 1, "accumulate_grad_batches": 1,
               "effective": {"source": 32, "target": 32}, "effective_images": 64},
     "gate_lr": {"mult": 10.0, "of": "group", "initial_lr": [0.01]},
     "source_val": {"accuracy": 71.3, "step": 9990},
     "evaluation_points": [{"step": 2000, "scores": {"source_val": 65.1, "entropy": -1.3, ...},
                            "oracle": {"target_test_accuracy": 58.0},
                            "target_predictions": {"max_class_share": 4.1}}, ...],
     "config": {...}}
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dabin.errors import DabinError
from dabin.io import atomic_write_text
from dabin.record.files import METRICS

__all__ = [
    "LEGACY_MIXVAL",
    "AccuracyPoint",
    "BatchRecord",
    "EvaluationPoint",
    "GateLrRecord",
    "PerClass",
    "RecordError",
    "RunRecord",
    "SourceVal",
    "TestResult",
]


class RecordError(DabinError):
    """A run record that cannot be read: the message names the field and the value."""


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    # bool is an int to Python, never a count or a number in a record.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise RecordError(f"{where}: {key} is {value!r}")
    return value


def _percentage(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"{what} is {value!r} (NaN or missing)")
    if not 0 <= value <= 100:
        raise RecordError(f"{what} is {value!r}, not a percentage")
    return float(value)


def _counts(data: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
    values = data.get(key)
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                               for v in values):
        raise RecordError(f"{where}: {key} is {values!r}, not a list of counts")
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class PerClass:
    """Images and correct top-1 predictions per true class on one evaluated set.

    Classes are in the data module's label order; a class without images in the set (``n`` 0) has
    no accuracy (None, ``null`` in ``metrics.json``) and is left out of :meth:`mean_accuracy`.

    Attributes:
        classes: Class names (the label order of the data module; indices as text when unnamed).
        n: Images of each class in the set.
        correct: Of those, images predicted as their class.
    """

    classes: tuple[str, ...]
    n: tuple[int, ...]
    correct: tuple[int, ...]

    @property
    def accuracy(self) -> tuple[float | None, ...]:
        """Accuracy (%) of each class, ``100 · correct_c / n_c``; None where ``n_c = 0``."""
        return tuple(100.0 * right / count if count else None for right, count in zip(self.correct, self.n))

    def mean_accuracy(self) -> float | None:
        """Mean class accuracy (%): the mean over the classes present in the set of their accuracies.

        .. math:: \\frac{1}{|C^+|} \\sum_{c \\in C^+} 100 \\cdot \\frac{\\mathrm{correct}_c}{n_c},
                  \\quad C^+ = \\{c : n_c > 0\\}

        VisDA-2017's metric (its devkit's "mean accuracy" over the 12 classes, every class present in
        its test set). Classes absent from the set are excluded rather than counted as 0 % or 100 %:
        they say nothing about the set. None when no class is present.
        """
        present = [value for value in self.accuracy if value is not None]
        return math.fsum(present) / len(present) if present else None

    def to_json(self) -> dict[str, Any]:
        """As stored in ``metrics.json``: names, accuracies (for readers; derived), counts."""
        return {"classes": list(self.classes), "accuracy": list(self.accuracy), "n": list(self.n),
                "correct": list(self.correct)}

    @classmethod
    def from_json(cls, name: str, data: Any) -> PerClass:
        """Parse a ``per_class`` entry (``name``, the evaluated set, is for messages); ``accuracy`` is recomputed."""
        where = f"per_class of {name!r}"
        if not isinstance(data, Mapping):
            raise RecordError(f"{where} is {data!r}")
        classes = data.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise RecordError(f"{where}: classes is {classes!r}, not a list of names")
        counts, correct = _counts(data, "n", where), _counts(data, "correct", where)
        if not len(classes) == len(counts) == len(correct):
            raise RecordError(f"{where}: {len(classes)} classes, {len(counts)} counts and {len(correct)} "
                              "correct counts")
        wrong = next((i for i, (right, count) in enumerate(zip(correct, counts)) if right > count), None)
        if wrong is not None:
            raise RecordError(f"{where}: class {classes[wrong]!r} has {correct[wrong]} correct of "
                              f"{counts[wrong]} images")
        return cls(classes=tuple(classes), n=counts, correct=correct)


@dataclasses.dataclass(frozen=True)
class TestResult:
    """Accuracy on one evaluated set.

    Attributes:
        accuracy: Top-1 accuracy (%) over the set's images.
        n: Images evaluated.
        class_accuracy: Mean class accuracy (%), :meth:`PerClass.mean_accuracy` (VisDA-2017's
            metric); None in records written before it was kept, and at evaluation points.
        per_class: Counts per class; None where :attr:`class_accuracy` is.
    """

    accuracy: float
    n: int
    class_accuracy: float | None = None
    per_class: PerClass | None = None

    def to_json(self) -> dict[str, Any]:
        """As stored in ``metrics.json`` (the per-class fields only when known, so older layouts stay as they were)."""
        data: dict[str, Any] = {"accuracy": self.accuracy, "n": self.n}
        if self.class_accuracy is not None:
            data["class_accuracy"] = self.class_accuracy
        if self.per_class is not None:
            data["per_class"] = self.per_class.to_json()
        return data

    @classmethod
    def from_json(cls, name: str, data: Any) -> TestResult:
        """Parse one ``test`` entry (``name`` is for messages)."""
        if not isinstance(data, Mapping):
            raise RecordError(f"test result of {name!r} is {data!r}")
        accuracy = _percentage(data.get("accuracy"), f"accuracy of {name!r}")
        count = data.get("n")
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise RecordError(f"n of {name!r} is {count!r}, not a positive number of test images")
        class_accuracy = data.get("class_accuracy")
        if class_accuracy is not None:
            class_accuracy = _percentage(class_accuracy, f"class_accuracy of {name!r}")
        per_class = data.get("per_class")
        if per_class is not None:
            per_class = PerClass.from_json(name, per_class)
            if sum(per_class.n) != count:
                raise RecordError(f"per_class of {name!r} counts {sum(per_class.n)} images, n is {count}")
        return cls(accuracy=accuracy, n=count, class_accuracy=class_accuracy, per_class=per_class)


@dataclasses.dataclass(frozen=True)
class SourceVal:
    """Accuracy on the source's labelled validation split at the run's last validation.

    Attributes:
        accuracy: Accuracy (%).
        step: Optimizer steps done then.
    """

    accuracy: float
    step: int


@dataclasses.dataclass(frozen=True)
class BatchRecord:
    """The batch one optimizer step saw: per device × devices × accumulation.

    Attributes:
        per_device: Images per kind (``source``, ``target``; ``images`` for mixed runs) per device.
        devices: Processes.
        accumulate_grad_batches: Batches accumulated per step.
        effective: Images per kind per optimizer step.
        effective_images: Their sum.
    """

    per_device: dict[str, int]
    devices: int
    accumulate_grad_batches: int
    effective: dict[str, int]
    effective_images: int

    def text(self) -> str:
        """``32+32 on 1 device`` (effective counts per kind, joined by +)."""
        text = "+".join(str(count) for count in self.effective.values())
        text += f" on {self.devices} device{'s' if self.devices != 1 else ''}"
        return text + (f", {self.accumulate_grad_batches} accumulated" if self.accumulate_grad_batches != 1 else "")


@dataclasses.dataclass(frozen=True)
class GateLrRecord:
    """The BIN gates' learning rate: ``mult`` × the rate of ``of`` (``group`` or ``base``).

    Attributes:
        mult: The multiplier.
        of: What it multiplies.
        initial_lr: The gates' initial rates.
    """

    mult: float
    of: str
    initial_lr: list[float]

    def text(self) -> str:
        """``10× group rate``."""
        return f"{self.mult:g}× {self.of} rate"


@dataclasses.dataclass(frozen=True)
class EvaluationPoint:
    """One evaluation point of a run (:mod:`dabin.selection.probe`).

    Attributes:
        step: Optimizer steps done.
        scores: Validator name -> score (higher is better); computed without target labels.
        oracle_target_test: Target test accuracy (%) at this step. Uses target labels: for
            comparison only, never for selection.
        max_class_share: Percent of the target train images predicted as the most predicted class
            (no labels: a collapsing model shows here); None in records written before it was kept.
    """

    step: int
    scores: dict[str, float]
    oracle_target_test: float
    max_class_share: float | None = None

    def to_json(self) -> dict[str, Any]:
        """As stored in ``metrics.json``: the oracle under its own key."""
        data: dict[str, Any] = {"step": self.step, "scores": self.scores,
                                "oracle": {"target_test_accuracy": self.oracle_target_test}}
        if self.max_class_share is not None:
            data["target_predictions"] = {"max_class_share": self.max_class_share}
        return data

    @classmethod
    def from_json(cls, index: int, data: Any) -> EvaluationPoint:
        """Parse one entry of ``evaluation_points`` (``index`` is for messages)."""
        where = f"evaluation_points[{index}]"
        if not isinstance(data, Mapping):
            raise RecordError(f"{where} is {data!r}")
        step = _field(data, "step", int, where)
        scores = _field(data, "scores", dict, where)
        for name, value in scores.items():
            # A validator may be undefined at a point (NaN, e.g. one class predicted): kept as NaN.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RecordError(f"{where}: score {name} is {value!r}")
        scores = {str(k): float(v) for k, v in scores.items()}
        if "mixval" in scores and "mixval_intra" not in scores:
            # Records before MixVal followed its authors' code kept one averaged score under this
            # name, from another pairing; the report's ``mixval`` is now a rank combination.
            scores[LEGACY_MIXVAL] = scores.pop("mixval")
        oracle = _field(data, "oracle", dict, where)
        accuracy = _percentage(oracle.get("target_test_accuracy"), f"{where}: oracle target_test_accuracy")
        predictions = _field(data, "target_predictions", dict, where, optional=True)
        share = None if predictions is None else _percentage(predictions.get("max_class_share"),
                                                             f"{where}: target_predictions max_class_share")
        return cls(step=step, scores=scores, oracle_target_test=accuracy, max_class_share=share)


@dataclasses.dataclass(frozen=True)
class AccuracyPoint:
    """A domain-generalization run's accuracy on every evaluated set at one step.

    DomainBed's model-selection rules choose a step as well as a setting, so a DG run keeps these
    (:class:`~dabin.modules.generalization.GeneralizationModule`); set names as the data module's
    ``val_names`` (``<domain>/out``, ``<domain>/in``).

    Attributes:
        step: Optimizer steps done.
        accuracy: Evaluated set -> accuracy and images.
    """

    step: int
    accuracy: dict[str, TestResult]

    def to_json(self) -> dict[str, Any]:
        """As stored in ``metrics.json``."""
        return {"step": self.step, "accuracy": {name: r.to_json() for name, r in self.accuracy.items()}}

    @classmethod
    def from_json(cls, index: int, data: Any) -> AccuracyPoint:
        """Parse one entry of ``accuracy_points`` (``index`` is for messages)."""
        where = f"accuracy_points[{index}]"
        if not isinstance(data, Mapping):
            raise RecordError(f"{where} is {data!r}")
        step = _field(data, "step", int, where)
        accuracy = _field(data, "accuracy", dict, where)
        return cls(step=step, accuracy={str(name): TestResult.from_json(f"{where} {name}", entry)
                                        for name, entry in accuracy.items()})


#: The name a record's old, averaged MixVal score is read under (see :meth:`EvaluationPoint.from_json`).
LEGACY_MIXVAL = "mixval_mean_v1"


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run's record (``metrics.json``): its result, its identity, how it ran, its evaluation points.

    Attributes:
        test: Evaluated set -> result: a transfer run's target (its test split) first, a mixed run's
            domains (its held-out fold); with ``test_all_splits``, ``<domain>/<split>`` entries too.
        average: Mean accuracy over ``test`` (%).
        model_selection: The rule that chose the tested weights.
        method: The method's name (``dann``, ``source_only``, ``mixed``, ...).
        norm: Normalization layer.
        domain_stats: How the domains shared normalization statistics (transfer runs).
        num_classes: Classes.
        source: Source domain (transfer runs).
        target: Target domain (transfer runs).
        fold: Held-out fold (mixed runs).
        seed: The run's seed.
        steps: Optimizer steps done.
        time_s: Seconds spent in fitting (the evaluation points included).
        evaluation_s: Of those, seconds spent scoring the evaluation points (transfer runs).
        test_s: Seconds spent testing after the fit.
        batch: The batch one optimizer step saw.
        gate_lr: The BIN gates' learning rate (models with gates).
        source_val: Source validation accuracy at the last validation (transfer runs).
        evaluation_points: Validator scores and the oracle during training, by step.
        accuracy_points: A domain-generalization run's accuracy on every evaluated set, by step.
        config: The run's configuration as the CLI parsed it.
    """

    test: dict[str, TestResult]
    average: float
    method: str
    model_selection: str = ""
    norm: str | None = None
    domain_stats: str | None = None
    num_classes: int | None = None
    source: str | None = None
    target: str | None = None
    fold: int | None = None
    seed: int | None = None
    steps: int | None = None
    time_s: float | None = None
    evaluation_s: float | None = None
    test_s: float | None = None
    batch: BatchRecord | None = None
    gate_lr: GateLrRecord | None = None
    source_val: SourceVal | None = None
    evaluation_points: tuple[EvaluationPoint, ...] = ()
    accuracy_points: tuple[AccuracyPoint, ...] = ()
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def target_result(self) -> TestResult | None:
        """A transfer run's result on its target's test split (None for mixed runs)."""
        return self.test.get(self.target) if self.target is not None else None

    def to_json(self) -> dict[str, Any]:
        """As written to ``metrics.json``."""
        data = dataclasses.asdict(self)
        data["test"] = {name: result.to_json() for name, result in self.test.items()}
        data["evaluation_points"] = [point.to_json() for point in self.evaluation_points]
        if self.accuracy_points:
            data["accuracy_points"] = [point.to_json() for point in self.accuracy_points]
        else:  # records of the other kinds stay as they were written
            del data["accuracy_points"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """Parse and check a record.

        Raises:
            RecordError: A missing or malformed field; the message names it and its value.
        """
        if not isinstance(data, Mapping):
            raise RecordError(f"a run record is a JSON object, got {type(data).__name__}")
        test = data.get("test")
        if not isinstance(test, Mapping) or not test:
            raise RecordError("no test results")
        results = {str(name): TestResult.from_json(str(name), entry) for name, entry in test.items()}
        average = data.get("average")
        if isinstance(average, bool) or not isinstance(average, (int, float)):
            average = sum(r.accuracy for r in results.values()) / len(results)
        where = "record"
        batch = _field(data, "batch", dict, where, optional=True)
        gate_lr = _field(data, "gate_lr", dict, where, optional=True)
        source_val = _field(data, "source_val", dict, where, optional=True)
        points = _field(data, "evaluation_points", list, where, optional=True) or []
        accuracy_points = _field(data, "accuracy_points", list, where, optional=True) or []
        try:
            return cls(
                test=results, average=float(average), method=str(_field(data, "method", str, where)),
                model_selection=str(data.get("model_selection") or ""),
                norm=_field(data, "norm", str, where, optional=True),
                domain_stats=_field(data, "domain_stats", str, where, optional=True),
                num_classes=_field(data, "num_classes", int, where, optional=True),
                source=_field(data, "source", str, where, optional=True),
                target=_field(data, "target", str, where, optional=True),
                fold=_field(data, "fold", int, where, optional=True),
                seed=_field(data, "seed", int, where, optional=True),
                steps=_field(data, "steps", int, where, optional=True),
                time_s=_field(data, "time_s", (int, float), where, optional=True),
                evaluation_s=_field(data, "evaluation_s", (int, float), where, optional=True),
                test_s=_field(data, "test_s", (int, float), where, optional=True),
                batch=BatchRecord(**batch) if batch is not None else None,
                gate_lr=GateLrRecord(**gate_lr) if gate_lr is not None else None,
                source_val=SourceVal(accuracy=float(source_val["accuracy"]), step=int(source_val["step"]))
                if source_val is not None else None,
                evaluation_points=tuple(EvaluationPoint.from_json(i, p) for i, p in enumerate(points)),
                accuracy_points=tuple(AccuracyPoint.from_json(i, p) for i, p in enumerate(accuracy_points)),
                config=dict(data.get("config") or {}),
            )
        except RecordError:
            raise
        except (TypeError, KeyError, ValueError) as error:
            raise RecordError(f"a field has the wrong shape ({error})") from None

    def write(self, folder: Path) -> Path:
        """Write ``metrics.json`` into ``folder`` atomically (a reader sees all of it or nothing)."""
        path = Path(folder) / METRICS
        atomic_write_text(path, json.dumps(self.to_json(), indent=1, default=str) + "\n")
        return path

    @classmethod
    def read(cls, folder: Path) -> RunRecord:
        """Read a run folder's ``metrics.json``.

        Raises:
            RecordError: No file, not JSON, or a field :meth:`from_json` refuses; the message
                starts with ``metrics.json`` and names the problem.
        """
        path = Path(folder) / METRICS
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise RecordError(f"{METRICS} not found") from None
        except OSError as error:
            raise RecordError(f"{METRICS} unreadable ({error})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecordError(f"{METRICS} is not valid JSON ({error})") from None
        try:
            return cls.from_json(data)
        except RecordError as error:
            raise RecordError(f"{METRICS}: {error}") from None
