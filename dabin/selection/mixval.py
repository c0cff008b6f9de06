"""MixVal (Hu et al., NeurIPS 2023): mixed target images as probes, paired as its authors' code pairs them.

The target images get pseudo-labels ``ŷ_i = argmax_c g^t_{ic}``. A probe mixes two target images
with a fixed ratio ``λ > 0.5`` and is labelled by its dominant image:

.. math::

    \\tilde x = λ x_i + (1 - λ) x_j, \\qquad \\tilde y = ŷ_i, \\qquad
    \\text{ICE} = \\frac{100}{|P|} \\sum_{(i, j) \\in P} [\\arg\\max g(\\tilde x) = ŷ_i].

Two scores, each over its own probe set ``P`` (Algorithm 1 of the paper):

* **ICE_intra** (``mixval_intra``): ``ŷ_i = ŷ_j``, is the pseudo-class region dense?
* **ICE_inter** (``mixval_inter``): ``ŷ_i ≠ ŷ_j``, does the boundary between the two pseudo-classes
  sit where the mix ratio puts it?

Pairing, as in the authors' code (``LHXXHB/MixVal``, ``val_mixval_inter.py`` and
``val_mixval_intra.py``, function ``mixval``): the target list is read in batches of 128 (``--bs``)
and image ``k`` of a batch of ``m`` is mixed with image ``m − 1 − k`` of the same batch (the batch
reversed: ``torch.arange(batch_size).flip([0])``), so every pair is probed in both directions.

* inter: the list is a fixed random permutation of the target images (the code's
  ``*_list_shuffle{run}.txt``; here a ``torch.Generator`` seeded by ``seed``); the pairs whose
  pseudo-labels differ are kept.
* intra: the same list sorted by pseudo-label (the code's ``predict.argsort()``; here a stable sort,
  so within a class the random order is kept); the pairs whose pseudo-labels agree are kept,
  including, as in the code, the middle image of an odd batch mixed with itself.

Because each inter pair is probed both ways, a model that puts almost every target image in one
class scores about 50 on ICE_inter: the mixes dominated by a minority image are labelled with the
majority class. The paper does not average the two accuracies: it ranks the candidate models by
each and averages the two ranks (:func:`rank_average`; the report's ``mixval`` rule, over the
candidates it chooses among). A score needs the candidates, so each evaluation point records the
two ICE scores and the report combines them.

Reference: D. Hu, J. Liang, J. H. Liew, C. Xue, S. Bai, X. Wang, "Mixed Samples as Probes for
Unsupervised Model Selection in Domain Adaptation", NeurIPS 2023.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

from dabin.errors import DabinError
from dabin.selection.inputs import UndefinedScore, ValidationInputs

__all__ = ["PAIRING_BATCH", "RANK_COMBINED", "ProbeKind", "ice", "mixval_inter", "mixval_intra", "mixval_pairs",
           "rank_average"]

#: Probe kind: mixes within a pseudo-class or across two.
ProbeKind = Literal["intra", "inter"]
#: Images per pairing batch: the authors' ``--bs`` default.
PAIRING_BATCH = 128
#: The dominant image's share: the paper's and the code's default (``--lam 0.55``).
LAM = 0.55

#: Rules that rank the candidates by several recorded scores and average the ranks: rule → scores.
RANK_COMBINED: Mapping[str, tuple[str, ...]] = {"mixval": ("mixval_intra", "mixval_inter")}


def mixval_pairs(pseudo: Tensor, kind: ProbeKind, *, seed: int = 0,
                 batch_size: int = PAIRING_BATCH) -> tuple[Tensor, Tensor]:
    """The probes' (dominant, partner) indices, as the authors' code pairs them (see the module docstring).

    Args:
        pseudo: ``(N,)`` pseudo-labels.
        kind: ``"intra"`` or ``"inter"``.
        seed: Seed of the list's permutation.
        batch_size: Images per pairing batch (the last batch may be smaller).

    Returns:
        ``(dominant, partner)``, each ``(P,)`` int64, in list order.
    """
    if kind not in ("intra", "inter"):
        raise DabinError(f"mixval: unknown probe kind {kind!r}; expected intra or inter")
    if batch_size < 1:
        raise DabinError(f"mixval: batch_size must be at least 1, got {batch_size}")
    n = pseudo.numel()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if kind == "intra":
        order = order[torch.argsort(pseudo[order], stable=True)]
    position = torch.arange(n)
    start = position // batch_size * batch_size
    end = torch.clamp(start + batch_size, max=n)
    partner = order[start + end - 1 - position]  # the batch reversed
    same = pseudo[order] == pseudo[partner]
    keep = same if kind == "intra" else ~same
    return order[keep], partner[keep]


def ice(inputs: ValidationInputs, kind: ProbeKind, *, lam: float = LAM, seed: int = 0,
        batch_size: int = PAIRING_BATCH) -> float:
    """ICE_intra or ICE_inter: percent of the probes ``classify`` labels with the dominant image's pseudo-label.

    Args:
        inputs: Uses ``target_logits``, ``target_images`` and ``classify`` (the same model, row for row).
        kind: ``"intra"`` or ``"inter"``.
        lam: λ, the dominant image's share, in (0.5, 1).
        seed: Seed of the pairing.
        batch_size: Images per pairing batch and per ``classify`` call.

    Returns:
        The score in ``[0, 100]``; higher is better.

    Raises:
        UndefinedScore: No probe of this kind (every prediction in one class: no inter probe).
        DabinError: Missing ``target_images``/``classify``, ``lam`` outside (0.5, 1), ``batch_size < 1``,
            an unknown ``kind``, or ``classify`` returning the wrong shape.
    """
    if inputs.target_images is None or inputs.classify is None:
        raise DabinError("mixval needs ValidationInputs.target_images and classify, got None")
    if not 0.5 < lam < 1.0:
        raise DabinError(f"mixval: lam must be in (0.5, 1) so that the first image dominates, got {lam}")
    pseudo = inputs.target_logits.argmax(dim=1)
    dominant, partner = mixval_pairs(pseudo, kind, seed=seed, batch_size=batch_size)
    if dominant.numel() == 0:
        raise UndefinedScore(f"mixval_{kind}: no {kind}-cluster pair among {pseudo.numel()} target images")
    correct = 0
    # In eval mode the model scores each image on its own, so classifying only the kept mixes gives
    # the code's result (it classifies every mix of a batch and keeps the pairs of one kind).
    with torch.no_grad():
        for first in range(0, dominant.numel(), batch_size):
            i, j = dominant[first:first + batch_size], partner[first:first + batch_size]
            logits = inputs.classify(lam * inputs.target_images[i] + (1.0 - lam) * inputs.target_images[j])
            if not isinstance(logits, Tensor) or logits.shape != (i.numel(), inputs.num_classes):
                shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise DabinError(f"mixval: classify must return ({i.numel()}, {inputs.num_classes}) logits for "
                                 f"{i.numel()} images, got {shape}")
            correct += int((logits.argmax(dim=1).cpu() == pseudo[i]).sum())
    return 100.0 * correct / dominant.numel()


def mixval_intra(inputs: ValidationInputs) -> float:
    """ICE_intra at the code's defaults (λ = 0.55, batches of 128, seed 0); see :func:`ice`."""
    return ice(inputs, "intra")


def mixval_inter(inputs: ValidationInputs) -> float:
    """ICE_inter at the code's defaults (λ = 0.55, batches of 128, seed 0); see :func:`ice`."""
    return ice(inputs, "inter")


def rank_average(columns: Sequence[Sequence[float]]) -> list[float]:
    """Each candidate's rank under every score, averaged over the scores (the paper's MixVal combination).

    Ranks run from 1 (lowest score) to the number of candidates, ties get their mean rank
    (:func:`scipy.stats.rankdata`, ``method="average"``), and a NaN score (undefined there) ranks
    below every number.

    Args:
        columns: One sequence of scores per ranked score, each with one value per candidate.

    Returns:
        The mean rank per candidate (higher is better).
    """
    if not columns:
        return []
    arrays = [np.asarray(column, dtype=np.float64) for column in columns]
    ranks = [rankdata(np.where(np.isnan(array), -math.inf, array), method="average") for array in arrays]
    return [float(value) for value in np.mean(ranks, axis=0)]
