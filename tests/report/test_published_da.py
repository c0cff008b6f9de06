"""The published transfer numbers (tllib's benchmark tables) are transcribed as printed."""

from __future__ import annotations

import math

import pytest

from dabin.methods.names import TRANSFER_METHODS
from dabin.report.published_da import PUBLISHED, VISDA_CLASSES

#: tllib prints one decimal: a mean of printed values may differ from its printed average by the
#: rounding of the values (≤ 0.05) plus that of the average (≤ 0.05).
ROUNDING = 0.1 + 1e-9


@pytest.mark.parametrize("benchmark", sorted(PUBLISHED))
def test_rows_have_a_value_per_task_and_averages_match_their_tasks(benchmark: str) -> None:
    table = PUBLISHED[benchmark]
    assert set(table.rows) <= set(TRANSFER_METHODS)  # dabin's names: tllib's ERM is source_only
    assert all(len(values) == len(table.tasks) for values in table.rows.values())
    assert all(0 <= value <= 100 for values in table.rows.values() for value in values)
    assert {d for task in table.tasks for d in task} <= set(table.domains)
    for method, printed in table.averages.items():
        assert abs(math.fsum(table.rows[method]) / len(table.tasks) - printed) <= ROUNDING, method
    for method, values in table.per_class.items():
        assert len(values) == len(table.classes) == len(table.class_labels)
        assert abs(math.fsum(values) / len(values) - table.class_means[method]) <= ROUNDING, method


def test_spot_values_as_printed() -> None:
    office, visda, domainnet, digits = (PUBLISHED[k] for k in ("office31", "visda2017", "domainnet", "digits"))
    # Office-31, ResNet-50: DANN A→W 91.4 and W→A 70.4, MCC A→D 95.6; ERM's average 79.5.
    assert office.rows["dann"][office.tasks.index(("amazon", "webcam"))] == 91.4
    assert office.rows["dann"][office.tasks.index(("webcam", "amazon"))] == 70.4
    assert office.rows["mcc"][office.tasks.index(("amazon", "dslr"))] == 95.6
    assert office.averages["source_only"] == 79.5 and office.papers["mdd"] == 88.9
    # VisDA-2017, ResNet-101: the truck class is the hard one; Mean is over classes, Avg over images.
    assert visda.classes == VISDA_CLASSES and visda.per_class["source_only"][-1] == 4.7
    assert visda.class_means["mcc"] == 83.6 and visda.averages["mcc"] == 80.4
    assert visda.per_class["dann"][VISDA_CLASSES.index("car")] == 50.7
    # DomainNet, ResNet-101: MDD r→c 58.3, ERM s→r 46.1; 12 of the 30 tasks, none into infograph or quickdraw.
    assert domainnet.rows["mdd"][domainnet.tasks.index(("real", "clipart"))] == 58.3
    assert domainnet.rows["source_only"][domainnet.tasks.index(("sketch", "real"))] == 46.1
    assert len(domainnet.tasks) == 12 and not {"infograph", "quickdraw"} & {d for t in domainnet.tasks for d in t}
    # Digits: CDAN SVHN→MNIST 93.8, MCC's 76.6; no printed average.
    assert digits.rows["cdan"][digits.tasks.index(("SVHN", "MNIST"))] == 93.8
    assert digits.rows["mcc"][0] == 76.6 and digits.averages == {}


def test_every_table_names_its_backbone_and_source() -> None:
    for table in PUBLISHED.values():
        assert "Transfer-Learning-Library" in table.source and "commit" in table.source
        assert any(name in table.backbone for name in ("ResNet-50", "ResNet-101", "LeNet"))
    assert "ResNet-50" in PUBLISHED["office31"].backbone and "ResNet-101" in PUBLISHED["visda2017"].backbone
