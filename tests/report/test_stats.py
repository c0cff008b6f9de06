"""Student-t intervals: the quantile against tables, the interval against a hand computation."""

from __future__ import annotations

import math

import pytest

from dabin import DabinError
from dabin.report.stats import mean_ci


@pytest.mark.parametrize(("values", "quantile"), [([1.0, 3.0], 12.706205), ([1.0, 2.0, 6.0], 4.302653),
                                                  ([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0], 2.262157)])
def test_quantile_matches_printed_tables(values, quantile):
    # t(0.975, n-1) from a printed table, times s / sqrt(n) computed here by hand.
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    assert mean_ci(values).half_width == pytest.approx(quantile * s / math.sqrt(n), rel=1e-6)
    wider = mean_ci(values, confidence=0.99).half_width
    assert wider is not None and wider > quantile * s / math.sqrt(n)
    with pytest.raises(DabinError, match="confidence must be in"):
        mean_ci(values, confidence=95)


def test_interval_by_hand():
    # Five seeds 50..58: mean 54, s = sqrt(40 / 4) = sqrt(10); half-width = t(0.975, 4) * s / sqrt(5).
    result = mean_ci([50.0, 52.0, 54.0, 56.0, 58.0])
    assert result.mean == 54.0 and result.n == 5
    assert result.half_width == pytest.approx(2.776445 * math.sqrt(10) / math.sqrt(5), abs=1e-5)
    assert result.half_width == pytest.approx(3.926486, abs=1e-5)
    assert result.format() == "54.00 ± 3.93"


def test_single_and_no_value():
    one = mean_ci([61.5])
    assert (one.mean, one.half_width, one.n) == (61.5, None, 1)
    assert one.format() == "61.50"
    assert mean_ci([7.0, 7.0, 7.0]).half_width == 0.0
    with pytest.raises(DabinError, match="no values"):
        mean_ci([])


def test_norm_labels_are_the_names_the_literature_uses() -> None:
    from dabin.nn.convert import NORMS
    from dabin.report.markdown import norm_label

    assert [norm_label(n) for n in ("bn", "bin", "ibn_a", "ibn_b", "switchable", "transnorm", "mixstyle")] == \
        ["BN", "BIN", "IBN-a", "IBN-b", "Switchable Norm", "TransNorm", "MixStyle"]
    assert len({norm_label(n) for n in NORMS}) == len(NORMS)  # no two norms print alike
