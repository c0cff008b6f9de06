"""MixVal against a transcription of its authors' pairing, on a collapsed model, and the rank rule.

The reference below is written from the paper's Algorithm 1 and the authors' code, not from
:mod:`dabin.selection.mixval`: repository ``LHXXHB/MixVal``, files ``val_mixval_inter.py`` and
``val_mixval_intra.py``, function ``mixval``. The code reads the target list (a shuffled list file
for inter; for intra, the list re-ordered by ``predict.argsort()``) in ``DataLoader`` batches of
``--bs`` 128 without shuffling, mixes each batch with itself reversed
(``rand_idx = torch.arange(batch_size).flip([0])``), ``mix_lam * inputs_a + (1 - mix_lam) * inputs_b``
with ``--lam 0.55``, and scores the mixes whose pseudo-labels differ (``diff_idx``, ICE_inter) or
agree (``same_idx``, ICE_intra) by ``argmax(mix_logits) == argmax(mix_labels)``.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
import torch
from torch import Tensor

from dabin.errors import DabinError
from dabin.selection import ValidationInputs
from dabin.selection.mixval import ice, mixval_inter, mixval_intra, rank_average


def _official_ice(images: Tensor, net, kind: str, order: Tensor, bs: int = 128, lam: float = 0.55) -> float:
    """ICE as ``mixval`` in LHXXHB/MixVal computes it, in float64, on the list ``order``.

    ``order`` is the list file's order (the shuffled list for inter). For intra the code sorts the
    list by the model's predictions; ``argsort`` there is not stable, so the test sorts stably,
    as dabin does, to fix the order within a class.
    """
    predictions = net(images).argmax(dim=1)
    if kind == "intra":
        order = order[torch.sort(predictions[order], stable=True).indices]
    hits, probes = 0, 0
    for first in range(0, len(order), bs):  # DataLoader(shuffle=False, drop_last=False)
        idx = order[first:first + bs]
        inputs_a = images[idx]
        rand_idx = torch.arange(len(idx)).flip([0])
        inputs_b = inputs_a[rand_idx]
        pl_a = predictions[idx]
        pl_b = pl_a[rand_idx]
        keep = (pl_a == pl_b) if kind == "intra" else (pl_a != pl_b)
        mix_logits = net(lam * inputs_a + (1 - lam) * inputs_b)
        # mix_labels = lam * onehot(pl_a) + (1 - lam) * onehot(pl_b): its argmax is pl_a since lam > 0.5
        hits += int((mix_logits.argmax(dim=1) == pl_a)[keep].sum())
        probes += int(keep.sum())
    return 100.0 * hits / probes


def _problem(n: int, classes: int, seed: int, sort_by_class: bool) -> tuple[Tensor, callable]:
    """``n`` float64 images ``(n, 3, 2, 2)`` around ``classes`` centres and a fixed linear classifier."""
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(classes, 12, generator=g, dtype=torch.float64)
    labels = torch.randint(classes, (n,), generator=g)
    if sort_by_class:
        labels = labels.sort().values  # a list in class order, as file lists are
    images = (centres[labels] + 1.5 * torch.randn(n, 12, generator=g, dtype=torch.float64)).view(n, 3, 2, 2)
    weight = centres.T + 0.5 * torch.randn(12, classes, generator=g, dtype=torch.float64)

    def net(x: Tensor) -> Tensor:
        return x.flatten(1) @ weight

    return images, net


def _inputs(images: Tensor, net) -> ValidationInputs:
    logits = net(images)
    n, c = logits.shape
    return ValidationInputs(source_logits=torch.zeros(2, c, dtype=torch.float64), source_labels=torch.tensor([0, 1]),
                            source_features=torch.zeros(2, 4, dtype=torch.float64), target_logits=logits,
                            target_features=torch.zeros(n, 4, dtype=torch.float64), target_images=images,
                            classify=net)


def _list_order(n: int, seed: int = 0) -> Tensor:
    # The shuffled list file: dabin draws it with a seeded torch.Generator (the code ships it as a file).
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sort_by_class", [False, True])
@pytest.mark.parametrize("n", [300, 128, 77])  # batches of 128/128/44; one full batch; one odd batch
def test_ice_equals_the_official_pairing(n: int, sort_by_class: bool) -> None:
    images, net = _problem(n, classes=5, seed=n, sort_by_class=sort_by_class)
    inputs = _inputs(images, net)
    for kind, score in (("inter", mixval_inter), ("intra", mixval_intra)):
        expected = _official_ice(images, net, kind, _list_order(n))
        assert score(inputs) == pytest.approx(expected, abs=1e-9)
    # Another seed is another list, hence other pairs; a smaller batch pairs differently again.
    assert ice(inputs, "inter", seed=3) == pytest.approx(_official_ice(images, net, "inter", _list_order(n, 3)))
    assert ice(inputs, "inter", batch_size=32) == pytest.approx(_official_ice(images, net, "inter", _list_order(n), 32))


def test_a_collapsed_model_scores_about_half_on_the_inter_probes() -> None:
    # 90 % of the predictions in class 0: class 1 only where x1 - x0 exceeds its 90 % quantile.
    g = torch.Generator().manual_seed(0)
    n = 1000
    images = torch.randn(n, 2, 1, 1, generator=g, dtype=torch.float64)
    margin = images[:, 1, 0, 0] - images[:, 0, 0, 0]
    threshold = float(margin.quantile(0.9))

    def net(x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return torch.stack([flat[:, 0] + threshold, flat[:, 1]], dim=1)

    inputs = _inputs(images, net)
    share = float((net(images).argmax(1) == 0).double().mean())
    assert 0.89 <= share <= 0.91
    score = mixval_inter(inputs)
    assert score == pytest.approx(_official_ice(images, net, "inter", _list_order(n)), abs=1e-9)
    assert 40.0 <= score <= 60.0  # each inter pair probed both ways: the minority-dominant mixes fail
    # dabin's earlier scheme, one random partner from another pseudo-class per image, scored it near 90.
    rng = random.Random(0)
    predictions = net(images).argmax(1).tolist()
    by_class = {c: [i for i, p in enumerate(predictions) if p == c] for c in (0, 1)}
    hits = 0
    for i, p in enumerate(predictions):
        j = rng.choice(by_class[1 - p])
        hits += int(net(0.55 * images[i:i + 1] + 0.45 * images[j:j + 1]).argmax(1).item() == p)
    assert 100.0 * hits / n > 80.0


def test_intra_keeps_the_middle_image_of_an_odd_batch_and_inter_needs_two_classes() -> None:
    images = torch.randn(5, 1, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def one_class(x: Tensor) -> Tensor:
        return torch.cat([x.flatten(1) * 0 + 1.0, x.flatten(1) * 0], dim=1)

    inputs = _inputs(images, one_class)
    assert mixval_intra(inputs) == 100.0
    with pytest.raises(Exception, match="no inter-cluster pair among 5 target images"):
        mixval_inter(inputs)


def test_misuse_is_one_clear_error() -> None:
    images, net = _problem(20, classes=3, seed=0, sort_by_class=False)
    inputs = _inputs(images, net)
    with pytest.raises(DabinError, match=r"lam must be in \(0.5, 1\).*got 0.5"):
        ice(inputs, "inter", lam=0.5)
    with pytest.raises(DabinError, match="unknown probe kind 'cross'"):
        ice(inputs, "cross")  # type: ignore[arg-type]
    with pytest.raises(DabinError, match="batch_size must be at least 1, got 0"):
        ice(inputs, "inter", batch_size=0)
    bad = dataclasses.replace(inputs, classify=lambda x: net(x)[:, :2])
    with pytest.raises(DabinError, match=r"classify must return \(\d+, 3\) logits"):
        mixval_inter(bad)


def test_rank_average_averages_tied_ranks_and_puts_undefined_scores_last() -> None:
    intra = [1.0, 2.0, 2.0, math.nan]  # ranks 2, 3.5, 3.5, 1
    inter = [4.0, 3.0, 2.0, 1.0]  # ranks 4, 3, 2, 1
    assert rank_average([intra, inter]) == [3.0, 3.25, 2.75, 1.0]
    assert rank_average([]) == []
    # The raw mean would pick candidate 0 (intra inflated by a collapse); the ranks do not.
    collapsed_intra, collapsed_inter = [100.0, 80.0, 70.0], [10.0, 60.0, 50.0]
    assert rank_average([collapsed_intra, collapsed_inter]) == [2.0, 2.5, 1.5]
