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
``mixval_*``   ICE_intra, ICE_inter: accuracy on mixed target images labelled by pseudo-labels
               (Hu et al., NeurIPS 2023; :mod:`dabin.selection.mixval`)
=============  ===============================================================================

MixVal itself is not a score of one model: the paper ranks the candidates by ICE_intra and by
ICE_inter and averages the ranks, which the report does over the candidates it chooses among
(:data:`~dabin.selection.mixval.RANK_COMBINED`).

The survey comparing most of them is K. Musgrave, S. Belongie, S.-N. Lim, "Benchmarking Validation
Methods for Unsupervised Domain Adaptation", arXiv:2208.07360, 2022 (and its library
``pytorch-adapt``, whose validators these follow where a paper leaves a detail open).

Every function is pure and deterministic: the same inputs give the same float. Scalar reductions
run in float64, so float32 inputs do not lose digits in the sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

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
from dabin.selection.inputs import UndefinedScore, ValidationInputs
from dabin.selection.mixval import RANK_COMBINED, mixval_inter, mixval_intra

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
    "RANK_COMBINED",
    "mixval_inter",
    "mixval_intra",
    "score_all",
    "snd",
    "source_val",
]


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

    high when the predictions are both confident and diverse.

    The divisor is ``N_t``, the paper's equation, and the score is that of ``pytorch-adapt``'s
    ``BNMValidator`` (Musgrave et al. 2022; ``src/pytorch_adapt/validators/bnm_validator.py``:
    ``SimpleLossValidator.compute_score`` returns ``-BNMLoss()(target_train["logits"])``, with
    ``BNMLoss`` ``-torch.linalg.norm(softmax(x), "nuc") / x.shape[0]`` over all target logits at
    once); the softmax is taken in float64 here. The training loss
    :class:`dabin.methods.BNMLoss` divides by ``min(B_t, C)`` by default (the authors' code); the
    divisor is the same for every model scored on the same target split, so it does not change
    which model ranks first.

    Reference: S. Cui, S. Wang, J. Zhuo, L. Li, Q. Huang, Q. Tian, "Towards Discriminability and
    Diversity: Batch Nuclear-norm Maximization under Label Insufficient Situations", CVPR 2020.

    Args:
        inputs: Uses ``target_logits``.

    Returns:
        A score in ``(0, sqrt(min(N_t, C) / N_t)]``; higher is better.
    """
    probs = _probs(inputs.target_logits)
    return (torch.linalg.svdvals(probs).sum() / probs.shape[0]).item()


#: ``ε`` added to ``Var(w)`` in DEV's control-variate coefficient ``η``: dabin's guard against
#: (nearly) constant weights; the authors' ``get_dev_risk`` has none (see :func:`dev`).
_DEV_VAR_EPS = 1e-6


def _dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """DEV's control-variate estimate of the target risk from importance weights and source losses.

    With ``w_i`` the importance weights and ``ℓ_i`` the losses of the ``N`` source validation
    samples, and ``L_i = w_i ℓ_i`` the weighted losses (the paper's ``L``):

    .. math::

        η = -\\frac{\\widehat{\\mathrm{Cov}}(L, w)}{\\widehat{\\mathrm{Var}}(w) + ε}, \\qquad
        \\text{risk} = \\bar L + η\\,\\bar w - η,

    with unbiased (``N − 1``) sample (co)variances and ``ε`` = :data:`_DEV_VAR_EPS`. The weights
    are used as given (not normalized). At ``ε = 0`` this is the authors' ``get_dev_risk``
    (``thuml/Deep-Embedded-Validation``, ``dev.py``) term for term.

    Args:
        weights: ``w``, shape ``(N,)``.
        losses: ``ℓ``, shape ``(N,)``.

    Returns:
        The risk; not finite where the weights are not.
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

    3. With ``ℓ_i`` the per-sample cross-entropy of the model on source validation sample ``i``
       and ``L_i = w_i ℓ_i`` the weighted loss, the control variate ``w`` (whose mean is 1 in
       expectation) lowers the estimator's variance (:func:`_dev_risk`):

       .. math::

          η = -\\frac{\\widehat{\\mathrm{Cov}}(L, w)}{\\widehat{\\mathrm{Var}}(w) + 10^{-6}}, \\qquad
          \\text{risk} = \\bar L + η\\,\\bar w - η, \\qquad \\text{score} = -\\text{risk}.

    The references' risk computations, side by side:

    * The authors' ``get_dev_risk`` (``thuml/Deep-Embedded-Validation``, ``dev.py``):
      ``weighted_error = weight * error``; ``cov = np.cov(np.concatenate((weighted_error,
      weight), axis=1), rowvar=False)[0][1]``; ``var_w = np.var(weight, ddof=1)``;
      ``eta = - cov / var_w``; ``return np.mean(weighted_error) + eta * np.mean(weight) - eta``.
      No epsilon, no weight normalization, ``L`` the weighted error; its weights are
      ``get_weight``'s ``domain_out[:,:1] / domain_out[:,1:] * N_s / N_t`` (label 1 = source,
      so column 0 is ``p(target | f)``), the ratio above.
    * ``pytorch-adapt`` (``src/pytorch_adapt/validators/deep_embedded_validator.py``,
      ``get_dev_risk``): the same lines, after ``normalize_weights(weight, normalization)``:
      ``None`` (``DeepEmbeddedValidator``'s default) leaves the weights as they are, ``"max"``
      divides by their maximum and shifts them to mean 1, ``"standardize"`` gives
      ``(w − w̄) / std(w) + 1``; ``compute_score`` returns ``-risk``. It had
      ``eta = -cov / (var_w + 1e-6)`` from v0.0.9 until before v0.0.70 (commit 309a5be3,
      "Remove 1e-6 factor in DEV"), not since.
    * dabin: the authors' lines with ``10⁻⁶`` added to ``Var(w)`` (:data:`_DEV_VAR_EPS`), i.e.
      the older ``pytorch-adapt`` formula, and no weight normalization (``pytorch-adapt``'s
      default). The term is dabin's guard: when the classifier cannot tell the domains apart
      the weights are 1 up to its solver's tolerance, the slope ``η`` of ``L`` on such nearly
      constant weights is noise (and ``0 / 0`` for exactly constant ones, where the authors'
      code returns NaN); it turns the correction off where ``Var(w) ≪ 10⁻⁶`` (the risk is then
      ``mean(L) ≈ mean(ℓ)``) and otherwise scales the authors' ``η`` by
      ``Var(w) / (Var(w) + 10⁻⁶)``.

    Other choices (the paper trains the domain classifier on source *training* features against
    target features, its code picking the regularization on a held-out 20 %, and computes the
    weights on the separate source validation features; only source validation features are
    given here):

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
      up to rounding; the authors' code uses all of ``N_s`` and ``N_t``).
    * ``ℓ_i`` is the cross-entropy (``pytorch-adapt``'s default ``error_fn``; the authors'
      docstring's example, and ``pytorch-adapt``'s ``dev_binary_fn``, is the 0/1 error). The
      weights are not clipped, as in the paper: where the classifier separates the domains
      perfectly they overflow, the risk is not finite and the score is ``−inf`` (the worst), as
      is any non-finite risk.

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


#: Validator name → function of :class:`ValidationInputs` (keyword options at their defaults).
VALIDATORS: dict[str, Callable[[ValidationInputs], float]] = {
    "source_val": source_val,
    "entropy": entropy,
    "im": im,
    "snd": snd,
    "bnm": bnm,
    "dev": dev,
    "class_ami": class_ami,
    "mixval_intra": mixval_intra,
    "mixval_inter": mixval_inter,
}

#: The validator names, in :data:`VALIDATORS` order.
VALIDATOR_NAMES: tuple[str, ...] = tuple(VALIDATORS)


def score_all(inputs: ValidationInputs, names: Iterable[str] = VALIDATOR_NAMES) -> dict[str, float]:
    """Score one model with several validators.

    Args:
        inputs: The model's outputs.
        names: Validators to run, in the order of the result (all of them by default; leave out
            ``mixval_intra``/``mixval_inter`` when ``inputs`` has no ``target_images``/``classify``).

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
