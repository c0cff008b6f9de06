"""Peer checks: dabin's adaptation losses against float64 transcriptions of the published code.

Each reference below is a transcription, in float64 torch, of the named function of a published
implementation, written here without importing dabin's code; the tests compare dabin's value (and,
for the adversarial methods, the gradients it sends to the features and to its own head) with it on
seeded random inputs, at a batch above the class count (B = 32, C = 10) and one below (B = 8,
C = 65, where D·C > 4096 also switches CDAN to its randomized map).

Sources (commits of the mirrored snapshots):

* tllib: thuml/Transfer-Learning-Library @ c4aa59eb565650a552b809411601d0589efbbfe4
  (``tllib/modules/grl.py``, ``tllib/alignment/dann.py``, ``tllib/alignment/cdan.py``,
  ``tllib/alignment/mdd.py``, ``tllib/alignment/dan.py``, ``tllib/modules/kernels.py``,
  ``tllib/modules/entropy.py``, ``tllib/self_training/mcc.py``).
* thuml/CDAN @ c904cd3f2fe092bb5175be1c5b6e42fa2036dece (``pytorch/loss.py``, ``CDAN``): the
  authors' CDAN+E weighting.
* pytorch-adapt: KevinMusgrave/pytorch-adapt @ 1366df7c020e3fbc4a44f4f35c13cfcc76334868
  (``src/pytorch_adapt/layers/utils.py``, ``get_mmd_quadratic``): the unbiased MMD with unequal
  batches, which tllib's DAN does not allow.

Conventions mapped, not changed:

* Domain discriminator: dabin's has two logits ``z`` and labels source 0, target 1 (cross-entropy);
  tllib's sigmoid discriminator outputs ``D = P(source)`` with labels source 1, target 0 (BCE). With
  ``D = softmax(z)[:, 0] = sigmoid(z_0 − z_1)`` the two losses are the same function, so the
  reference receives ``D`` computed that way from dabin's head (a label swap in dabin breaks it).
  tllib's two-logit branch (``sigmoid=False``) labels source 1: its logits are ``z`` flipped.
* Gradient reversal schedule: tllib's ``WarmStartGradientReverseLayer`` at iteration ``i`` of
  ``max_iters`` with ``lo = 0`` is dabin's ``λ_p`` at ``p = i / max_iters`` with ``γ = alpha`` and
  ``λ_max = hi``.

Where a convention differs for real (a documented choice of dabin), a test marked
``xfail(strict=True)`` compares with the literal reference and states the difference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.methods import CDANELoss, CDANLoss, DANLoss, DANNLoss, MCCLoss, MDDLoss, StepOutputs
from dabin.methods.cdan import entropy_weights
from dabin.methods.dann import grl_lambda
from dabin.nn.grl import GradientReversal, gradient_reversal

DOUBLE = torch.float64
#: (B_s, B_t, D, C): a batch above the class count, one below it (D·C = 4160 > 4096: randomized CDAN).
SHAPES = [(32, 32, 16, 10), (8, 8, 64, 65)]
SHAPE_IDS = ["B32-C10", "B8-C65"]


# --- inputs -----------------------------------------------------------------------------------------

def _randn(g: torch.Generator, *shape: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    return torch.randn(*shape, generator=g) * scale + shift


def _leaf(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x.detach().to(dtype).clone().requires_grad_(True)


def _outputs(seed: int, n_s: int, n_t: int, d: int, c: int, progress: float, *, dtype: torch.dtype = DOUBLE,
             logit_scale: float = 2.0, target_shift: float = 0.0) -> tuple[StepOutputs, StepOutputs]:
    """The same random step outputs twice: in ``dtype`` for dabin and in float64 for the reference."""
    g = torch.Generator().manual_seed(seed)
    values = (_randn(g, n_s, d), _randn(g, n_t, d, shift=target_shift),
              _randn(g, n_s, c, scale=logit_scale), _randn(g, n_t, c, scale=logit_scale))
    return (StepOutputs(*(_leaf(v, dtype) for v in values), progress),
            StepOutputs(*(_leaf(v, DOUBLE) for v in values), progress))


def _fill_head(head: nn.Sequential, seed: int, last_scale: float = 1.0) -> list[Tensor]:
    """Give a Linear-ReLU-Dropout-Linear head seeded weights (~1/sqrt(fan_in)); returns float64 copies."""
    g = torch.Generator().manual_seed(seed)
    copies = []
    for layer, scale in ((head[0], 1.0), (head[3], last_scale)):
        fan_in = layer.weight.shape[1]
        for param in (layer.weight, layer.bias):
            value = torch.randn(param.shape, generator=g) * scale / math.sqrt(fan_in)
            with torch.no_grad():
                param.copy_(value.to(param.dtype))
            copies.append(param.detach().to(DOUBLE).clone().requires_grad_(True))
    return copies


def _head64(params: list[Tensor], x: Tensor) -> Tensor:
    """The head in float64 (dropout 0): ``Linear → ReLU → Linear``."""
    w1, b1, w2, b2 = params
    return F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)


def _head_grads(head: nn.Sequential) -> list[Tensor]:
    return [p.grad.to(DOUBLE) for p in (head[0].weight, head[0].bias, head[3].weight, head[3].bias)]


def _no_gradient(t: Tensor) -> bool:
    return t.grad is None or torch.count_nonzero(t.grad).item() == 0


def _assert_close(actual: Tensor, expected: Tensor, rel: float, what: str) -> None:
    actual, expected = actual.detach().to(DOUBLE), expected.detach().to(DOUBLE)
    err = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= rel * scale, f"{what}: max abs error {err:.3g} > {rel:g} × {scale:.3g}"


# --- tllib/modules/grl.py ---------------------------------------------------------------------------

class _TllibGradientReverseFunction(torch.autograd.Function):
    """tllib/modules/grl.py, ``GradientReverseFunction``."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, coeff: float = 1.0) -> Tensor:  # type: ignore[override]
        ctx.coeff = coeff
        output = input * 1.0
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad_output.neg() * ctx.coeff, None


def _tllib_grl(x: Tensor, coeff: float) -> Tensor:
    return _TllibGradientReverseFunction.apply(x, coeff)


def _tllib_warm_start_coeff(iter_num: float, *, alpha: float, lo: float, hi: float, max_iters: float) -> float:
    """tllib/modules/grl.py, ``WarmStartGradientReverseLayer.forward``: the coefficient at ``iter_num``."""
    return float(2.0 * (hi - lo) / (1.0 + np.exp(-alpha * iter_num / max_iters)) - (hi - lo) + lo)


# --- shared tllib pieces ----------------------------------------------------------------------------

def _binary_cross_entropy(d: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """``F.binary_cross_entropy(d, target, weight, reduction='mean')`` as torch defines it (tllib calls it):
    ``−w (y log d + (1 − y) log(1 − d))`` with the logs clamped at −100, averaged over the elements."""
    log_d = torch.clamp(torch.log(d), min=-100.0)
    log_1m = torch.clamp(torch.log(1.0 - d), min=-100.0)
    loss = -(target * log_d + (1.0 - target) * log_1m)
    if weight is not None:
        loss = loss * weight
    return loss.mean()


def _cross_entropy_none(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-row ``F.cross_entropy(..., reduction='none')``: ``logsumexp(z) − z_y``."""
    return torch.logsumexp(logits, dim=1) - logits.gather(1, labels[:, None])[:, 0]


def _tllib_entropy(predictions: Tensor, eps: float = 1e-5) -> Tensor:
    """tllib/modules/entropy.py, ``entropy(reduction='none')``: ``−Σ p log(p + ε)``, ε = 1e-5.

    ``eps=0`` gives the exact entropy (the papers' ``H``, which dabin uses)."""
    H = -predictions * torch.log(predictions + eps)
    return H.sum(dim=1)


def _p_source(z: Tensor) -> Tensor:
    """tllib's sigmoid discriminator output ``D = P(source)`` from dabin's two domain logits (source = 0)."""
    return torch.sigmoid(z[:, 0] - z[:, 1])[:, None]


# --- GRL and λ_p -----------------------------------------------------------------------------------

@pytest.mark.parametrize("hi", [1.0, 0.1])
def test_lambda_schedule_matches_tllib_warm_start(hi: float) -> None:
    # tllib/modules/grl.py WarmStartGradientReverseLayer with alpha = γ = 10, lo = 0, hi = λ_max.
    for i in (0, 1, 37, 250, 500, 999, 1000):
        expected = _tllib_warm_start_coeff(i, alpha=10.0, lo=0.0, hi=hi, max_iters=1000)
        assert grl_lambda(i / 1000, 10.0, hi) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    for method, lam_max in ((DANNLoss(4, 3), 1.0), (CDANLoss(4, 3), 1.0), (CDANELoss(4, 3), 1.0), (MDDLoss(4, 3), 0.1)):
        if lam_max != hi:
            continue
        for p in (0.0, 0.05, 0.5, 1.0):
            expected = _tllib_warm_start_coeff(p * 1000, alpha=10.0, lo=0.0, hi=hi, max_iters=1000)
            assert method.current_lambda(p) == pytest.approx(expected, rel=1e-12, abs=1e-15), type(method).__name__


def test_tllib_default_iteration_schedule_is_dabins_with_gamma_20() -> None:
    # tllib's DomainAdversarialLoss / ConditionalDomainAdversarialLoss default GRL:
    # WarmStartGradientReverseLayer(alpha=1., lo=0., hi=1., max_iters=1000, auto_step=True), stepped once per
    # iteration of the examples' 20 epochs × 1000 iterations: alpha · i / max_iters = 20 p.
    total = 20 * 1000
    for i in (0, 10, 500, 1000, 5000, 20000):
        expected = _tllib_warm_start_coeff(i, alpha=1.0, lo=0.0, hi=1.0, max_iters=1000)
        assert grl_lambda(i / total, 20.0, 1.0) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("step", [0, 1, 100, 500, 1000])
def test_gradient_reversal_matches_tllib_forward_and_backward(step: int) -> None:
    coeff = _tllib_warm_start_coeff(step, alpha=10.0, lo=0.0, hi=1.0, max_iters=1000)
    g = torch.Generator().manual_seed(step)
    x = _randn(g, 6, 5)
    upstream = _randn(g, 6, 5)
    x_ref = _leaf(x, DOUBLE)
    out_ref = _tllib_grl(x_ref, coeff)
    out_ref.backward(upstream.double())
    assert x_ref.grad is not None
    layer = GradientReversal()
    layer.set_coeff(grl_lambda(step / 1000, 10.0, 1.0))
    for forward in (lambda t: gradient_reversal(t, grl_lambda(step / 1000, 10.0, 1.0)), layer):
        x_d = _leaf(x, torch.float32)
        out = forward(x_d)
        assert torch.equal(out.detach(), x)  # identity forward
        out.backward(upstream)
        assert x_d.grad is not None
        # dabin keeps λ as a float32 tensor: agreement to float32 rounding.
        _assert_close(x_d.grad, x_ref.grad, 1e-6, "reversed gradient")
        if coeff > 0:
            assert torch.all(torch.sign(x_d.grad) == -torch.sign(upstream))


# --- DANN: tllib/alignment/dann.py, DomainAdversarialLoss -------------------------------------------

def _tllib_dann_sigmoid(d: Tensor) -> Tensor:
    """``DomainAdversarialLoss.forward`` with ``sigmoid=True``, ``reduction='mean'``, no instance weights."""
    d_s, d_t = d.chunk(2, dim=0)
    d_label_s = torch.ones((d_s.size(0), 1), dtype=d.dtype)
    d_label_t = torch.zeros((d_t.size(0), 1), dtype=d.dtype)
    w_s, w_t = torch.ones_like(d_label_s), torch.ones_like(d_label_t)
    return 0.5 * (_binary_cross_entropy(d_s, d_label_s, w_s.view_as(d_s))
                  + _binary_cross_entropy(d_t, d_label_t, w_t.view_as(d_t)))


def _tllib_dann_two_logits(d: Tensor, n_s: int, n_t: int) -> Tensor:
    """``DomainAdversarialLoss.forward`` with ``sigmoid=False``, ``reduction='mean'``: CE, source label 1."""
    d_label = torch.cat((torch.ones((n_s,)), torch.zeros((n_t,)))).long()
    w = torch.ones(n_s + n_t, dtype=d.dtype)
    return (_cross_entropy_none(d, d_label) * w).mean()


def _dann_case(n_s: int, n_t: int, d: int, progress: float, seed: int, branch: str) -> None:
    loss_fn = DANNLoss(d, 2, hidden_dim=32, dropout=0.0).double()
    params = _fill_head(loss_fn.discriminator, seed)
    out, ref = _outputs(seed, n_s, n_t, d, 2, progress, target_shift=0.3)
    loss, logs = loss_fn(out)
    loss.backward()
    coeff = _tllib_warm_start_coeff(progress, alpha=10.0, lo=0.0, hi=1.0, max_iters=1.0)
    z = _head64(params, _tllib_grl(torch.cat((ref.features_s, ref.features_t)), coeff))
    expected = _tllib_dann_sigmoid(_p_source(z)) if branch == "sigmoid" else _tllib_dann_two_logits(z.flip(1), n_s, n_t)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert logs["lambda"] == pytest.approx(coeff, rel=1e-12)
    for actual, wanted, name in ((out.features_s.grad, ref.features_s.grad, "source features"),
                                 (out.features_t.grad, ref.features_t.grad, "target features")):
        _assert_close(actual, wanted, 1e-6, name)
    for actual, wanted in zip(_head_grads(loss_fn.discriminator), (p.grad for p in params)):
        _assert_close(actual, wanted, 1e-10, "discriminator")


@pytest.mark.parametrize(("n_s", "n_t", "d", "c"), SHAPES, ids=SHAPE_IDS)
def test_dann_matches_tllib_sigmoid_discriminator(n_s: int, n_t: int, d: int, c: int) -> None:
    # Equal batches: tllib's default branch, ½ (BCE_source + BCE_target), through GRL(λ_p).
    _dann_case(n_s, n_t, d, progress=0.3, seed=1, branch="sigmoid")


def test_dann_unequal_batches_match_tllib_two_logit_branch() -> None:
    # tllib's sigmoid branch splits the batch with d.chunk(2), so it runs only with B_s = B_t; its
    # two-logit branch averages the cross-entropy over all B_s + B_t samples, as dabin does.
    _dann_case(32, 8, 16, progress=0.6, seed=2, branch="two_logits")


# --- CDAN: tllib/alignment/cdan.py ------------------------------------------------------------------

def _tllib_multilinear_map(f: Tensor, g: Tensor) -> Tensor:
    """``MultiLinearMap.forward``."""
    batch_size = f.size(0)
    output = torch.bmm(g.unsqueeze(2), f.unsqueeze(1))
    return output.view(batch_size, -1)


def _tllib_randomized_map(f: Tensor, g: Tensor, Rf: Tensor, Rg: Tensor, output_dim: int) -> Tensor:
    """``RandomizedMultiLinearMap.forward`` (``Rf (features_dim, output_dim)``, ``Rg (num_classes, output_dim)``)."""
    f = torch.mm(f, Rf)
    g = torch.mm(g, Rg)
    output = torch.mul(f, g) / np.sqrt(float(output_dim))
    return output


def _tllib_cdan(g_s: Tensor, f_s: Tensor, g_t: Tensor, f_t: Tensor, params: list[Tensor], coeff: float, *,
                entropy_conditioning: bool, random: tuple[Tensor, Tensor] | None, eps: float = 1e-5) -> Tensor:
    """``ConditionalDomainAdversarialLoss.forward`` with ``sigmoid=True``, ``reduction='mean'``.

    The discriminator is dabin's head read as ``D = P(source)`` (see the module docstring)."""
    f = torch.cat((f_s, f_t), dim=0)
    g = torch.cat((g_s, g_t), dim=0)
    g = F.softmax(g, dim=1).detach()
    if random is None:
        mapped = _tllib_multilinear_map(f, g)
    else:
        mapped = _tllib_randomized_map(f, g, *random, random[0].shape[1])
    h = _tllib_grl(mapped, coeff)
    d = _p_source(_head64(params, h))
    weight = 1.0 + torch.exp(-_tllib_entropy(g, eps))
    batch_size = f.size(0)
    weight = weight / torch.sum(weight) * batch_size
    d_label = torch.cat((torch.ones((g_s.size(0), 1)), torch.zeros((g_t.size(0), 1)))).to(d.dtype)
    if entropy_conditioning:
        return _binary_cross_entropy(d, d_label, weight.view_as(d))
    return _binary_cross_entropy(d, d_label)


def _thuml_cdan_e(f: Tensor, softmax_output: Tensor, params: list[Tensor], coeff: float, *,
                  random: tuple[Tensor, Tensor] | None, eps: float = 1e-5) -> Tensor:
    """thuml/CDAN, pytorch/loss.py, ``CDAN(input_list, ad_net, entropy=Entropy(softmax_out), coeff, random_layer)``.

    Forward value only (the ``grl_hook`` on the entropy is a backward hook; dabin sends no gradient
    through the weights). The authors' random layer is ``(f R_f) ⊙ (g R_g) / output_dim^{1/2}`` as in
    tllib; equal halves: ``batch_size = softmax_output.size(0) // 2``."""
    softmax_output = softmax_output.detach()
    if random is None:
        op_out = torch.bmm(softmax_output.unsqueeze(2), f.unsqueeze(1))
        ad_in = op_out.view(-1, softmax_output.size(1) * f.size(1))
    else:
        ad_in = _tllib_randomized_map(f, softmax_output, *random, random[0].shape[1])
    ad_out = _p_source(_head64(params, _tllib_grl(ad_in, coeff)))
    batch_size = softmax_output.size(0) // 2
    dc_target = torch.tensor([[1.0]] * batch_size + [[0.0]] * batch_size, dtype=DOUBLE)
    entropy = -softmax_output * torch.log(softmax_output + eps)  # Entropy(input_)
    entropy = 1.0 + torch.exp(-torch.sum(entropy, dim=1))
    source_mask = torch.ones_like(entropy)
    source_mask[f.size(0) // 2:] = 0
    source_weight = entropy * source_mask
    target_mask = torch.ones_like(entropy)
    target_mask[0:f.size(0) // 2] = 0
    target_weight = entropy * target_mask
    weight = source_weight / torch.sum(source_weight).item() + target_weight / torch.sum(target_weight).item()
    bce = -(dc_target * torch.log(ad_out) + (1 - dc_target) * torch.log(1 - ad_out))  # nn.BCELoss(reduction='none')
    return torch.sum(weight.view(-1, 1) * bce) / torch.sum(weight).item()


def _random_matrices(loss_fn: CDANLoss) -> tuple[Tensor, Tensor] | None:
    return (loss_fn.random_f.to(DOUBLE), loss_fn.random_g.to(DOUBLE)) if loss_fn.randomized else None


@pytest.mark.parametrize(("n_s", "n_t", "d", "c"), SHAPES, ids=SHAPE_IDS)
def test_cdan_maps_match_tllib(n_s: int, n_t: int, d: int, c: int) -> None:
    loss_fn = CDANLoss(d, c, hidden_dim=8, dropout=0.0).double()
    assert loss_fn.randomized == (d * c > 4096)
    g = torch.Generator().manual_seed(3)
    f = _randn(g, n_s, d).double()
    p = F.softmax(_randn(g, n_s, c, scale=2.0).double(), dim=1)
    mapped = loss_fn.conditioning_map(f, p)
    if loss_fn.randomized:
        rf, rg = _random_matrices(loss_fn)  # type: ignore[misc]
        assert rf.shape == (d, 1024) and rg.shape == (c, 1024)  # tllib's default output_dim, 1024
        expected = _tllib_randomized_map(f, p, rf, rg, 1024)
    else:
        expected = _tllib_multilinear_map(f, p)
    assert mapped.shape == expected.shape
    _assert_close(mapped, expected, 1e-12, "conditioning map")


def test_cdan_threshold_is_the_papers_4096() -> None:
    # The paper: the multilinear map when d_f × d_g ≤ 4096 (tllib leaves the choice to a flag).
    assert not CDANLoss(64, 64, hidden_dim=4).randomized
    assert CDANLoss(64, 65, hidden_dim=4).randomized
    assert CDANLoss(4097, 1, hidden_dim=4).randomized


@pytest.mark.parametrize("shape", [*SHAPES, (32, 24, 16, 10)], ids=[*SHAPE_IDS, "B32x24-C10"])
def test_cdan_matches_tllib(shape: tuple[int, int, int, int]) -> None:
    # tllib's CDAN (no entropy conditioning) averages the BCE over all B_s + B_t samples, as dabin does,
    # also with unequal batches.
    n_s, n_t, d, c = shape
    loss_fn = CDANLoss(d, c, hidden_dim=32, dropout=0.0).double()
    params = _fill_head(loss_fn.discriminator, 4)
    out, ref = _outputs(4, n_s, n_t, d, c, progress=0.4)
    loss, logs = loss_fn(out)
    loss.backward()
    coeff = _tllib_warm_start_coeff(0.4, alpha=10.0, lo=0.0, hi=1.0, max_iters=1.0)
    expected = _tllib_cdan(ref.logits_s, ref.features_s, ref.logits_t, ref.features_t, params, coeff,
                           entropy_conditioning=False, random=_random_matrices(loss_fn))
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert logs["lambda"] == pytest.approx(coeff, rel=1e-12)
    _assert_close(out.features_s.grad, ref.features_s.grad, 1e-6, "source features")
    _assert_close(out.features_t.grad, ref.features_t.grad, 1e-6, "target features")
    assert _no_gradient(out.logits_s) and _no_gradient(out.logits_t)  # p detached
    for actual, wanted in zip(_head_grads(loss_fn.discriminator), (p.grad for p in params)):
        _assert_close(actual, wanted, 1e-10, "discriminator")


@pytest.mark.parametrize("c", [10, 65])
def test_cdan_entropy_weights_match_tllib_with_exact_entropy(c: int) -> None:
    # tllib: weight = 1 + exp(−entropy(g)); with ε = 0 (the paper's H) the same function as dabin's.
    g = torch.Generator().manual_seed(5)
    probs = F.softmax(_randn(g, 32, c, scale=3.0), dim=1)
    expected = 1.0 + torch.exp(-_tllib_entropy(probs.double(), eps=0.0))
    _assert_close(entropy_weights(probs), expected, 1e-6, "entropy weights")


@pytest.mark.parametrize(("n_s", "n_t", "d", "c"), SHAPES, ids=SHAPE_IDS)
def test_cdan_e_matches_the_authors_weighting_for_equal_batches(n_s: int, n_t: int, d: int, c: int) -> None:
    # thuml/CDAN pytorch/loss.py CDAN: each domain's weights normalized to sum 1, the weighted BCE sum divided
    # by the total weight. Compared with the exact entropy (ε = 0); the authors' ε = 1e-5 in Entropy() moves
    # the weights by about C·1e-5·exp(−H)/(1+exp(−H)) relative, below this check's 1e-6 only for ε = 0.
    loss_fn = CDANELoss(d, c, hidden_dim=32, dropout=0.0).double()
    params = _fill_head(loss_fn.discriminator, 6)
    out, ref = _outputs(6, n_s, n_t, d, c, progress=0.7, logit_scale=3.0)
    loss, _ = loss_fn(out)
    loss.backward()
    coeff = _tllib_warm_start_coeff(0.7, alpha=10.0, lo=0.0, hi=1.0, max_iters=1.0)
    f = torch.cat((ref.features_s, ref.features_t))
    softmax_out = F.softmax(torch.cat((ref.logits_s, ref.logits_t)), dim=1)
    expected = _thuml_cdan_e(f, softmax_out, params, coeff, random=_random_matrices(loss_fn), eps=0.0)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)  # dabin's weights are float32
    _assert_close(torch.cat((out.features_s.grad, out.features_t.grad)), torch.cat((ref.features_s.grad,
                  ref.features_t.grad)), 1e-6, "features")


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "Convention differs (documented in CDANLoss): tllib's ConditionalDomainAdversarialLoss normalizes the CDAN+E "
    "weights over both domains together (w / Σ_{S∪T} w · (B_s+B_t)), dabin within each domain "
    "(B_s w / Σ_S w on the source, likewise on the target, as the authors' thuml/CDAN); tllib also uses "
    "ε = 1e-5 inside the entropy's log (negligible here). On these inputs dabin is 2.7 % (B32-C10) and 8.5 % "
    "(B32x8-C65) above tllib."))
@pytest.mark.parametrize("shape", [(32, 32, 16, 10), (32, 8, 64, 65)], ids=["B32-C10", "B32x8-C65"])
def test_cdan_e_matches_tllib_literally(shape: tuple[int, int, int, int]) -> None:
    n_s, n_t, d, c = shape
    loss_fn = CDANELoss(d, c, hidden_dim=32, dropout=0.0).double()
    params = _fill_head(loss_fn.discriminator, 7)
    out, ref = _outputs(7, n_s, n_t, d, c, progress=0.7, logit_scale=3.0)
    with torch.no_grad():  # confident source, hesitant target: the domains' weight sums differ
        for t in (out.logits_s, ref.logits_s):
            t.mul_(3.0)
    loss, _ = loss_fn(out)
    coeff = _tllib_warm_start_coeff(0.7, alpha=10.0, lo=0.0, hi=1.0, max_iters=1.0)
    expected = _tllib_cdan(ref.logits_s, ref.features_s, ref.logits_t, ref.features_t, params, coeff,
                           entropy_conditioning=True, random=_random_matrices(loss_fn), eps=1e-5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# --- MDD: tllib/alignment/mdd.py, ClassificationMarginDisparityDiscrepancy ----------------------------

def _tllib_shift_log(x: Tensor, offset: float = 1e-6) -> Tensor:
    """``shift_log``: ``log(clamp(x + offset, max=1))``."""
    return torch.log(torch.clamp(x + offset, max=1.0))


def _tllib_mdd(y_s: Tensor, y_s_adv: Tensor, y_t: Tensor, y_t_adv: Tensor, margin: float = 4.0,
               offset: float = 1e-6) -> Tensor:
    """``ClassificationMarginDisparityDiscrepancy(margin).forward`` (``MarginDisparityDiscrepancy.forward``,
    ``reduction='mean'``, no instance weights). ``offset`` is ``shift_log``'s (1e-6 in tllib)."""
    _, prediction_s = y_s.max(dim=1)
    source_loss = -margin * _cross_entropy_none(y_s_adv, prediction_s)  # -margin * source_disparity
    _, prediction_t = y_t.max(dim=1)
    shifted = _tllib_shift_log(1.0 - F.softmax(y_t_adv, dim=1), offset)
    target_loss = shifted.gather(1, prediction_t[:, None])[:, 0]  # -F.nll_loss(shift_log(...), prediction)
    source_loss = source_loss * torch.ones_like(source_loss)
    target_loss = target_loss * torch.ones_like(target_loss)
    loss = source_loss + target_loss  # broadcast: B_s = B_t
    return loss.mean()


def _tllib_mdd_docstring(y_s: Tensor, y_s_adv: Tensor, y_t: Tensor, y_t_adv: Tensor, margin: float = 4.0) -> Tensor:
    """The class docstring's ``D_γ = γ E_S log softmax(y_adv^s)[h(y^s)] + E_T log(1 − softmax(y_adv^t)[h(y^t)])``,
    each expectation over its own domain (the code's ``source_loss + target_loss`` needs B_s = B_t)."""
    log_p_s = F.log_softmax(y_s_adv, dim=1).gather(1, y_s.argmax(1)[:, None])[:, 0]
    p_t = F.softmax(y_t_adv, dim=1).gather(1, y_t.argmax(1)[:, None])[:, 0]
    return margin * log_p_s.mean() + torch.log(1.0 - p_t).mean()


def _mdd_case(n_s: int, n_t: int, d: int, c: int, seed: int, reference: str, offset: float = 1e-6) -> None:
    loss_fn = MDDLoss(d, c, hidden_dim=32, dropout=0.0)
    params = _fill_head(loss_fn.adversarial_head, seed)
    out, ref = _outputs(seed, n_s, n_t, d, c, progress=0.5, dtype=torch.float32)
    loss, logs = loss_fn(out)
    loss.backward()
    coeff = _tllib_warm_start_coeff(0.5, alpha=10.0, lo=0.0, hi=0.1, max_iters=1.0)  # GeneralModule's hi=0.1
    adv = _head64(params, _tllib_grl(torch.cat((ref.features_s, ref.features_t)), coeff))
    args = (ref.logits_s, adv[:n_s], ref.logits_t, adv[n_s:])
    mdd = _tllib_mdd(*args, offset=offset) if reference == "code" else _tllib_mdd_docstring(*args)
    transfer_loss = -mdd  # examples/domain_adaptation/image_classification/mdd.py: transfer_loss = -mdd(...)
    transfer_loss.backward()
    assert logs["lambda"] == pytest.approx(coeff, rel=1e-12)
    assert loss.item() == pytest.approx(transfer_loss.item(), rel=1e-6)
    _assert_close(torch.cat((out.features_s.grad, out.features_t.grad)),
                  torch.cat((ref.features_s.grad, ref.features_t.grad)), 2e-6, "features")
    for actual, wanted in zip(_head_grads(loss_fn.adversarial_head), (p.grad for p in params)):
        _assert_close(actual, wanted, 2e-6, "adversarial head")
    assert _no_gradient(out.logits_s) and _no_gradient(out.logits_t)  # ŷ = argmax: constants


@pytest.mark.parametrize(("n_s", "n_t", "d", "c"), SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("offset", [1e-6, 0.0], ids=["tllib-offset", "exact-log"])
def test_mdd_matches_tllib(n_s: int, n_t: int, d: int, c: int, offset: float) -> None:
    # dabin's loss is tllib's transfer_loss = −mdd(y_s, y_s_adv, y_t, y_t_adv) with γ = 4, through GRL with
    # hi = 0.1. At unsaturated adversarial outputs shift_log's 1e-6 moves the value by ~1e-6/(1 − p') on a
    # target term, below the tolerance; with offset 0 the two are the same function.
    _mdd_case(n_s, n_t, d, c, seed=8, reference="code", offset=offset)


def test_mdd_unequal_batches_match_tllib_definition() -> None:
    _mdd_case(32, 8, 16, 10, seed=9, reference="docstring")


def _saturated_mdd() -> tuple[MDDLoss, StepOutputs, StepOutputs, Tensor]:
    """MDD inputs where the adversarial head agrees with the main prediction on the target with p' ≈ 1."""
    n, d, c = 8, 16, 10
    loss_fn = MDDLoss(d, c, hidden_dim=32, dropout=0.0)
    params = _fill_head(loss_fn.adversarial_head, 10, last_scale=300.0)  # adversarial logits ~100 apart
    out, ref = _outputs(10, n, n, d, c, progress=0.5, dtype=torch.float32)
    adv = _head64(params, torch.cat((ref.features_s, ref.features_t))).detach()
    with torch.no_grad():  # main predictions = the adversarial head's on the target: p'[ŷ] ≈ 1
        out.logits_t.copy_(adv[n:].float())
        ref.logits_t.copy_(adv[n:])
    return loss_fn, out, ref, adv


def test_mdd_saturated_target_is_the_exact_log() -> None:
    # The inputs of the xfail below: every target row has 1 − p'[ŷ] < 1e-6, where shift_log's offset
    # dominates; dabin keeps the exact −log(1 − p') = logsumexp(z) − logsumexp_{j≠ŷ} z_j (the definition in
    # tllib's docstring, computed without cancellation).
    loss_fn, out, ref, adv = _saturated_mdd()
    n = out.features_s.shape[0]
    top2 = adv[n:].topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1]).min() > -math.log(1e-6) + 5  # 1 − p' < e^-5 · 1e-6 on every row
    loss, _ = loss_fn(out)
    y_t = ref.logits_t.argmax(1)
    others = adv[n:].masked_fill(F.one_hot(y_t, adv.shape[1]).bool(), float("-inf"))
    exact_target = (torch.logsumexp(adv[n:], 1) - torch.logsumexp(others, 1)).mean()
    exact_source = _cross_entropy_none(adv[:n], ref.logits_s.argmax(1)).mean()
    assert loss.item() == pytest.approx(4.0 * exact_source.item() + exact_target.item(), rel=1e-6)
    assert exact_target.item() > 2 * -math.log(1e-6)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "Convention differs (documented in MDDLoss): tllib's shift_log computes log(clamp(1 − p' + 1e-6, max=1)), "
    "so its target term −log(1 − p') saturates at −log(1e-6) ≈ 13.8 when the adversarial head agrees with the "
    "main prediction with p' → 1; dabin computes log(1 − p') exactly (log_one_minus_softmax), unbounded. "
    "Here: dabin 1108.0, tllib's −mdd 885.1 (target term ≈ 236.7 vs 13.8)."))
def test_mdd_saturated_target_matches_tllib_literally() -> None:
    loss_fn, out, ref, adv = _saturated_mdd()
    n = out.features_s.shape[0]
    loss, _ = loss_fn(out)
    expected = -_tllib_mdd(ref.logits_s, adv[:n], ref.logits_t, adv[n:])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# --- MCC: tllib/self_training/mcc.py, MinimumClassConfusionLoss ------------------------------------

def _tllib_mcc(logits: Tensor, temperature: float = 2.5, eps: float = 1e-5) -> Tensor:
    """``MinimumClassConfusionLoss(temperature).forward``; ``eps`` is tllib's entropy ε (1e-5)."""
    batch_size, num_classes = logits.shape
    predictions = F.softmax(logits / temperature, dim=1)  # batch_size x num_classes
    entropy_weight = _tllib_entropy(predictions, eps).detach()
    entropy_weight = 1 + torch.exp(-entropy_weight)
    entropy_weight = (batch_size * entropy_weight / torch.sum(entropy_weight)).unsqueeze(dim=1)  # batch_size x 1
    class_confusion_matrix = torch.mm((predictions * entropy_weight).transpose(1, 0), predictions)
    class_confusion_matrix = class_confusion_matrix / torch.sum(class_confusion_matrix, dim=1)  # broadcast, as tllib
    mcc_loss = (torch.sum(class_confusion_matrix) - torch.trace(class_confusion_matrix)) / num_classes
    return mcc_loss


def _mcc_case(n: int, c: int, eps: float, seed: int) -> None:
    loss_fn = MCCLoss(16, c)
    assert loss_fn.temperature == 2.5
    out, ref = _outputs(seed, n, n, 16, c, progress=0.5, dtype=torch.float32, logit_scale=4.0)
    loss, _ = loss_fn(out)
    loss.backward()
    expected = _tllib_mcc(ref.logits_t, 2.5, eps)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    _assert_close(out.logits_t.grad, ref.logits_t.grad, 1e-5, "target logits")


@pytest.mark.parametrize(("n", "c"), [(32, 10), (8, 65)], ids=["B32-C10", "B8-C65"])
def test_mcc_matches_tllib_with_exact_entropy(n: int, c: int) -> None:
    # With ε = 0 in the entropy weights (the paper's H; dabin's), tllib's loss and dabin's are the same function.
    _mcc_case(n, c, eps=0.0, seed=11)


@pytest.mark.parametrize(("n", "c"), [(32, 10), (8, 65)], ids=["B32-C10", "B8-C65"])
def test_mcc_matches_tllib_literally_up_to_its_entropy_epsilon(n: int, c: int) -> None:
    # tllib's entropy() puts ε = 1e-5 inside the log; on these inputs that moves the loss by ~1e-6 relative
    # at C = 10 (measured 6.6e-7) and ~1e-8 at C = 65, so the literal reference is checked at 1e-5.
    loss_fn = MCCLoss(16, c)
    out, ref = _outputs(11, n, n, 16, c, progress=0.5, dtype=torch.float32, logit_scale=4.0)
    loss, _ = loss_fn(out)
    assert loss.item() == pytest.approx(_tllib_mcc(ref.logits_t, 2.5, 1e-5).item(), rel=1e-5)


# --- DAN: tllib/alignment/dan.py, MultipleKernelMaximumMeanDiscrepancy ------------------------------

def _tllib_gaussian_kernel(X: Tensor, alpha: float) -> Tensor:
    """tllib/modules/kernels.py ``GaussianKernel(alpha=alpha)`` (track_running_stats=True) ``.forward``."""
    l2_distance_square = ((X.unsqueeze(0) - X.unsqueeze(1)) ** 2).sum(2)
    sigma_square = alpha * torch.mean(l2_distance_square.detach())
    return torch.exp(-l2_distance_square / (2 * sigma_square))


def _tllib_index_matrix(batch_size: int) -> Tensor:
    """``_update_index_matrix(batch_size, None, linear=False)``."""
    index_matrix = torch.zeros(2 * batch_size, 2 * batch_size, dtype=DOUBLE)
    for i in range(batch_size):
        for j in range(batch_size):
            if i != j:
                index_matrix[i][j] = 1. / float(batch_size * (batch_size - 1))
                index_matrix[i + batch_size][j + batch_size] = 1. / float(batch_size * (batch_size - 1))
    for i in range(batch_size):
        for j in range(batch_size):
            index_matrix[i][j + batch_size] = -1. / float(batch_size * batch_size)
            index_matrix[i + batch_size][j] = -1. / float(batch_size * batch_size)
    return index_matrix


def _tllib_mkmmd(z_s: Tensor, z_t: Tensor, alphas: tuple[float, ...]) -> Tensor:
    """``MultipleKernelMaximumMeanDiscrepancy(kernels=[GaussianKernel(alpha=a) for a in alphas], linear=False)``."""
    features = torch.cat([z_s, z_t], dim=0)
    batch_size = int(z_s.size(0))
    index_matrix = _tllib_index_matrix(batch_size)
    kernel_matrix = sum([_tllib_gaussian_kernel(features, a) for a in alphas])
    loss = (kernel_matrix * index_matrix).sum() + 2. / float(batch_size - 1)
    return loss


def _pytorch_adapt_mmd_quadratic(x: Tensor, y: Tensor, scale: Tensor, weights: Tensor | float) -> Tensor:
    """pytorch-adapt layers/utils.py ``get_mmd_quadratic(xx, yy, zz, scale, weights)`` with
    ``_mmd_quadratic`` and ``num_elements_minus_diag``; the distances are ``LpDistance(p=2, power=2,
    normalize_embeddings=False)``, MMDLoss's default."""
    def dist(a: Tensor, b: Tensor) -> Tensor:
        return ((a.unsqueeze(1) - b.unsqueeze(0)) ** 2).sum(2)

    def _mmd_quadratic(m: Tensor) -> Tensor:
        return torch.sum(torch.exp(m.unsqueeze(2) * scale) * weights, dim=2)

    xx = _mmd_quadratic(dist(x, x)).fill_diagonal_(0)
    yy = _mmd_quadratic(dist(y, y)).fill_diagonal_(0)
    zz = _mmd_quadratic(dist(x, y))
    xx_scaler = 1.0 / (xx.shape[0] * (xx.shape[0] - 1))
    yy_scaler = 1.0 / (yy.shape[0] * (yy.shape[0] - 1))
    return xx_scaler * torch.sum(xx) + yy_scaler * torch.sum(yy) - 2 * torch.mean(zz)


TLLIB_ALPHAS = tuple(2.0 ** k for k in range(-3, 2))  # examples/.../dan.py: GaussianKernel(alpha=2 ** k), k = -3..1


def _dan_outputs(n_s: int, n_t: int, d: int, seed: int) -> tuple[DANLoss, StepOutputs, StepOutputs]:
    loss_fn = DANLoss(d, 10)
    assert loss_fn.kernel_mults == TLLIB_ALPHAS
    out, ref = _outputs(seed, n_s, n_t, d, 10, progress=0.5, dtype=torch.float32, target_shift=0.4)
    return loss_fn, out, ref


@pytest.mark.parametrize(("n", "d"), [(32, 16), (8, 64)], ids=["B32-D16", "B8-D64"])
def test_dan_matches_tllib_quadratic_mkmmd_up_to_its_constant(n: int, d: int) -> None:
    # tllib adds 2 / (n − 1) to the estimate ("to make up for the value on the diagonal"); dabin leaves the
    # constant out (documented), which changes no gradient.
    loss_fn, out, ref = _dan_outputs(n, n, d, seed=12)
    loss, logs = loss_fn(out)
    loss.backward()
    expected = _tllib_mkmmd(ref.features_s, ref.features_t, TLLIB_ALPHAS)
    expected.backward()
    constant = 2.0 / (n - 1)
    # float32 sums of kernel values cancel: tolerance relative to the kernels' total (5 per pair).
    assert loss.item() == pytest.approx(expected.item() - constant, abs=1e-6 * len(TLLIB_ALPHAS))
    assert float(logs["mmd"]) == pytest.approx(loss.item())
    assert abs(expected.item() - constant) > 1e-3  # the shifted domains: a non-trivial value
    _assert_close(torch.cat((out.features_s.grad, out.features_t.grad)),
                  torch.cat((ref.features_s.grad, ref.features_t.grad)), 1e-5, "features")


def test_dan_unequal_batches_match_pytorch_adapt_quadratic_mmd() -> None:
    # tllib's DAN needs B_s = B_t; pytorch-adapt's get_mmd_quadratic takes unequal batches. Its kernels are
    # given tllib's bandwidth (σ_u² = α_u · mean of all squared distances of [f_s; f_t], as dabin) and
    # weights 1 (tllib's sum; pytorch-adapt defaults to the median bandwidth and weights 1/len).
    loss_fn, out, ref = _dan_outputs(32, 8, 16, seed=13)
    loss, _ = loss_fn(out)
    loss.backward()
    x, y = ref.features_s, ref.features_t
    features = torch.cat((x, y))
    sigma2 = ((features.unsqueeze(0) - features.unsqueeze(1)) ** 2).sum(2).detach().mean()
    scale = -1.0 / (2.0 * torch.tensor(TLLIB_ALPHAS, dtype=DOUBLE) * sigma2)
    expected = _pytorch_adapt_mmd_quadratic(x, y, scale, 1.0)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6 * len(TLLIB_ALPHAS))
    assert abs(expected.item()) > 1e-3
    _assert_close(torch.cat((out.features_s.grad, out.features_t.grad)), torch.cat((x.grad, y.grad)), 1e-5,
                  "features")


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "Convention differs (documented in DANLoss): tllib's MultipleKernelMaximumMeanDiscrepancy(linear=False) "
    "returns the unbiased estimate plus 2/(n−1) (0.0645 at n = 32); dabin returns the estimate alone."))
def test_dan_matches_tllib_literally() -> None:
    loss_fn, out, ref = _dan_outputs(32, 32, 16, seed=12)
    loss, _ = loss_fn(out)
    expected = _tllib_mkmmd(ref.features_s, ref.features_t, TLLIB_ALPHAS)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6 * len(TLLIB_ALPHAS))
