"""The unsupervised validators against hand computations on tiny tensors, and their sanity properties."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.errors import DabinError
from dabin.selection import (
    VALIDATOR_NAMES,
    VALIDATORS,
    UndefinedScore,
    ValidationInputs,
    bnm,
    class_ami,
    dev,
    entropy,
    im,
    mixval_inter,
    score_all,
    snd,
    source_val,
)
from dabin.selection.validators import _dev_risk

LOG3 = math.log(3.0)


def _inputs(target_logits: list[list[float]] | Tensor | None = None, *, source_logits: Tensor | None = None,
            source_labels: Tensor | None = None, source_features: Tensor | None = None,
            target_features: Tensor | None = None, **extra: object) -> ValidationInputs:
    """Inputs with placeholders for what a test does not look at."""
    t_logits = torch.as_tensor(target_logits if target_logits is not None else [[0.0, 1.0], [1.0, 0.0]],
                               dtype=torch.float32)
    n_t, c = t_logits.shape
    s_logits = source_logits if source_logits is not None else torch.zeros(3, c)
    n_s = s_logits.shape[0]
    d = target_features.shape[1] if target_features is not None else 2
    return ValidationInputs(
        source_logits=s_logits,
        source_labels=source_labels if source_labels is not None else torch.arange(n_s) % c,
        source_features=source_features if source_features is not None else torch.zeros(n_s, d),
        target_logits=t_logits,
        target_features=target_features if target_features is not None else torch.zeros(n_t, 2),
        **extra,  # type: ignore[arg-type]
    )


def _h(*p: float) -> float:
    """Entropy (nats) of a probability vector, written out."""
    return -sum(x * math.log(x) for x in p if x > 0)


# --- registry and inputs -------------------------------------------------------------------------


def test_registry_names_and_order() -> None:
    assert VALIDATOR_NAMES == ("source_val", "entropy", "im", "snd", "bnm", "dev", "class_ami", "mixval_intra",
                               "mixval_inter")
    assert tuple(VALIDATORS) == VALIDATOR_NAMES
    assert VALIDATORS["mixval_inter"] is mixval_inter and VALIDATORS["dev"] is dev


def test_inputs_have_no_target_labels() -> None:
    names = {f.name for f in dataclasses.fields(ValidationInputs)}
    assert names == {"source_logits", "source_labels", "source_features", "target_logits", "target_features",
                     "target_images", "classify"}
    assert not any("target" in name and "label" in name for name in names)
    # Every validator takes only the inputs positionally: nothing else can hand it target labels.
    for function in VALIDATORS.values():
        parameters = list(inspect.signature(function).parameters.values())
        assert parameters[0].name == "inputs"
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
                   for p in parameters[1:])


def test_inputs_are_frozen() -> None:
    inputs = _inputs()
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.target_logits = torch.zeros(2, 2)  # type: ignore[misc]


def _good() -> dict[str, object]:
    return dict(source_logits=torch.zeros(4, 3), source_labels=torch.tensor([0, 1, 2, 0]),
                source_features=torch.zeros(4, 5), target_logits=torch.zeros(6, 3), target_features=torch.zeros(6, 5))


@pytest.mark.parametrize(("change", "needle"), [
    ({"source_labels": torch.zeros(4, 1, dtype=torch.int64)}, "source_labels must have shape (N_s,)"),
    ({"source_labels": torch.zeros(4)}, "source_labels must be int64"),
    ({"source_labels": torch.tensor([0, 1, 3, 0])}, "source_labels must lie in [0, 3), got values in [0, 3]"),
    ({"source_labels": torch.tensor([0, 1, 2])}, "source_labels has size 3 in dim 0, expected 4"),
    ({"target_logits": torch.zeros(6, 4)}, "target_logits has size 4 in dim 1, expected 3"),
    ({"target_features": torch.zeros(6, 7)}, "target_features has size 7 in dim 1, expected 5"),
    ({"target_features": torch.zeros(5, 5)}, "target_features has size 5 in dim 0, expected 6"),
    ({"source_features": torch.zeros(4)}, "source_features must have shape (N, D), got (4,)"),
    ({"target_logits": [[0.0] * 3] * 6}, "target_logits must be a torch.Tensor, got list"),
    ({"target_features": torch.zeros(6, 5, device="meta")}, "target_features must be on the CPU, got device meta"),
    ({"target_logits": torch.tensor([[0.0, math.nan, 0.0]] * 6)}, "target_logits has non-finite values"),
    ({"target_logits": torch.zeros(1, 3), "target_features": torch.zeros(1, 5)}, "at least 2 source and 2 target"),
    ({"source_logits": torch.zeros(4, 1), "target_logits": torch.zeros(6, 1),
      "source_labels": torch.zeros(4, dtype=torch.int64)}, "at least 2 classes, got C=1"),
    ({"target_images": torch.zeros(6, 3, 2, 2)}, "target_images is given without classify"),
    ({"classify": lambda x: x}, "classify is given without target_images"),
    ({"target_images": torch.zeros(5, 3, 2, 2), "classify": lambda x: x}, "target_images has size 5 in dim 0"),
    ({"target_images": torch.zeros(6, 12), "classify": lambda x: x},
     "target_images must have shape (N_t, channels, H, W)"),
])
def test_bad_inputs_give_one_line_errors(change: dict[str, object], needle: str) -> None:
    with pytest.raises(DabinError) as error:
        ValidationInputs(**{**_good(), **change})  # type: ignore[arg-type]
    message = str(error.value)
    assert "\n" not in message
    assert needle in message


# --- source_val ------------------------------------------------------------------------------------


def test_source_val_hand() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 5.0]])
    labels = torch.tensor([0, 1, 2, 2])
    # Predictions 0, 1, 0, 2: three of four right.
    assert source_val(_inputs([[0.0, 0.0, 1.0]] * 2, source_logits=logits, source_labels=labels)) == 75.0


def test_source_val_prefers_a_confident_correct_model() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (200,), generator=g)
    correct = 5.0 * F.one_hot(labels, 5).float()
    random = torch.randn(200, 5, generator=g)
    score_correct = source_val(_inputs(torch.zeros(4, 5), source_logits=correct, source_labels=labels))
    score_random = source_val(_inputs(torch.zeros(4, 5), source_logits=random, source_labels=labels))
    assert score_correct == 100.0 > score_random


# --- entropy, im -----------------------------------------------------------------------------------


def test_entropy_hand() -> None:
    # softmax([0, 0]) = (1/2, 1/2); softmax([log 3, 0]) = (3/4, 1/4).
    expected = -(math.log(2.0) + -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    assert entropy(_inputs([[0.0, 0.0], [LOG3, 0.0]])) == pytest.approx(expected, rel=1e-6)


def test_entropy_prefers_a_confident_model() -> None:
    g = torch.Generator().manual_seed(0)
    confident = 10.0 * F.one_hot(torch.randint(0, 4, (100,), generator=g), 4).float()
    random = torch.randn(100, 4, generator=g)
    assert entropy(_inputs(confident)) > entropy(_inputs(random))
    assert entropy(_inputs(torch.zeros(5, 4))) == pytest.approx(-math.log(4.0))


def test_im_hand() -> None:
    # p = (1/2, 1/2) and (3/4, 1/4): mean p = (5/8, 3/8).
    mean_entropy = (_h(0.5, 0.5) + _h(0.75, 0.25)) / 2
    assert im(_inputs([[0.0, 0.0], [LOG3, 0.0]])) == pytest.approx(_h(0.625, 0.375) - mean_entropy, rel=1e-6)
    # Confident and balanced: I = log C. Confident and collapsed on one class: I = 0.
    assert im(_inputs([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0], [0.0, 0.0, 30.0]])) == pytest.approx(LOG3, abs=1e-6)
    assert im(_inputs([[30.0, 0.0, 0.0]] * 3)) == pytest.approx(0.0, abs=1e-6)


# --- snd -------------------------------------------------------------------------------------------


def test_snd_hand() -> None:
    # p = (1/2, 1/2), (3/4, 1/4), (1/4, 3/4); normalized: (1, 1)/√2, (3, 1)/√10, (1, 3)/√10.
    s12 = s13 = 4.0 / math.sqrt(20.0)  # (3 + 1) / (√2 √10)
    s23 = 6.0 / 10.0  # (3 + 3) / 10
    tau = 0.05

    def neighbour_entropy(a: float, b: float) -> float:  # softmax over the two neighbours, then entropy
        pa = math.exp(a / tau) / (math.exp(a / tau) + math.exp(b / tau))
        return _h(pa, 1.0 - pa)

    expected = (neighbour_entropy(s12, s13) + neighbour_entropy(s12, s23) + neighbour_entropy(s13, s23)) / 3
    assert neighbour_entropy(s12, s13) == pytest.approx(math.log(2.0))  # equidistant neighbours
    inputs = _inputs([[0.0, 0.0], [LOG3, 0.0], [0.0, LOG3]])
    assert snd(inputs) == pytest.approx(expected, rel=1e-6)
    assert snd(inputs, chunk_size=1) == pytest.approx(expected, rel=1e-6)  # chunking does not change it


def test_snd_is_highest_for_clustered_predictions() -> None:
    # Four identical predictions: each sample has 3 equally close neighbours, entropy log 3 (the maximum).
    assert snd(_inputs([[5.0, 0.0]] * 4)) == pytest.approx(LOG3, rel=1e-6)


# --- bnm -------------------------------------------------------------------------------------------


def test_bnm_hand() -> None:
    # softmax([x, 0]) = (a, 1 − a), a = sigmoid(x); A = [[a, 1−a], [1−a, a]] has singular values 1 and |2a − 1|.
    x = 1.3
    a = 1.0 / (1.0 + math.exp(-x))
    assert bnm(_inputs([[x, 0.0], [0.0, x]])) == pytest.approx((1.0 + abs(2 * a - 1)) / 2, rel=1e-6)
    # Rank one (the same prediction twice): ‖A‖_* = ‖A‖_F = sqrt(2 (a² + (1−a)²)).
    assert bnm(_inputs([[x, 0.0], [x, 0.0]])) == pytest.approx(math.sqrt(2 * (a * a + (1 - a) ** 2)) / 2, rel=1e-6)


# --- dev -------------------------------------------------------------------------------------------


def test_dev_risk_hand() -> None:
    w = np.array([0.5, 1.0, 2.0, 2.5])
    losses = np.array([2.0, 1.0, 0.0, 1.0])
    # wL = (1, 1, 0, 2.5): mean 1.125; mean w = 1.5.
    # w − 1.5 = (−1, −.5, .5, 1): Var(w) = 2.5 / 3.  wL − 1.125 = (−.125, −.125, −1.125, 1.375):
    # Cov(wL, w) = (.125 + .0625 − .5625 + 1.375) / 3 = 1 / 3.
    eta = -(1.0 / 3.0) / (2.5 / 3.0 + 1e-6)
    assert _dev_risk(w, losses) == pytest.approx(1.125 + eta * 1.5 - eta, rel=1e-12)
    assert eta == pytest.approx(-0.4, rel=1e-5)  # so the risk is 1.125 − 0.6 + 0.4 = 0.925
    # Constant weights: η = 0 and the risk is mean(wL).
    assert _dev_risk(np.full(4, 2.0), losses) == pytest.approx(2.0 * 1.0)


def _mean_cross_entropy(logits: list[list[float]], labels: list[int]) -> float:
    return sum(math.log(sum(math.exp(v) for v in row)) - row[y] for row, y in zip(logits, labels)) / len(labels)


def test_dev_hand_when_the_domains_cannot_be_told_apart() -> None:
    # All features equal: the domain classifier learns only the class prior of its training folds, every
    # weight is N_s/N_t · (N_t/N_s) = 1 (to the solver's tolerance), and the risk is the mean cross-entropy.
    logits = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 1.0, 0.0], [0.5, 0.0, 3.0]]
    labels = [0, 2, 2, 1, 0]
    inputs = _inputs(torch.zeros(10, 3), source_logits=torch.tensor(logits), source_labels=torch.tensor(labels),
                     source_features=torch.ones(5, 4), target_features=torch.ones(10, 4))
    assert dev(inputs) == pytest.approx(-_mean_cross_entropy(logits, labels), rel=1e-4)


def test_dev_identical_distributions_gives_the_mean_loss() -> None:
    g = torch.Generator().manual_seed(0)
    n = 300
    logits = 2.0 * torch.randn(n, 4, generator=g)
    labels = torch.randint(0, 4, (n,), generator=g)
    inputs = _inputs(torch.zeros(n, 4), source_logits=logits, source_labels=labels,
                     source_features=torch.randn(n, 6, generator=g), target_features=torch.randn(n, 6, generator=g))
    mean_loss = F.cross_entropy(logits.double(), labels).item()
    assert -dev(inputs) == pytest.approx(mean_loss, rel=0.02)
    assert dev(inputs) == dev(inputs)  # deterministic


def test_dev_upweights_the_source_samples_that_look_like_the_target() -> None:
    # Source features at x = 0 (wrong predictions) and x = 3 (right ones); the target sits at x = 3. DEV's risk
    # must exceed the plain source loss when the target looks like the wrong part, and fall below it otherwise.
    g = torch.Generator().manual_seed(0)
    n = 200
    x = torch.cat([torch.zeros(n // 2), torch.full((n // 2,), 3.0)]) + 0.5 * torch.randn(n, generator=g)
    labels = torch.zeros(n, dtype=torch.int64)
    logits = torch.zeros(n, 2)
    logits[: n // 2, 1] = 3.0  # wrong on the x ≈ 0 half
    logits[n // 2:, 0] = 3.0  # right on the x ≈ 3 half
    mean_loss = F.cross_entropy(logits, labels).item()
    near_right = _inputs(torch.zeros(n, 2), source_logits=logits, source_labels=labels, source_features=x[:, None],
                         target_features=(3.0 + 0.5 * torch.randn(n, 1, generator=g)))
    near_wrong = _inputs(torch.zeros(n, 2), source_logits=logits, source_labels=labels, source_features=x[:, None],
                         target_features=(0.5 * torch.randn(n, 1, generator=g)))
    assert -dev(near_right) < mean_loss < -dev(near_wrong)


# --- class_ami -------------------------------------------------------------------------------------


def _ami_by_hand(table: list[list[int]]) -> float:
    """AMI (arithmetic normalization) from a contingency table, by the formulas of Vinh et al. (2010)."""
    n = sum(map(sum, table))
    a = [sum(row) for row in table]
    b = [sum(col) for col in zip(*table)]
    mi = sum(nij / n * math.log(n * nij / (a[i] * b[j]))
             for i, row in enumerate(table) for j, nij in enumerate(row) if nij > 0)
    h_u = -sum(x / n * math.log(x / n) for x in a)
    h_v = -sum(x / n * math.log(x / n) for x in b)
    f = math.factorial
    emi = 0.0
    for ai in a:
        for bj in b:
            for nij in range(max(1, ai + bj - n), min(ai, bj) + 1):
                p = f(ai) * f(bj) * f(n - ai) * f(n - bj) / (f(n) * f(nij) * f(ai - nij) * f(bj - nij)
                                                              * f(n - ai - bj + nij))
                emi += nij / n * math.log(n * nij / (ai * bj)) * p
    return (mi - emi) / ((h_u + h_v) / 2 - emi)


def _blobs() -> Tensor:
    """Eight 2-D points in three far-apart groups: 3 at (0, 0), 3 at (10, 0), 2 at (0, 10)."""
    offsets = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    return torch.cat([offsets, offsets + torch.tensor([10.0, 0.0]), offsets[:2] + torch.tensor([0.0, 10.0])])


def test_class_ami_hand() -> None:
    # k-means finds the three groups A (3), B (3), C (2). Predictions: A → 0, 0, 0; B → 1, 1, 2; C → 2, 2.
    predictions = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    table = [[3, 0, 0],  # cluster A vs predicted classes 0, 1, 2
             [0, 2, 1],  # cluster B
             [0, 0, 2]]  # cluster C
    score = class_ami(_inputs(5.0 * F.one_hot(predictions, 3).float(), target_features=_blobs()))
    assert score == pytest.approx(_ami_by_hand(table), rel=1e-6)
    assert 0.0 < score < 1.0


def test_class_ami_is_one_when_predictions_match_the_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = 20.0 * torch.eye(4, 6)
    classes = torch.arange(40) % 4
    features = centres[classes] + torch.randn(40, 6, generator=g)
    permuted = torch.tensor([2, 0, 3, 1])[classes]  # the class names need not match the cluster ids
    assert class_ami(_inputs(3.0 * F.one_hot(permuted, 4).float(), target_features=features)) == pytest.approx(1.0)


def test_class_ami_needs_as_many_targets_as_classes() -> None:
    with pytest.raises(DabinError, match="at least C=3 target samples"):
        class_ami(_inputs([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))


# A fixed linear classifier on (N, 3, 1, 1) images: logits = flatten(x) @ W.
W = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


def _linear(x: Tensor) -> Tensor:
    return x.flatten(1) @ W


# --- score_all -------------------------------------------------------------------------------------


def test_score_all() -> None:
    g = torch.Generator().manual_seed(0)
    # 12 images in two unequal pseudo-classes (the first 8 lean to class 0): sorted and reversed in one
    # pairing batch, some pairs fall inside a class (intra) and some across (inter).
    images = torch.randn(12, 3, 1, 1, generator=g)
    images[:8, 0] = images[:8, 0].abs() + 1.0
    inputs = ValidationInputs(source_logits=torch.randn(8, 2, generator=g), source_labels=torch.arange(8) % 2,
                              source_features=torch.randn(8, 3, generator=g), target_logits=_linear(images),
                              target_features=torch.randn(12, 3, generator=g), target_images=images, classify=_linear)
    scores = score_all(inputs)
    assert tuple(scores) == VALIDATOR_NAMES
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["source_val"] == source_val(inputs) and scores["mixval_inter"] == mixval_inter(inputs)
    assert score_all(inputs, ["bnm", "im"]) == {"bnm": bnm(inputs), "im": im(inputs)}
    with pytest.raises(DabinError, match="unknown validator 'acc'"):
        score_all(inputs, ["acc"])


def test_score_all_records_an_undefined_validator_as_nan() -> None:
    # Five target images and six classes: k-means cannot make C clusters, every other score exists.
    g = torch.Generator().manual_seed(1)
    inputs = ValidationInputs(source_logits=torch.randn(12, 6, generator=g), source_labels=torch.arange(12) % 6,
                              source_features=torch.randn(12, 3, generator=g),
                              target_logits=torch.randn(5, 6, generator=g), target_features=torch.randn(5, 3, generator=g))
    with pytest.raises(UndefinedScore, match="class_ami needs at least C=6 target samples"):
        class_ami(inputs)
    scores = score_all(inputs, [name for name in VALIDATOR_NAMES if not name.startswith("mixval")])
    assert math.isnan(scores["class_ami"])
    assert all(math.isfinite(v) for name, v in scores.items() if name != "class_ami")
