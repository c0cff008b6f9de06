"""Published domain-adaptation results on the standard benchmarks, for the methods dabin has.

Transcribed from the Transfer-Learning-Library (tllib, thuml/Transfer-Learning-Library), which runs
every method with one harness and publishes its own measured accuracy (%) beside the number the
method's paper reported ("Origin"):

- Office-31, VisDA-2017 and DomainNet: ``examples/domain_adaptation/image_classification/README.md``
  at commit c4aa59e (2024-03-23), tables "Office-31 accuracy on ResNet-50", "VisDA-2017 accuracy
  ResNet-101" and "DomainNet accuracy on ResNet-101" (the same numbers as the documentation page
  ``docs/dalib/benchmarks/image_classification.rst`` at commit 40df20b, 2021-10-18).
- Digits: that documentation page at commit 40df20b, table "Digits accuracy"; the backbones are
  those of tllib's scripts at that commit (``source_only.sh``, ``dann.sh``, ...: ``-a lenet`` for
  MNIST↔USPS at 28×28, ``-a dtn`` for SVHN→MNIST at 32×32, ``--scratch``: trained from scratch).

tllib's notes: its "ERM" (earlier "Source Only") is the model trained on the source only; the
adversarial methods (DANN, CDAN, MDD) are the average of three runs on Office-31 and VisDA-2017. Its
CDAN runs without entropy conditioning (``cdan.py``'s ``--entropy`` is off in every script), so it
is dabin's ``cdan``, not ``cdan_e``. VisDA-2017: "Mean" is the accuracy averaged over the 12 classes
(the benchmark's metric), "Avg" the accuracy averaged over the images. DomainNet: tllib publishes 12
of the 30 single-source tasks (clipart, painting, real, sketch), without infograph and quickdraw.

Not found in a source read for this module: numbers for AdaBN, BNM and CDAN+E on these benchmarks
(tllib has no such runs), and a 30-task single-source DomainNet table.
``tests/report/test_published_da.py`` checks every row's average against its tasks.
"""

from __future__ import annotations

import dataclasses

__all__ = ["PUBLISHED", "VISDA_CLASSES", "PublishedTable"]

_README = ("Transfer-Learning-Library, examples/domain_adaptation/image_classification/README.md "
           "(commit c4aa59e)")
_DOCS = "Transfer-Learning-Library, docs/dalib/benchmarks/image_classification.rst (commit 40df20b)"


@dataclasses.dataclass(frozen=True)
class PublishedTable:
    """One benchmark's published table.

    Attributes:
        name: The benchmark as papers name it (``Office-31``).
        domains: Each domain's name (as tllib's lists and folders spell it) -> other spellings a
            sweep may use (the one-letter codes of tllib's command lines, the release's folders).
        backbone: What the numbers ran on.
        source: Where they were read.
        tasks: ``(source, target)`` per column, in the source's order, by the names of ``domains``.
        rows: dabin's method name -> accuracy (%) per task (VisDA-2017: over the images).
        averages: Method -> the table's printed average over its tasks (absent where it prints none).
        papers: Method -> the average the method's paper reported, as tllib's "Origin" column quotes it.
        classes: VisDA-2017: the class names in label order; empty otherwise.
        class_labels: VisDA-2017: the source's abbreviation of each class (``plane``).
        per_class: VisDA-2017: method -> accuracy (%) per class.
        class_means: VisDA-2017: method -> the printed mean over classes ("Mean").
    """

    name: str
    domains: dict[str, tuple[str, ...]]
    backbone: str
    source: str
    tasks: tuple[tuple[str, str], ...]
    rows: dict[str, tuple[float, ...]]
    averages: dict[str, float]
    papers: dict[str, float] = dataclasses.field(default_factory=dict)
    classes: tuple[str, ...] = ()
    class_labels: tuple[str, ...] = ()
    per_class: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    class_means: dict[str, float] = dataclasses.field(default_factory=dict)


#: VisDA-2017's 12 classes in label order (tllib's ``VisDA2017.CLASSES``, the release's folder names).
VISDA_CLASSES: tuple[str, ...] = ("aeroplane", "bicycle", "bus", "car", "horse", "knife", "motorcycle", "person",
                                  "plant", "skateboard", "train", "truck")

_OFFICE31 = PublishedTable(
    name="Office-31",
    domains={"amazon": ("A",), "dslr": ("D",), "webcam": ("W",)},
    backbone="ResNet-50 pretrained on ImageNet",
    source=_README + ", table \"Office-31 accuracy on ResNet-50\"",
    tasks=(("amazon", "webcam"), ("dslr", "webcam"), ("webcam", "dslr"), ("amazon", "dslr"), ("dslr", "amazon"),
           ("webcam", "amazon")),
    rows={
        "source_only": (75.8, 95.5, 99.0, 79.3, 63.6, 63.8),
        "dann": (91.4, 97.9, 100.0, 83.6, 73.3, 70.4),
        "dan": (84.2, 98.4, 100.0, 87.3, 66.9, 65.2),
        "cdan": (93.8, 98.5, 100.0, 89.9, 73.4, 70.4),
        "mdd": (95.6, 98.6, 100.0, 94.4, 76.6, 72.2),
        "mcc": (94.1, 98.4, 99.8, 95.6, 75.5, 74.2),
    },
    averages={"source_only": 79.5, "dann": 86.1, "dan": 83.7, "cdan": 87.7, "mdd": 89.6, "mcc": 89.6},
    papers={"source_only": 76.1, "dann": 82.2, "dan": 80.4, "cdan": 87.7, "mdd": 88.9, "mcc": 89.4},
)

_VISDA = PublishedTable(
    name="VisDA-2017",
    # tllib's task names; the release's folders are train/ (synthetic renderings) and validation/ (real photos).
    domains={"Synthetic": ("train",), "Real": ("validation",)},
    backbone="ResNet-101 pretrained on ImageNet",
    source=_README + ", table \"VisDA-2017 accuracy ResNet-101\"",
    tasks=(("Synthetic", "Real"),),
    rows={"source_only": (56.9,), "dann": (74.9,), "dan": (67.2,), "cdan": (76.5,), "mdd": (79.8,), "mcc": (80.4,)},
    averages={"source_only": 56.9, "dann": 74.9, "dan": 67.2, "cdan": 76.5, "mdd": 79.8, "mcc": 80.4},
    papers={"source_only": 52.4, "dann": 57.4, "dan": 61.1, "mcc": 78.8},
    classes=VISDA_CLASSES,
    class_labels=("plane", "bcycl", "bus", "car", "horse", "knife", "mcycl", "person", "plant", "sktbrd", "train",
                  "truck"),
    per_class={
        "source_only": (63.6, 35.3, 50.6, 78.2, 74.6, 18.7, 82.1, 16.0, 84.2, 35.5, 77.4, 4.7),
        "dann": (93.5, 74.3, 83.4, 50.7, 87.2, 90.2, 89.9, 76.1, 88.1, 91.4, 89.7, 39.8),
        "dan": (89.2, 37.2, 77.7, 61.8, 81.7, 64.3, 90.6, 61.4, 79.9, 37.7, 88.1, 27.4),
        "cdan": (94.0, 69.2, 78.9, 57.0, 89.8, 94.9, 91.9, 80.3, 86.8, 84.9, 85.0, 48.5),
        "mdd": (88.3, 62.8, 85.2, 69.9, 91.9, 95.1, 94.4, 81.2, 93.8, 89.8, 84.1, 47.9),
        "mcc": (95.3, 85.8, 77.1, 68.0, 93.9, 92.9, 84.5, 79.5, 93.6, 93.7, 85.3, 53.8),
    },
    class_means={"source_only": 51.7, "dann": 79.5, "dan": 66.4, "cdan": 80.1, "mdd": 82.0, "mcc": 83.6},
)

_DOMAINNET = PublishedTable(
    name="DomainNet",
    domains={"clipart": ("c",), "infograph": ("i",), "painting": ("p",), "quickdraw": ("q",), "real": ("r",),
             "sketch": ("s",)},
    backbone="ResNet-101 pretrained on ImageNet",
    source=_README + ", table \"DomainNet accuracy on ResNet-101\"",
    tasks=(("clipart", "painting"), ("clipart", "real"), ("clipart", "sketch"), ("painting", "clipart"),
           ("painting", "real"), ("painting", "sketch"), ("real", "clipart"), ("real", "painting"), ("real", "sketch"),
           ("sketch", "clipart"), ("sketch", "painting"), ("sketch", "real")),
    rows={
        "source_only": (32.7, 50.6, 39.4, 41.1, 56.8, 35.0, 48.6, 48.8, 36.1, 49.0, 34.8, 46.1),
        "dan": (38.8, 55.2, 43.9, 45.9, 59.0, 40.8, 50.8, 49.8, 38.9, 56.1, 45.9, 55.5),
        "dann": (37.9, 54.3, 44.4, 41.7, 55.6, 36.8, 50.7, 50.8, 40.1, 55.0, 45.0, 54.5),
        "cdan": (40.4, 56.8, 46.1, 45.1, 58.4, 40.5, 55.6, 53.6, 43.0, 57.2, 46.4, 55.7),
        "mdd": (42.9, 59.5, 47.5, 48.6, 59.4, 42.6, 58.3, 53.7, 46.2, 58.7, 46.5, 57.7),
        "mcc": (37.7, 55.7, 42.6, 45.4, 59.8, 39.9, 54.4, 53.1, 37.0, 58.1, 46.3, 56.2),
    },
    averages={"source_only": 43.3, "dan": 48.4, "dann": 47.2, "cdan": 49.9, "mdd": 51.8, "mcc": 48.9},
)

_DIGITS = PublishedTable(
    name="Digits",
    domains={"MNIST": ("MNISTRGB",), "USPS": (), "SVHN": ("SVHNRGB",)},
    backbone="LeNet for MNIST↔USPS at 28×28, DTN for SVHN→MNIST at 32×32, trained from scratch",
    source=_DOCS + ", table \"Digits accuracy\"",
    tasks=(("SVHN", "MNIST"), ("MNIST", "USPS"), ("USPS", "MNIST")),
    rows={
        "source_only": (74.1, 82.1, 74.6),
        "dann": (90.8, 91.7, 95.2),
        "dan": (82.1, 86.0, 89.5),
        "cdan": (93.8, 96.0, 97.7),
        "mdd": (88.4, 94.8, 97.8),
        "mcc": (76.6, 95.1, 94.6),
    },
    averages={},
)

#: Benchmark key -> its published table (the keys :func:`~dabin.report.benchmarks.identify_benchmark` returns).
PUBLISHED: dict[str, PublishedTable] = {"office31": _OFFICE31, "visda2017": _VISDA, "domainnet": _DOMAINNET,
                                        "digits": _DIGITS}
