"""The DANN and step-decay schedules at known points."""

from __future__ import annotations

import math

import pytest

from dabin.modules import dann_lambda, dann_lr_factor, progress, step_decay_factor


@pytest.mark.parametrize(("p", "lr", "lam"), [
    (0.0, 1.0, 0.0),
    (0.5, 6.0 ** -0.75, 2.0 / (1.0 + math.exp(-5.0)) - 1.0),
    (1.0, 11.0 ** -0.75, 2.0 / (1.0 + math.exp(-10.0)) - 1.0),
])
def test_dann_schedules(p: float, lr: float, lam: float) -> None:
    assert dann_lr_factor(p) == pytest.approx(lr, rel=1e-12)
    assert dann_lambda(p) == pytest.approx(lam, rel=1e-12)


def test_dann_schedule_values_by_hand() -> None:
    assert 0.01 * dann_lr_factor(0.5) == pytest.approx(0.0026084, abs=1e-7)
    assert dann_lambda(0.5) == pytest.approx(0.986614, abs=1e-6)
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)


def test_progress_is_clipped_and_safe() -> None:
    assert progress(5, 10) == 0.5
    assert progress(20, 10) == 1.0
    assert progress(3, 0) == 0.0


def test_step_decay_follows_the_imagenet_policy() -> None:
    assert [step_decay_factor(e, (30, 60)) for e in (0, 29, 30, 59, 60, 89)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
