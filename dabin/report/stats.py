"""Means with Student-t confidence intervals, without SciPy.

With n runs (seeds or folds) of sample mean m and sample standard deviation s, the 95% interval
is ``m ± t_{0.975, n-1} · s / √n``. The t quantile comes from the t distribution's CDF, written
with the regularized incomplete beta function (Numerical Recipes §6.4), inverted by bisection.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from dabin.errors import DabinError

__all__ = ["MeanCI", "mean_ci", "t_cdf", "t_quantile"]


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # Modified Lentz evaluation of the continued fraction of I_x(a, b); converges for x < (a+1)/(a+b+2).
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def _regularized_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    # The symmetry I_x(a, b) = 1 - I_{1-x}(b, a) keeps the fraction in its fast-converging range.
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise DabinError(f"degrees of freedom must be positive, got {df}")
    tail = 0.5 * _regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution: the t with ``t_cdf(t, df) == p``.

    Args:
        p: Probability in (0, 1), e.g. 0.975 for a two-sided 95% interval.
        df: Degrees of freedom (n - 1).

    Returns:
        The quantile, accurate to about 1e-10 (``t_quantile(0.975, 4)`` = 2.7764...).
    """
    if not 0.0 < p < 1.0:
        raise DabinError(f"probability must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


@dataclasses.dataclass(frozen=True)
class MeanCI:
    """A mean with the half-width of its confidence interval.

    Attributes:
        mean: Sample mean.
        half_width: ``t · s / √n``; None with a single value (no interval from one run).
        n: Number of values.
    """

    mean: float
    half_width: float | None
    n: int

    def format(self, digits: int = 2) -> str:
        """``52.21 ± 1.30`` (or just the mean for a single run)."""
        if self.half_width is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and two-sided Student-t confidence interval of independent runs.

    Args:
        values: One value per run (seed or fold).
        confidence: Coverage of the interval.

    Returns:
        The mean, the interval's half-width (None for one value) and n.

    Raises:
        DabinError: No values.
    """
    n = len(values)
    if n == 0:
        raise DabinError("no values to average")
    mean = math.fsum(values) / n
    if n == 1:
        return MeanCI(mean, None, 1)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return MeanCI(mean, t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n), n)
