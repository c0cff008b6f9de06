"""Student-t intervals: the quantile against tables, the interval against a hand computation."""

from __future__ import annotations

import math

import pytest

from dabin import DabinError
from dabin.report.stats import mean_ci, t_cdf, t_quantile


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157),
                                              (30, 2.042272)])
def test_t_quantile_matches_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-12)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-6)


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
