"""Peer checks: dabin's validators against float64 transcriptions of pytorch-adapt's.

Each reference below transcribes, in float64 torch/numpy, the named class of pytorch-adapt
(KevinMusgrave/pytorch-adapt @ 1366df7c020e3fbc4a44f4f35c13cfcc76334868, ``src/pytorch_adapt/``), the
library of Musgrave et al., "Benchmarking Validation Methods for Unsupervised Domain Adaptation"
(arXiv:2208.07360), with the pieces of pytorch-metric-learning it calls
(KevinMusgrave/pytorch-metric-learning @ 216a792c22b0154d3d3bf008a7317edc7d677e71:
``utils/common_functions.py`` ``small_val`` = ``torch.finfo(dtype).tiny``; ``distances/cosine_similarity.py``,
``distances/batched_distance.py``). The AMI is transcribed from its definition (Vinh, Epps & Bailey, JMLR
2010, with scikit-learn's defaults, which pytorch-adapt calls), not from scikit-learn's code.

Inputs are seeded random logits at ``N = 32, C = 10`` and ``N = 8, C = 65`` (fewer samples than classes).
dabin's validators reduce in float64, so they are given float64 inputs and compared at 1e-12.

Conventions mapped: every dabin score is "higher is better", as pytorch-adapt's validators; pytorch-adapt's
``AccuracyValidator`` is a fraction (torchmetrics), dabin's ``source_val`` a percentage.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import gammaln
from sklearn.cluster import KMeans
from torch import Tensor

from dabin.selection import UndefinedScore, ValidationInputs, class_ami, entropy, im, score_all, snd, source_val

DOUBLE = torch.float64
SIZES = [(32, 10), (8, 65)]
SIZE_IDS = ["N32-C10", "N8-C65"]


def _inputs(n: int, c: int, seed: int, *, logit_scale: float = 3.0, d: int = 6,
            target_features: Tensor | None = None, target_logits: Tensor | None = None,
            source_labels: Tensor | None = None) -> ValidationInputs:
    g = torch.Generator().manual_seed(seed)
    source_logits = torch.randn(n, c, generator=g, dtype=DOUBLE) * logit_scale
    if source_labels is None:
        # about half the source predictions right, the rest random labels
        random_labels = torch.randint(0, c, (n,), generator=g)
        right = torch.rand(n, generator=g) < 0.5
        source_labels = torch.where(right, source_logits.argmax(1), random_labels)
    if target_logits is None:
        target_logits = torch.randn(n, c, generator=g, dtype=DOUBLE) * logit_scale
    n_t = target_logits.shape[0]
    if target_features is None:
        target_features = torch.randn(n_t, d, generator=g, dtype=DOUBLE)
    return ValidationInputs(source_logits=source_logits, source_labels=source_labels,
                            source_features=torch.randn(n, target_features.shape[1], generator=g, dtype=DOUBLE),
                            target_logits=target_logits, target_features=target_features)


# --- pytorch-adapt pieces, transcribed ---------------------------------------------------------------

def _small_val(dtype: torch.dtype) -> float:
    """pytorch-metric-learning ``common_functions.small_val``."""
    return torch.finfo(dtype).tiny


def _entropy(logits: Tensor) -> Tensor:
    """pytorch-adapt layers/entropy_loss.py ``entropy``: ``−Σ softmax · log_softmax`` per row."""
    entropies = -torch.sum(torch.softmax(logits, dim=1) * torch.log_softmax(logits, dim=1), dim=1)
    return entropies


def _entropy_after_softmax(preds: Tensor, eps: float | None = None) -> Tensor:
    """pytorch-adapt layers/entropy_loss.py ``entropy_after_softmax``: ``−Σ p log(p + tiny)``."""
    eps = _small_val(preds.dtype) if eps is None else eps
    entropies = -torch.sum(preds * torch.log(preds + eps), dim=1)
    return entropies


def _entropy_loss(logits: Tensor, *, after_softmax: bool = False, return_mean: bool = True) -> Tensor:
    """pytorch-adapt layers/entropy_loss.py ``EntropyLoss.forward``."""
    entropies = _entropy_after_softmax(logits) if after_softmax else _entropy(logits)
    if return_mean:
        return torch.mean(entropies)
    return entropies


def _diversity_loss(logits: Tensor) -> Tensor:
    """pytorch-adapt layers/diversity_loss.py ``DiversityLoss(after_softmax=False).forward``."""
    logits = torch.softmax(logits, dim=1)
    logits = torch.mean(logits, dim=0, keepdim=True)
    return -torch.mean(_entropy_after_softmax(logits))


def _pa_entropy_validator(target_logits: Tensor) -> float:
    """pytorch-adapt validators/entropy_validator.py ``EntropyValidator`` (layer="logits"):
    SimpleLossValidator.compute_score = ``−loss_fn(target_train["logits"])``."""
    return -_entropy_loss(target_logits).item()


def _pa_diversity_validator(target_logits: Tensor) -> float:
    """pytorch-adapt validators/diversity_validator.py ``DiversityValidator`` (layer="logits")."""
    return -_diversity_loss(target_logits).item()


def _pa_im_validator(target_logits: Tensor) -> float:
    """pytorch-adapt validators/im_validator.py ``IMValidator``: MultipleValidators with weights 1 returns
    the sum of the EntropyValidator and DiversityValidator scores."""
    outputs = {"entropy": _pa_entropy_validator(target_logits), "diversity": _pa_diversity_validator(target_logits)}
    weights = {"entropy": 1, "diversity": 1}
    return sum(score * weights[k] for k, score in outputs.items())


def _mask_out_self(sim_mat: Tensor, start_idx: int) -> Tensor:
    """pytorch-adapt utils/common_functions.py ``mask_out_self``."""
    num_rows, num_cols = sim_mat.shape
    mask = torch.ones(num_rows, num_cols, dtype=torch.bool)
    rows = torch.arange(num_rows)
    cols = rows + start_idx
    mask[rows, cols] = False
    sim_mat = sim_mat[mask].view(num_rows, num_cols - 1)
    return sim_mat


def _pa_snd_validator(preds: Tensor, T: float = 0.05, batch_size: int = 1024) -> float:
    """pytorch-adapt validators/snd_validator.py ``SNDValidator(layer="preds", T, batch_size)``.

    ``BatchedDistance(CosineSimilarity(), batch_size)``: query rows in batches of ``batch_size`` against all
    rows, both L2-normalized (``normalize_embeddings=True``), inner product; ``get_iter_fn``: mask out self,
    softmax of ``sim / T``, ``EntropyLoss(after_softmax=True, return_mean=False)``."""
    all_entropies = []
    normalized = F.normalize(preds, p=2, dim=1)

    def fn(sim_mat: Tensor, s: int) -> None:
        sim_mat = _mask_out_self(sim_mat, s)
        sim_mat = F.softmax(sim_mat / T, dim=1)
        all_entropies.append(_entropy_loss(sim_mat, after_softmax=True, return_mean=False))

    n = preds.shape[0]
    for s in range(0, n, batch_size):
        e = s + batch_size
        fn(normalized[s:e] @ normalized.T, s)
    entropies = torch.cat(all_entropies, dim=0)
    assert len(entropies) == len(preds)
    return torch.mean(entropies).item()


def _pa_accuracy_validator(preds: Tensor, labels: Tensor) -> float:
    """pytorch-adapt validators/accuracy_validator.py ``AccuracyValidator`` (layer="preds"): torchmetrics
    ``accuracy(preds, labels)``, micro average: the fraction of rows whose argmax is the label."""
    return (preds.argmax(dim=1) == labels).double().mean().item()


# --- AMI (what pytorch-adapt's ClassClusterValidator scores with: sklearn's default, arithmetic) --------

def _ami(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Adjusted mutual information, arithmetic normalization (Vinh et al. 2010, eq. for AMI_sum and EMI):

    ``AMI = (I − E[I]) / (½ (H(A) + H(B)) − E[I])`` with natural logs and the hypergeometric ``E[I]``;
    1 when both labellings have a single cluster (scikit-learn's convention)."""
    n = len(labels_a)
    ua, a_idx = np.unique(labels_a, return_inverse=True)
    ub, b_idx = np.unique(labels_b, return_inverse=True)
    if len(ua) == len(ub) == 1:
        return 1.0
    table = np.zeros((len(ua), len(ub)))
    for i, j in zip(a_idx, b_idx):
        table[i, j] += 1
    a, b = table.sum(1), table.sum(0)
    mi = sum(table[i, j] / n * math.log(n * table[i, j] / (a[i] * b[j]))
             for i in range(len(a)) for j in range(len(b)) if table[i, j] > 0)
    h_a = -sum(x / n * math.log(x / n) for x in a)
    h_b = -sum(x / n * math.log(x / n) for x in b)
    emi = 0.0
    for ai in a:
        for bj in b:
            for nij in range(max(1, int(ai + bj - n)), int(min(ai, bj)) + 1):
                log_p = (gammaln(ai + 1) + gammaln(bj + 1) + gammaln(n - ai + 1) + gammaln(n - bj + 1)
                         - gammaln(n + 1) - gammaln(nij + 1) - gammaln(ai - nij + 1) - gammaln(bj - nij + 1)
                         - gammaln(n - ai - bj + nij + 1))
                emi += nij / n * math.log(n * nij / (ai * bj)) * math.exp(log_p)
    return (mi - emi) / (0.5 * (h_a + h_b) - emi)


# --- source_val ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "c"), SIZES, ids=SIZE_IDS)
def test_source_val_is_pytorch_adapt_accuracy_in_percent(n: int, c: int) -> None:
    from torchmetrics.functional import accuracy

    inputs = _inputs(n, c, seed=1)
    preds = F.softmax(inputs.source_logits, dim=1)
    expected = _pa_accuracy_validator(preds, inputs.source_labels)
    assert 0.0 < expected < 1.0
    assert source_val(inputs) == pytest.approx(100.0 * expected, rel=1e-12)
    # The torchmetrics call itself (pytorch-adapt's predates torchmetrics' ``task`` argument).
    tm = accuracy(preds, inputs.source_labels, task="multiclass", num_classes=c, average="micro").item()
    assert source_val(inputs) == pytest.approx(100.0 * tm, rel=1e-6)


# --- entropy, IM -----------------------------------------------------------------------------------

@pytest.mark.parametrize("logit_scale", [0.3, 3.0, 30.0])
@pytest.mark.parametrize(("n", "c"), SIZES, ids=SIZE_IDS)
def test_entropy_matches_pytorch_adapt_entropy_validator(n: int, c: int, logit_scale: float) -> None:
    inputs = _inputs(n, c, seed=2, logit_scale=logit_scale)
    expected = _pa_entropy_validator(inputs.target_logits)
    assert expected < 0
    assert entropy(inputs) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("logit_scale", [0.3, 3.0, 30.0])
@pytest.mark.parametrize(("n", "c"), SIZES, ids=SIZE_IDS)
def test_im_matches_pytorch_adapt_im_validator(n: int, c: int, logit_scale: float) -> None:
    # IMValidator = EntropyValidator + DiversityValidator = −mean H(p_i) + H(mean p): dabin's sign.
    inputs = _inputs(n, c, seed=3, logit_scale=logit_scale)
    expected = _pa_im_validator(inputs.target_logits)
    assert im(inputs) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert _pa_diversity_validator(inputs.target_logits) > 0 > _pa_entropy_validator(inputs.target_logits)


# --- SND -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("chunk_size", "batch_size"), [(256, 1024), (5, 7)], ids=["one-chunk", "chunked"])
@pytest.mark.parametrize(("n", "c"), SIZES, ids=SIZE_IDS)
def test_snd_matches_pytorch_adapt_snd_validator(n: int, c: int, chunk_size: int, batch_size: int) -> None:
    # SNDValidator(layer="preds", T=0.05): preds = softmax(logits); self-similarity removed from each row.
    inputs = _inputs(n, c, seed=4)
    preds = F.softmax(inputs.target_logits, dim=1)
    expected = _pa_snd_validator(preds, T=0.05, batch_size=batch_size)
    assert snd(inputs, chunk_size=chunk_size) == pytest.approx(expected, rel=1e-12)
    assert snd(inputs) == pytest.approx(expected, rel=1e-12)
    assert 0.0 < expected < math.log(n - 1)


@pytest.mark.parametrize("temperature", [0.01, 0.5])
def test_snd_temperature_matches_pytorch_adapt(temperature: float) -> None:
    inputs = _inputs(32, 10, seed=5)
    expected = _pa_snd_validator(F.softmax(inputs.target_logits, dim=1), T=temperature, batch_size=9)
    assert snd(inputs, temperature=temperature, chunk_size=4) == pytest.approx(expected, rel=1e-12)


# --- ClassAMI --------------------------------------------------------------------------------------

def test_ami_transcription_agrees_with_known_values() -> None:
    # Guards the transcription used below: identical labellings give 1, renamed ones too.
    a = np.array([0, 0, 1, 1, 2, 2, 2])
    assert _ami(a, a) == pytest.approx(1.0)
    assert _ami(a, (a + 1) % 3) == pytest.approx(1.0)
    assert _ami(a, np.array([0, 1, 0, 1, 0, 1, 0])) < 0.1


def test_class_ami_separated_clusters_matches_pytorch_adapt() -> None:
    # ClassClusterValidator (layer="features", score_fn=adjusted_mutual_info_score, no PCA, no source):
    # AMI(argmax target logits, k-means with C clusters). With 10 far-apart blobs every k-means run finds the
    # blobs, so the reference uses the blob ids as the cluster labels.
    c, n = 10, 32
    g = torch.Generator().manual_seed(6)
    blob = torch.arange(n) % c
    centres = 50.0 * torch.randn(c, 8, generator=g, dtype=DOUBLE)
    features = centres[blob] + 0.1 * torch.randn(n, 8, generator=g, dtype=DOUBLE)
    # predictions: the blob id renamed, with a quarter of them replaced by random classes
    predicted = torch.randperm(c, generator=g)[blob]
    noisy = torch.rand(n, generator=g) < 0.25
    predicted = torch.where(noisy, torch.randint(0, c, (n,), generator=g), predicted)
    logits = 4.0 * F.one_hot(predicted, c).double() + 0.1 * torch.randn(n, c, generator=g, dtype=DOUBLE)
    inputs = _inputs(n, c, seed=6, target_features=features, target_logits=logits)
    expected = _ami(predicted.numpy(), blob.numpy())
    assert 0.2 < expected < 1.0
    assert class_ami(inputs) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", [7, 8])
def test_class_ami_random_features_matches_the_transcribed_ami(seed: int) -> None:
    # Unseparated features: k-means is run here with dabin's settings (k = C, n_init=10, random_state=0);
    # pytorch-adapt's KMeans(n_clusters=C) uses scikit-learn's defaults, unseeded, so only the AMI of the same
    # cluster assignment is comparable.
    inputs = _inputs(32, 10, seed=seed, d=4)
    clusters = KMeans(n_clusters=10, n_init=10, random_state=0).fit_predict(inputs.target_features.numpy())
    expected = _ami(inputs.target_logits.argmax(1).numpy(), clusters)
    assert class_ami(inputs) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_class_ami_with_fewer_samples_than_classes_is_undefined_as_in_pytorch_adapt() -> None:
    # N = 8 < C = 65: pytorch-adapt's KMeans(n_clusters=65).fit raises; dabin raises UndefinedScore,
    # which score_all records as NaN.
    inputs = _inputs(8, 65, seed=9)
    with pytest.raises(ValueError):
        KMeans(n_clusters=65).fit(inputs.target_features.numpy())
    with pytest.raises(UndefinedScore):
        class_ami(inputs)
    assert math.isnan(score_all(inputs, ["class_ami"])["class_ami"])
