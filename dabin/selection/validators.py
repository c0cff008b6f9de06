"""Unsupervised validators: scoring a trained model without target labels.

Each validator scores one model from what it outputs on two splits only: the **labelled source
validation split** and the **unlabelled target training split**. No target label enters any
score: :class:`ValidationInputs` has no field for one. Convention: **higher is better** for every
validator (losses, risks and entropies that the papers minimize are negated), so a sweep keeps the
model with the largest score.

=============  ===============================================================================
name           score (higher is better)
=============  ===============================================================================
``source_val`` source validation accuracy (%)
``entropy``    − mean entropy of the target predictions (Morerio et al., ICLR 2018)
``im``         entropy of the mean target prediction − mean entropy (Shi & Sha 2012; SHOT)
``snd``        soft neighbourhood density of the target predictions (Saito et al., ICCV 2021)
``bnm``        ‖softmax(target logits)‖_* / N_t (Cui et al., CVPR 2020)
``dev``        − deep embedded validation risk (You et al., ICML 2019)
``class_ami``  AMI between k-means clusters of target features and predictions (Musgrave et al.)
``mixval``     accuracy on mixed target images labelled by pseudo-labels (Hu et al., NeurIPS 2023)
=============  ===============================================================================

The survey comparing most of them is K. Musgrave, S. Belongie, S.-N. Lim, "Benchmarking Validation
Methods for Unsupervised Domain Adaptation", arXiv:2208.07360, 2022 (and its library
``pytorch-adapt``, whose validators these follow where a paper leaves a detail open).

Every function is pure and deterministic: the same inputs give the same float. Scalar reductions
run in float64, so float32 inputs do not lose digits in the sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from dabin.errors import DabinError

__all__ = [
    "VALIDATORS",
    "VALIDATOR_NAMES",
    "UndefinedScore",
    "ValidationInputs",
    "bnm",
    "class_ami",
    "dev",
    "entropy",
    "im",
    "mixval",
    "score_all",
    "snd",
    "source_val",
]


class UndefinedScore(DabinError):
    """A validator is not defined on these outputs (too few samples, a diverged model's NaN logits).

    Not a mistake of the caller: :func:`score_all` records such a score as NaN, so an evaluation
    point on a tiny target split or after a divergence does not stop training.
    """


@dataclass(frozen=True)
class ValidationInputs:
    """What one model outputs on the source validation split and the target training split.

    All tensors live on the CPU; logits, features and images are floating point (float32 as the
    trainer writes them), labels are int64. Rows are aligned within a domain: row ``i`` of
    ``target_logits``, ``target_features`` and ``target_images`` is the same target image.

    There is deliberately **no target-label field**: a validator cannot read what it is not given.

    ``target_images`` and ``classify`` are needed only by :func:`mixval`, which feeds the model new
    (mixed) images; every other validator works from the logits and features alone. Give both or
    neither; :func:`mixval` raises :class:`~dabin.errors.DabinError` when they are missing.

    Attributes:
        source_logits: ``(N_s, C)`` logits on the source validation images.
        source_labels: ``(N_s,)`` int64 class indices in ``[0, C)`` of the source validation images.
        source_features: ``(N_s, D)`` features (the classifier head's input) on the same images.
        target_logits: ``(N_t, C)`` logits on the unlabelled target training images.
        target_features: ``(N_t, D)`` features on the same images.
        target_images: ``(N_t, channels, H, W)`` the target images as the model takes them
            (normalized, 3 channels for RGB); only for :func:`mixval`.
        classify: The model as a function images → logits, ``(B, channels, H, W) → (B, C)``, in
            eval mode and without gradients (e.g. ``torch.no_grad()`` around ``model.eval()``'s
            forward; it may move the batch to its device and must return ``C`` logits a row);
            only for :func:`mixval`.

    Raises:
        DabinError: In ``__post_init__``, on the first inconsistency: a non-tensor, a tensor not on
            the CPU, a wrong number of dimensions, sizes that do not agree (``N_s``, ``N_t``, ``C``,
            ``D``), fewer than 2 source or target samples or classes, a non-integer label or one
            outside ``[0, C)``, non-finite logits or features, or only one of ``target_images`` and
            ``classify``.
    """

    source_logits: Tensor
    source_labels: Tensor
    source_features: Tensor
    target_logits: Tensor
    target_features: Tensor
    target_images: Tensor | None = None
    classify: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        float_fields = ("source_logits", "source_features", "target_logits", "target_features")
        for name in (*float_fields, "source_labels"):
            _check_tensor(name, getattr(self, name))
        for name in float_fields:
            value: Tensor = getattr(self, name)
            _check_dims(name, value, 2, "(N, C)" if name.endswith("logits") else "(N, D)")
            if not value.is_floating_point():
                raise DabinError(f"ValidationInputs.{name} must be floating point, got dtype {value.dtype}")
        _check_dims("source_labels", self.source_labels, 1, "(N_s,)")
        if self.source_labels.dtype != torch.int64:
            raise DabinError(f"ValidationInputs.source_labels must be int64 class indices, got dtype "
                             f"{self.source_labels.dtype}")
        n_s, c = self.source_logits.shape
        n_t = self.target_logits.shape[0]
        _check_size("source_labels", self.source_labels, 0, n_s, "N_s (rows of source_logits)")
        _check_size("source_features", self.source_features, 0, n_s, "N_s (rows of source_logits)")
        _check_size("target_features", self.target_features, 0, n_t, "N_t (rows of target_logits)")
        _check_size("target_logits", self.target_logits, 1, c, "C (columns of source_logits)")
        _check_size("target_features", self.target_features, 1, self.source_features.shape[1],
                    "D (columns of source_features)")
        if n_s < 2 or n_t < 2:
            raise UndefinedScore(f"ValidationInputs needs at least 2 source and 2 target samples, got N_s={n_s}, "
                                 f"N_t={n_t}")
        if c < 2:
            raise DabinError(f"ValidationInputs needs at least 2 classes, got C={c}")
        low, high = int(self.source_labels.min()), int(self.source_labels.max())
        if low < 0 or high >= c:
            raise DabinError(f"ValidationInputs.source_labels must lie in [0, {c}), got values in [{low}, {high}]")
        for name in float_fields:
            if not torch.isfinite(getattr(self, name)).all():
                raise UndefinedScore(f"ValidationInputs.{name} has non-finite values (nan or inf)")
        if (self.target_images is None) != (self.classify is None):
            given = "target_images" if self.classify is None else "classify"
            raise DabinError(f"ValidationInputs: {given} is given without "
                             f"{'classify' if given == 'target_images' else 'target_images'}; MixVal needs both")
        if self.target_images is not None:
            _check_tensor("target_images", self.target_images)
            _check_dims("target_images", self.target_images, 4, "(N_t, channels, H, W)")
            _check_size("target_images", self.target_images, 0, n_t, "N_t (rows of target_logits)")
            if not self.target_images.is_floating_point():
                raise DabinError(f"ValidationInputs.target_images must be floating point, got dtype "
                                 f"{self.target_images.dtype}")
        if self.classify is not None and not callable(self.classify):
            raise DabinError(f"ValidationInputs.classify must be callable, got {type(self.classify).__name__}")

    @property
    def num_classes(self) -> int:
        """``C``, the number of classes."""
        return int(self.source_logits.shape[1])


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise DabinError(f"ValidationInputs.{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.device.type != "cpu":
        raise DabinError(f"ValidationInputs.{name} must be on the CPU, got device {value.device}")


def _check_dims(name: str, value: Tensor, dims: int, shape: str) -> None:
    if value.dim() != dims:
        raise DabinError(f"ValidationInputs.{name} must have shape {shape}, got {tuple(value.shape)}")


def _check_size(name: str, value: Tensor, dim: int, expected: int, what: str) -> None:
    if value.shape[dim] != expected:
        raise DabinError(f"ValidationInputs.{name} has size {value.shape[dim]} in dim {dim}, expected {expected} = "
                         f"{what}; shape {tuple(value.shape)}")


def _probs(logits: Tensor) -> Tensor:
    """Softmax in float64."""
    return F.softmax(logits.double(), dim=1)


def _row_entropies(probs: Tensor) -> Tensor:
    """``H(p_i) = −Σ_c p_ic log p_ic`` per row, with ``0 log 0 = 0`` (``torch.special.entr``)."""
    return torch.special.entr(probs).sum(dim=1)


def source_val(inputs: ValidationInputs) -> float:
    """Source validation accuracy, in percent.

    The standard practice the unsupervised validators are compared against (Musgrave et al. 2022
    call it "Accuracy" on the source validation set):

    .. math::

        \\text{score} = \\frac{100}{N_s} \\sum_{i=1}^{N_s} [\\arg\\max_c g^s_{ic} = y^s_i].

    Reference: K. Musgrave, S. Belongie, S.-N. Lim, "Benchmarking Validation Methods for
    Unsupervised Domain Adaptation", arXiv:2208.07360, 2022.

    Args:
        inputs: Uses ``source_logits`` and ``source_labels``.

    Returns:
        The accuracy in ``[0, 100]``; higher is better.
    """
    correct = inputs.source_logits.argmax(dim=1) == inputs.source_labels
    return 100.0 * correct.double().mean().item()


def entropy(inputs: ValidationInputs) -> float:
    """Negative mean entropy of the target predictions.

    A confident model on the target scores high (Morerio et al. select the alignment weight of
    their method by the target entropy it reaches). With ``p_i = softmax(g^t_i)``:

    .. math::

        \\text{score} = -\\frac{1}{N_t} \\sum_{i=1}^{N_t} H(p_i), \\qquad
        H(p) = -\\sum_{c=1}^{C} p_c \\log p_c

    (natural logarithm; ``0 log 0 = 0``).

    Reference: P. Morerio, J. Cavazza, V. Murino, "Minimal-Entropy Correlation Alignment for
    Unsupervised Deep Domain Adaptation", ICLR 2018.

    Args:
        inputs: Uses ``target_logits``.

    Returns:
        A score in ``[−log C, 0]``; higher is better.
    """
    return -_row_entropies(_probs(inputs.target_logits)).mean().item()


def im(inputs: ValidationInputs) -> float:
    """Information maximization: diversity of the target predictions minus their entropy.

    With ``p_i = softmax(g^t_i)`` and ``p̄ = (1/N_t) Σ_i p_i``:

    .. math::

        \\text{score} = H(\\bar p) - \\frac{1}{N_t} \\sum_{i=1}^{N_t} H(p_i),

    the mutual information between the input and the predicted class under the empirical
    distribution: high when each prediction is confident and the classes are used evenly.

    References: Y. Shi, F. Sha, "Information-Theoretical Learning of Discriminative Clusters for
    Unsupervised Domain Adaptation", ICML 2012; J. Liang, D. Hu, J. Feng, "Do We Really Need to
    Access the Source Data? Source Hypothesis Transfer for Unsupervised Domain Adaptation" (SHOT),
    ICML 2020; as a validator: Musgrave et al. 2022 ("IM").

    Args:
        inputs: Uses ``target_logits``.

    Returns:
        A score in ``[−log C, log C]``; higher is better.
    """
    probs = _probs(inputs.target_logits)
    diversity = torch.special.entr(probs.mean(dim=0)).sum()
    return (diversity - _row_entropies(probs).mean()).item()


def snd(inputs: ValidationInputs, *, temperature: float = 0.05, chunk_size: int = 256) -> float:
    """Soft Neighborhood Density of the target predictions.

    With ``p_i = softmax(g^t_i)`` and ``f_i = p_i / ‖p_i‖_2``, each target sample gets a soft
    distribution over its neighbours (itself excluded), and the score is the mean entropy of those
    distributions:

    .. math::

        s_{ij} = f_i^\\top f_j, \\qquad
        P_{ij} = \\frac{\\exp(s_{ij}/τ)}{\\sum_{k \\ne i} \\exp(s_{ik}/τ)} \\; (j \\ne i), \\qquad
        \\text{score} = \\frac{1}{N_t} \\sum_{i=1}^{N_t} H(P_{i\\cdot}).

    High density (many close neighbours: predictions clustered) gives high entropy; the paper
    selects the model with the highest SND. τ = 0.05 is the paper's and its code's.

    The authors' code (``VisionLearningGroup/SND``, ``neighbor_density``) masks the self-similarity
    by setting it to ``−1/τ`` instead of removing it, and adds ``1e-5`` inside the logarithm; both
    change the score by far less than its differences between models. This follows the paper's
    definition (self removed, exact entropy), as ``pytorch-adapt``'s ``SNDValidator`` does.

    Reference: K. Saito, D. Kim, P. Teterwak, S. Sclaroff, T. Darrell, K. Saenko, "Tune it the Right
    Way: Unsupervised Validation of Domain Adaptation via Soft Neighborhood Density", ICCV 2021.

    Args:
        inputs: Uses ``target_logits``.
        temperature: τ.
        chunk_size: Rows of the ``N_t × N_t`` similarity matrix held in memory at a time.

    Returns:
        A score in ``[0, log(N_t − 1)]``; higher is better.
    """
    normalized = F.normalize(_probs(inputs.target_logits), dim=1)
    n = normalized.shape[0]
    entropies = []
    for start in range(0, n, chunk_size):
        sim = normalized[start:start + chunk_size] @ normalized.T / temperature
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + start] = -math.inf  # exclude self: probability 0, entr(0) = 0
        entropies.append(_row_entropies(F.softmax(sim, dim=1)))
    return torch.cat(entropies).mean().item()


def bnm(inputs: ValidationInputs) -> float:
    """Batch nuclear norm of the target prediction matrix, divided by ``N_t``.

    With ``A = softmax(g^t)`` the ``(N_t, C)`` target prediction matrix and ``σ_k(A)`` its singular
    values:

    .. math::

        \\text{score} = \\frac{1}{N_t} \\|A\\|_* = \\frac{1}{N_t} \\sum_k σ_k(A),

    high when the predictions are both confident and diverse (the negative of the BNM loss, the
    ``BNMValidator`` of Musgrave et al. 2022; :class:`dabin.methods.BNMLoss` is the training loss).

    Reference: S. Cui, S. Wang, J. Zhuo, L. Li, Q. Huang, Q. Tian, "Towards Discriminability and
    Diversity: Batch Nuclear-norm Maximization under Label Insufficient Situations", CVPR 2020.

    Args:
        inputs: Uses ``target_logits``.

    Returns:
        A score in ``(0, sqrt(min(N_t, C) / N_t)]``; higher is better.
    """
    probs = _probs(inputs.target_logits)
    return (torch.linalg.svdvals(probs).sum() / probs.shape[0]).item()


#: Added to Var(w) in DEV's control-variate coefficient (``pytorch-adapt``'s ``get_dev_risk``).
_DEV_VAR_EPS = 1e-6


def _dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """DEV's control-variate estimate of the target risk from importance weights and source losses.

    ``η = −Cov(wL, w) / (Var(w) + 10⁻⁶)`` (unbiased sample (co)variances),
    ``risk = mean(wL) + η mean(w) − η``.
    """
    weighted = weights * losses
    eta = -float(np.cov(weighted, weights, ddof=1)[0, 1]) / (float(np.var(weights, ddof=1)) + _DEV_VAR_EPS)
    return float(weighted.mean() + eta * weights.mean() - eta)


def dev(inputs: ValidationInputs, *, n_splits: int = 5, c: float = 1.0, random_state: int = 0) -> float:
    """Negative Deep Embedded Validation risk: the source validation loss reweighted to the target.

    Algorithm 1 of the paper, on features:

    1. A domain classifier learns ``p(source | f)`` from source and target features.
    2. Each source validation sample gets the importance weight (density ratio)

       .. math:: w_i = \\frac{N_s}{N_t} \\cdot \\frac{p(\\text{target} \\mid f_i)}{p(\\text{source} \\mid f_i)}
                 \\approx \\frac{p_t(f_i)}{p_s(f_i)}.

    3. With ``L_i`` the per-sample cross-entropy of the model on source validation sample ``i``,
       the control variate ``w`` (whose mean is 1 in expectation) lowers the estimator's variance:

       .. math::

          η = -\\frac{\\widehat{\\mathrm{Cov}}(wL, w)}{\\widehat{\\mathrm{Var}}(w) + 10^{-6}}, \\qquad
          \\text{risk} = \\overline{wL} + η\\,\\bar w - η, \\qquad \\text{score} = -\\text{risk}.

    Choices (the paper trains the domain classifier on source *training* features against target
    features, its code picking the regularization on a held-out 20 %, and computes the weights on
    the separate source validation features; only source validation features are given here):

    * The domain classifier is scikit-learn's ``LogisticRegression`` (``C = c``, L2, lbfgs) on
      standardized features (``StandardScaler`` fitted on its training part), not the reference
      code's grid over regularization strengths (the copy in ``VisionLearningGroup/SND`` uses a
      linear SVM, ``pytorch-adapt`` a small MLP).
    * **Cross-fitting** keeps the weights held out: source validation and target features are
      split into ``n_splits`` stratified folds (``StratifiedKFold``, shuffled with
      ``random_state``; ``min(n_splits, N_s, N_t)`` folds); the weight of each source sample comes
      from the classifier trained on the other folds, which matches the code's 80/20 split at
      ``n_splits = 5`` while every sample gets a weight. ``N_s/N_t`` is taken as the source/target
      counts of that classifier's training folds (the class prior it learned; equal to ``N_s/N_t``
      up to rounding).
    * ``10⁻⁶`` is added to ``Var(w)`` (as ``pytorch-adapt`` does): when the classifier cannot tell
      the domains apart the weights are 1 up to its solver's tolerance, and the slope ``η`` of
      ``wL`` on such nearly constant weights would be noise; the term turns the correction off
      there (the risk is then ``mean(wL) ≈ mean(L)``) and is negligible otherwise.
    * ``L_i`` is the cross-entropy (``pytorch-adapt``'s choice; the reference code's example is the
      0/1 error). The weights are not clipped, as in the paper: where the classifier separates the
      domains perfectly they overflow, the risk is not finite and the score is ``−inf`` (the
      worst), as is any non-finite risk.

    Reference: K. You, X. Wang, M. Long, M. I. Jordan, "Towards Accurate Model Selection in Deep
    Unsupervised Domain Adaptation", ICML 2019 (code: ``thuml/Deep-Embedded-Validation``).

    Args:
        inputs: Uses ``source_logits``, ``source_labels``, ``source_features``, ``target_features``.
        n_splits: Cross-fitting folds (at least 2 are used).
        c: Inverse L2 strength of the logistic regression.
        random_state: Seed of the fold shuffle (the lbfgs fit itself is deterministic).

    Returns:
        ``−risk``; higher is better.
    """
    n_s, n_t = inputs.source_features.shape[0], inputs.target_features.shape[0]
    features = torch.cat([inputs.source_features, inputs.target_features]).double().numpy()
    domain = np.concatenate([np.ones(n_s, dtype=np.int64), np.zeros(n_t, dtype=np.int64)])  # 1 = source
    folds = StratifiedKFold(n_splits=max(2, min(n_splits, n_s, n_t)), shuffle=True, random_state=random_state)
    log_weights = np.empty(n_s)
    for train, held_out in folds.split(features, domain):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        classifier.fit(features[train], domain[train])
        source_rows = held_out[held_out < n_s]
        # decision_function = log p(source|f) / p(target|f): the ratio without dividing probabilities.
        prior = np.log(domain[train].sum() / (len(train) - domain[train].sum()))
        log_weights[source_rows] = prior - classifier.decision_function(features[source_rows])
    losses = F.cross_entropy(inputs.source_logits.double(), inputs.source_labels, reduction="none").numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        weights = np.exp(log_weights)
        risk = _dev_risk(weights, losses)
    return -risk if math.isfinite(risk) else -math.inf


def class_ami(inputs: ValidationInputs, *, n_init: int = 10, random_state: int = 0) -> float:
    """Agreement between k-means clusters of the target features and the model's target predictions.

    k-means (scikit-learn ``KMeans``, ``k = C``, ``n_init`` restarts, seeded) clusters the target
    features into ``U``; ``V = argmax_c g^t_{ic}`` are the predictions. The score is their adjusted
    mutual information (scikit-learn ``adjusted_mutual_info_score``, arithmetic normalization):

    .. math::

        \\text{AMI}(U, V) = \\frac{I(U; V) - \\mathbb{E}[I]}{\\tfrac12 (H(U) + H(V)) - \\mathbb{E}[I]},

    ``E[I]`` the mutual information expected between random labellings with the same cluster
    sizes (hypergeometric model). 1 when the classifier's decision regions coincide with the
    clusters of its own feature space, about 0 when unrelated. Musgrave et al. call it "ClassAMI";
    this is its plain form (``pytorch-adapt``'s ``ClassClusterValidator`` can also reduce the
    features with PCA or start k-means at the predicted-class centroids; neither is done here).

    Reference: Musgrave et al., "Benchmarking Validation Methods for Unsupervised Domain
    Adaptation", arXiv:2208.07360, 2022; AMI: N. X. Vinh, J. Epps, J. Bailey, "Information Theoretic
    Measures for Clusterings Comparison", JMLR 2010.

    Args:
        inputs: Uses ``target_features`` and ``target_logits``.
        n_init: k-means restarts (the best inertia is kept).
        random_state: k-means seed.

    Returns:
        AMI, at most 1 (0 in expectation for unrelated labellings); higher is better.

    Raises:
        UndefinedScore: If ``N_t < C`` (k-means cannot make ``C`` clusters).
    """
    n_t, c = inputs.target_features.shape[0], inputs.num_classes
    if n_t < c:
        raise UndefinedScore(f"class_ami needs at least C={c} target samples for k-means, got N_t={n_t}")
    clusters = KMeans(n_clusters=c, n_init=n_init, random_state=random_state).fit_predict(
        inputs.target_features.double().numpy())
    predictions = inputs.target_logits.argmax(dim=1).numpy()
    return float(adjusted_mutual_info_score(clusters, predictions))


def _mixval_pairs(pseudo: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dominant/partner indices of the intra-class and the inter-class probes.

    Every sample is the dominant member of one intra probe (partner: another sample with its
    pseudo-label, if any) and of one inter probe (partner: a sample of another pseudo-label, if any).
    """
    n = pseudo.numel()
    shuffled = torch.randperm(n, generator=generator)
    order = shuffled[torch.argsort(pseudo[shuffled], stable=True)]  # grouped by class, random within
    _, sizes = torch.unique_consecutive(pseudo[order], return_counts=True)
    starts = torch.cumsum(sizes, 0) - sizes
    group_size = torch.repeat_interleave(sizes, sizes)
    group_start = torch.repeat_interleave(starts, sizes)
    rank = torch.arange(n) - group_start
    # Intra: the next sample of the same class (cyclically) in the random order.
    intra_partner = order[group_start + (rank + 1) % group_size]
    has_intra = group_size > 1
    # Inter: uniform over the n − size samples outside the group, skipping over the group's positions.
    others = n - group_size
    offset = (torch.rand(n, generator=generator, dtype=torch.float64) * others).long().clamp(max=others - 1)
    inter_partner = order[torch.where(offset < group_start, offset, offset + group_size).clamp(max=n - 1)]
    has_inter = others > 0
    return order[has_intra], intra_partner[has_intra], order[has_inter], inter_partner[has_inter]


def _probe_accuracy(inputs: ValidationInputs, pseudo: Tensor, dominant: Tensor, partner: Tensor, lam: float,
                    batch_size: int) -> float:
    """Percent of mixes ``λ x_i + (1 − λ) x_j`` that ``classify`` assigns to ``i``'s pseudo-label."""
    assert inputs.target_images is not None and inputs.classify is not None
    if dominant.numel() == 0:
        return 0.0
    correct = 0
    with torch.no_grad():
        for start in range(0, dominant.numel(), batch_size):
            i, j = dominant[start:start + batch_size], partner[start:start + batch_size]
            mixed = lam * inputs.target_images[i] + (1.0 - lam) * inputs.target_images[j]
            logits = inputs.classify(mixed)
            if not isinstance(logits, Tensor) or logits.shape != (i.numel(), inputs.num_classes):
                shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise DabinError(f"mixval: classify must return ({i.numel()}, {inputs.num_classes}) logits for "
                                 f"{i.numel()} images, got {shape}")
            correct += int((logits.argmax(dim=1).cpu() == pseudo[i]).sum())
    return 100.0 * correct / dominant.numel()


def mixval(inputs: ValidationInputs, *, lam: float = 0.55, seed: int = 0, batch_size: int = 256,
           probes: Literal["both", "intra", "inter"] = "both") -> float:
    """MixVal: how often the model labels mixed target images with the dominant image's pseudo-label.

    The target images get pseudo-labels ``ŷ_i = argmax_c g^t_{ic}`` (from ``target_logits``, which
    must be the same model's logits on ``target_images``, row for row). A probe mixes two target
    images with a fixed ratio and is labelled by its dominant image (``λ > 0.5``):

    .. math::

        \\tilde x = λ x_i + (1 - λ) x_j, \\qquad \\tilde y = ŷ_i, \\qquad
        \\text{ICE} = \\frac{100}{|P|} \\sum_{(i, j) \\in P} [\\arg\\max \\text{classify}(\\tilde x) = ŷ_i].

    Two kinds of probes: **intra-cluster** (``ŷ_i = ŷ_j``: is the pseudo-class region dense?) and
    **inter-cluster** (``ŷ_i ≠ ŷ_j``: is the boundary between the two pseudo-classes where the mix
    ratio puts it?). The score is the mean of the two accuracies,
    ``(ICE_intra + ICE_inter) / 2``.

    Choices, against the paper (Algorithm 1) and its code (``LHXXHB/MixVal``, ``val_mixval_intra.py``
    and ``val_mixval_inter.py``):

    * λ = 0.55, the paper's and the code's default (``--lam 0.55``).
    * Pairing: the code pairs each image with the reversed batch (of a class-sorted list for the
      intra probes, of a shuffled list for the inter probes) and keeps the pairs of the right kind.
      Here every target image is the dominant member of exactly one intra probe (its partner: the
      next image of the same pseudo-class in a random order) and one inter probe (its partner:
      drawn uniformly from the images of the other pseudo-classes), both drawn with a
      ``torch.Generator`` seeded by ``seed``: the same seed gives the same probes, and every image
      probes once of each kind. An image alone in its pseudo-class has no intra probe.
    * Combining: the paper ranks the candidate models by ICE_intra and by ICE_inter and averages
      the two ranks; that needs all candidates at once, while a validator scores one model, so the
      two accuracies are averaged instead (each in [0, 100], equally weighted as the ranks are).
      ``probes="intra"`` or ``"inter"`` returns one accuracy alone, for ranking them separately.
    * A probe kind with no probes (every prediction in one class: no inter probes; every class
      predicted once: no intra probes) scores 0: no mix gave the model a chance to be right. So a
      model that predicts a single class on the target gets at most 50.

    Reference: D. Hu, J. Liang, J. H. Liew, C. Xue, S. Bai, X. Wang, "Mixed Samples as Probes for
    Unsupervised Model Selection in Domain Adaptation", NeurIPS 2023.

    Args:
        inputs: Uses ``target_logits``, ``target_images`` and ``classify``.
        lam: λ, the dominant image's share, in (0.5, 1).
        seed: Seed of the pairing.
        batch_size: Mixed images per ``classify`` call.
        probes: ``"both"`` (MixVal), ``"intra"`` or ``"inter"`` (one ICE score).

    Returns:
        The score in ``[0, 100]``; higher is better.

    Raises:
        DabinError: If ``target_images``/``classify`` are missing, ``lam`` is outside (0.5, 1),
            ``batch_size < 1``, ``probes`` is unknown, or ``classify`` returns the wrong shape.
    """
    if inputs.target_images is None or inputs.classify is None:
        raise DabinError("mixval needs ValidationInputs.target_images and classify, got None")
    if not 0.5 < lam < 1.0:
        raise DabinError(f"mixval: lam must be in (0.5, 1) so that the first image dominates, got {lam}")
    if batch_size < 1:
        raise DabinError(f"mixval: batch_size must be at least 1, got {batch_size}")
    if probes not in ("both", "intra", "inter"):
        raise DabinError(f"mixval: unknown probes {probes!r}; expected one of both, intra, inter")
    pseudo = inputs.target_logits.argmax(dim=1)
    intra_i, intra_j, inter_i, inter_j = _mixval_pairs(pseudo, torch.Generator().manual_seed(seed))
    scores = []
    if probes in ("both", "intra"):
        scores.append(_probe_accuracy(inputs, pseudo, intra_i, intra_j, lam, batch_size))
    if probes in ("both", "inter"):
        scores.append(_probe_accuracy(inputs, pseudo, inter_i, inter_j, lam, batch_size))
    return sum(scores) / len(scores)


#: Validator name → function of :class:`ValidationInputs` (keyword options at their defaults).
VALIDATORS: dict[str, Callable[[ValidationInputs], float]] = {
    "source_val": source_val,
    "entropy": entropy,
    "im": im,
    "snd": snd,
    "bnm": bnm,
    "dev": dev,
    "class_ami": class_ami,
    "mixval": mixval,
}

#: The validator names, in :data:`VALIDATORS` order.
VALIDATOR_NAMES: tuple[str, ...] = tuple(VALIDATORS)


def score_all(inputs: ValidationInputs, names: Iterable[str] = VALIDATOR_NAMES) -> dict[str, float]:
    """Score one model with several validators.

    Args:
        inputs: The model's outputs.
        names: Validators to run, in the order of the result (all of them by default; leave out
            ``mixval`` when ``inputs`` has no ``target_images``/``classify``).

    Returns:
        Validator name → score (higher is better for every one); NaN for a validator not defined on
        these inputs (:class:`UndefinedScore`, e.g. ClassAMI with fewer target samples than classes).

    Raises:
        DabinError: On an unknown name, or a misuse a validator refuses.
    """
    names = tuple(names)
    unknown = [name for name in names if name not in VALIDATORS]
    if unknown:
        raise DabinError(f"unknown validator {unknown[0]!r}; expected one of {', '.join(VALIDATOR_NAMES)}")
    scores = {}
    for name in names:
        try:
            scores[name] = VALIDATORS[name](inputs)
        except UndefinedScore:
            scores[name] = math.nan
    return scores
