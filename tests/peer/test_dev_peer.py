"""DEV's risk against the authors' ``get_dev_risk`` and ``get_weight``, transcribed here in float64.

Reference: K. You, X. Wang, M. Long, M. I. Jordan, "Towards Accurate Model Selection in Deep
Unsupervised Domain Adaptation", ICML 2019, Algorithm 1: weighted loss ``L = {w_j ℓ_j}``,
``η = −Cov(L, W) / Var(W)``, ``R_DEV = mean(L) + η mean(W) − η``.

Implementations transcribed:

* the authors' code, ``thuml/Deep-Embedded-Validation``, ``dev.py``, function ``get_dev_risk``::

      weighted_error = weight * error
      cov = np.cov(np.concatenate((weighted_error, weight), axis=1), rowvar=False)[0][1]
      var_w = np.var(weight, ddof=1)
      eta = - cov / var_w
      return np.mean(weighted_error) + eta * np.mean(weight) - eta

  and the last line of ``get_weight`` (labels: 1 = source, 0 = target)::

      return domain_out[:,:1] / domain_out[:,1:] * N_s * 1.0 / N_t

* pytorch-adapt (K. Musgrave) ``src/pytorch_adapt/validators/deep_embedded_validator.py``,
  ``get_dev_risk``: the same lines, after ``normalize_weights`` (identity for its default
  ``normalization=None``); up to v0.0.61 it had ``eta = -cov / (var_w + 1e-6)``.

dabin's ``_dev_risk`` adds ``_DEV_VAR_EPS`` to ``Var(w)``; with it set to 0 it must be the
authors' function, and with it, the older pytorch-adapt one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dabin.selection import validators
from dabin.selection.validators import ValidationInputs, _dev_risk, dev


def _authors_get_dev_risk(weight: np.ndarray, error: np.ndarray, var_eps: float = 0.0) -> float:
    """thuml/Deep-Embedded-Validation, dev.py, ``get_dev_risk`` (``var_eps``: pytorch-adapt ≤ v0.0.61's 1e-6)."""
    N, d = weight.shape
    _N, _d = error.shape
    assert N == _N and d == _d, "dimension mismatch!"
    weighted_error = weight * error
    cov = np.cov(np.concatenate((weighted_error, weight), axis=1), rowvar=False)[0][1]
    var_w = np.var(weight, ddof=1)
    eta = -cov / (var_w + var_eps)
    return float(np.mean(weighted_error) + eta * np.mean(weight) - eta)


def _random_case(seed: int, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Density-ratio-like weights (log-normal, mean near 1) and per-sample losses."""
    rng = np.random.default_rng(seed)
    weights = np.exp(rng.normal(-0.5 * 0.8**2, 0.8, size=n))
    losses = rng.exponential(1.0, size=n) if kind == "cross_entropy" else (rng.random(n) < 0.3).astype(np.float64)
    # Correlate the loss with the weight, so that η is far from 0 and the control variate matters.
    losses = losses * (0.5 + weights)
    return weights, losses


CASES = [(seed, n, kind) for seed in range(3) for n in (20, 500) for kind in ("cross_entropy", "zero_one")]


@pytest.mark.parametrize(("seed", "n", "kind"), CASES)
def test_without_the_epsilon_it_is_the_authors_get_dev_risk(seed: int, n: int, kind: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    weights, losses = _random_case(seed, n, kind)
    monkeypatch.setattr(validators, "_DEV_VAR_EPS", 0.0)
    assert _dev_risk(weights, losses) == pytest.approx(_authors_get_dev_risk(weights[:, None], losses[:, None]),
                                                       rel=1e-12)


@pytest.mark.parametrize(("seed", "n", "kind"), CASES)
def test_with_the_epsilon_it_is_older_pytorch_adapt_and_within_its_bound_of_the_authors(seed: int, n: int,
                                                                                        kind: str) -> None:
    weights, losses = _random_case(seed, n, kind)
    ours = _dev_risk(weights, losses)
    assert ours == pytest.approx(_authors_get_dev_risk(weights[:, None], losses[:, None], var_eps=1e-6), rel=1e-12)
    # η shrinks by Var(w) / (Var(w) + ε), so the risks differ by |η| |w̄ − 1| ε / (Var(w) + ε) exactly.
    authors = _authors_get_dev_risk(weights[:, None], losses[:, None])
    var_w = np.var(weights, ddof=1)
    eta = -np.cov(weights * losses, weights)[0, 1] / var_w
    gap = abs(eta * (weights.mean() - 1.0)) * 1e-6 / (var_w + 1e-6)
    assert abs(ours - authors) == pytest.approx(gap, rel=1e-6, abs=1e-15)
    assert validators._DEV_VAR_EPS == 1e-6


def test_constant_weights_the_authors_give_nan_dabin_the_weighted_mean() -> None:
    weights, losses = np.full(10, 1.0), np.linspace(0.0, 2.0, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's 0 / 0
        assert math.isnan(_authors_get_dev_risk(weights[:, None], losses[:, None]))
    assert _dev_risk(weights, losses) == pytest.approx(losses.mean(), rel=1e-12)


def test_dev_weights_are_the_authors_ratio_of_the_domain_probabilities() -> None:
    # dev() computes log w from the logistic regression's decision function; the same cross-fitted
    # classifiers' predict_proba, put through get_weight's last line, must give the same score.
    g = torch.Generator().manual_seed(0)
    n_s, n_t, d = 60, 90, 3
    source_features = torch.randn(n_s, d, generator=g, dtype=torch.float64)
    target_features = torch.randn(n_t, d, generator=g, dtype=torch.float64) + 0.7
    logits = 2.0 * torch.randn(n_s, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (n_s,), generator=g)
    inputs = ValidationInputs(source_logits=logits, source_labels=labels, source_features=source_features,
                              target_logits=torch.randn(n_t, 4, generator=g, dtype=torch.float64),
                              target_features=target_features)

    features = torch.cat([source_features, target_features]).numpy()
    domain = np.concatenate([np.ones(n_s, dtype=np.int64), np.zeros(n_t, dtype=np.int64)])  # 1 = source, the authors'
    weights = np.empty((n_s, 1))
    for train, held_out in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(features, domain):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(features[train],
                                                                                                  domain[train])
        rows = held_out[held_out < n_s]
        domain_out = classifier.predict_proba(features[rows])  # columns: classes_ = [0 (target), 1 (source)]
        fold_n_s, fold_n_t = domain[train].sum(), len(train) - domain[train].sum()
        weights[rows] = domain_out[:, :1] / domain_out[:, 1:] * fold_n_s * 1.0 / fold_n_t
    error = F.cross_entropy(logits, labels, reduction="none").numpy()[:, None]
    expected = -_authors_get_dev_risk(weights, error, var_eps=1e-6)
    assert dev(inputs) == pytest.approx(expected, rel=1e-9)
