"""The domain-generalization objectives against float64 transcriptions of DomainBed's code.

Each reference below transcribes repository facebookresearch/DomainBed, file
``domainbed/algorithms.py`` (commit b93c22a), the class and method it names, line by line on
tensors instead of a network (``self.predict(x)`` → the given logits, ``self.featurizer(x)`` →
the given features), and never calls dabin. Inputs are where conventions part: unequal minibatch
sizes, more rows than classes, a domain whose features collapsed to one point, 2 to 4 domains.
"""

from __future__ import annotations

import inspect
import math
import typing

import pytest
import torch
import torch.nn.functional as F

from dabin.errors import DabinError
from dabin.methods import (GENERALIZATION, CORALLoss, DomainAdversarialLoss, DomainOutputs, ERMLoss,
                           GeneralizationLoss, GroupDROLoss, MMDLoss, build_generalization_method)
from dabin.methods.names import GENERALIZATION_METHODS, RUN_KINDS, TRANSFER_METHODS

RTOL = 1e-10
D, C = 5, 3

#: (minibatch sizes, index of a domain with collapsed features or None): 2, 3 and 4 domains,
#: unequal sizes, sizes above C.
CASES = [((4, 7), None), ((6, 2, 9), None), ((5, 5, 3, 8), 2), ((3, 10), 0)]


def _outputs(sizes: tuple[int, ...], collapsed: int | None, seed: int, p: float = 0.3,
             scale: float = 1.0) -> DomainOutputs:
    """Random float64 features (``scale`` times normal, domain ``k`` shifted by ``k``), logits and labels."""
    gen = torch.Generator().manual_seed(seed)
    features, logits, labels = [], [], []
    for k, n in enumerate(sizes):
        f = scale * (torch.randn(n, D, generator=gen, dtype=torch.float64) + 0.5 * k)
        if k == collapsed:
            f = f[:1].expand(n, D).clone()  # every row the same point: zero covariance, zero distances
        features.append(f.requires_grad_())
        logits.append(torch.randn(n, C, generator=gen, dtype=torch.float64).requires_grad_())
        labels.append(torch.randint(0, C, (n,), generator=gen))
    return DomainOutputs(tuple(features), tuple(logits), tuple(labels), p)


# --- References: facebookresearch/DomainBed, domainbed/algorithms.py -------------------------------------------------


def _ref_erm(out: DomainOutputs) -> torch.Tensor:
    """``ERM.update``: ``F.cross_entropy(self.predict(all_x), all_y)`` over the concatenated minibatches."""
    all_y = torch.cat([y for y in out.labels])
    all_preds = torch.cat([g for g in out.logits])
    return F.cross_entropy(all_preds, all_y)


def _ref_my_cdist(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``AbstractMMD.my_cdist``."""
    x1_norm = x1.pow(2).sum(dim=-1, keepdim=True)
    x2_norm = x2.pow(2).sum(dim=-1, keepdim=True)
    res = torch.addmm(x2_norm.transpose(-2, -1), x1, x2.transpose(-2, -1), alpha=-2).add_(x1_norm)
    return res.clamp_min_(1e-30)


def _ref_gaussian_kernel(x: torch.Tensor, y: torch.Tensor,
                         gamma: tuple[float, ...] = (0.001, 0.01, 0.1, 1, 10, 100, 1000)) -> torch.Tensor:
    """``AbstractMMD.gaussian_kernel``."""
    dist = _ref_my_cdist(x, y)
    kernel = torch.zeros_like(dist)
    for g in gamma:
        kernel.add_(torch.exp(dist.mul(-g)))
    return kernel


def _ref_mmd(x: torch.Tensor, y: torch.Tensor, kernel_type: str) -> torch.Tensor:
    """``AbstractMMD.mmd`` (``"gaussian"`` for MMD, ``"mean_cov"`` for CORAL)."""
    if kernel_type == "gaussian":
        kxx = _ref_gaussian_kernel(x, x).mean()
        kyy = _ref_gaussian_kernel(y, y).mean()
        kxy = _ref_gaussian_kernel(x, y).mean()
        return kxx + kyy - 2 * kxy
    mean_x = x.mean(0, keepdim=True)
    mean_y = y.mean(0, keepdim=True)
    cent_x = x - mean_x
    cent_y = y - mean_y
    cova_x = (cent_x.t() @ cent_x) / (len(x) - 1)
    cova_y = (cent_y.t() @ cent_y) / (len(y) - 1)
    mean_diff = (mean_x - mean_y).pow(2).mean()
    cova_diff = (cova_x - cova_y).pow(2).mean()
    return mean_diff + cova_diff


def _ref_abstract_mmd(out: DomainOutputs, kernel_type: str, mmd_gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``AbstractMMD.update``: the loss it backpropagates and its ``penalty``."""
    objective: typing.Any = 0
    penalty: typing.Any = 0
    nmb = len(out.features)
    features, classifs, targets = out.features, out.logits, out.labels
    for i in range(nmb):
        objective += F.cross_entropy(classifs[i], targets[i])
        for j in range(i + 1, nmb):
            penalty += _ref_mmd(features[i], features[j], kernel_type)
    objective /= nmb
    if nmb > 1:
        penalty /= (nmb * (nmb - 1) / 2)
    return objective + (mmd_gamma * penalty), torch.as_tensor(penalty, dtype=torch.float64)


class _RefGroupDRO:
    """``GroupDRO.update`` (``q`` a buffer filled with ones at the first update, ``groupdro_eta``)."""

    def __init__(self, eta: float) -> None:
        self.eta = eta
        self.q = torch.tensor([], dtype=torch.float64)

    def update(self, out: DomainOutputs) -> torch.Tensor:
        if not len(self.q):
            self.q = torch.ones(len(out.logits), dtype=torch.float64)
        losses = torch.zeros(len(out.logits), dtype=torch.float64)
        for m in range(len(out.logits)):
            losses[m] = F.cross_entropy(out.logits[m], out.labels[m])
            self.q[m] *= (self.eta * losses[m].data).exp()
        self.q /= self.q.sum()
        return torch.dot(losses, self.q)


def _ref_dann_terms(out: DomainOutputs, weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``AbstractDANN.update`` (unconditional, no class balance): ``classifier_loss`` and ``disc_loss``.

    The discriminator is written out by hand (``Linear → ReLU → Linear``, dropout 0) with the given
    weights, so dabin's module is not called.
    """
    w1, b1, w2, b2 = weights
    all_y = torch.cat([y for y in out.labels])
    all_z = torch.cat([f for f in out.features])
    disc_out = torch.relu(all_z @ w1.t() + b1) @ w2.t() + b2
    disc_labels = torch.cat([torch.full((x.shape[0],), i, dtype=torch.int64) for i, x in enumerate(out.features)])
    disc_loss = F.cross_entropy(disc_out, disc_labels)
    classifier_loss = F.cross_entropy(torch.cat([g for g in out.logits]), all_y)
    return classifier_loss, disc_loss


# --- ERM, CORAL, MMD ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "collapsed"), CASES)
def test_erm_is_the_cross_entropy_of_the_concatenation(sizes: tuple[int, ...], collapsed: int | None) -> None:
    out = _outputs(sizes, collapsed, seed=1)
    loss, logs = ERMLoss(D, C, len(sizes))(out)
    torch.testing.assert_close(loss, _ref_erm(out), rtol=RTOL, atol=0)
    assert logs == {}
    # With unequal minibatches this is not the mean of the domains' means (what CORAL and MMD use).
    per_domain = torch.stack([F.cross_entropy(g, y) for g, y in zip(out.logits, out.labels)]).mean()
    assert not torch.isclose(loss, per_domain, rtol=1e-6)


@pytest.mark.parametrize(("sizes", "collapsed"), CASES)
@pytest.mark.parametrize("gamma", [1.0, 0.3])
def test_coral_matches_domainbed(sizes: tuple[int, ...], collapsed: int | None, gamma: float) -> None:
    out = _outputs(sizes, collapsed, seed=2)
    loss, logs = CORALLoss(D, C, len(sizes), gamma=gamma)(out)
    expected, penalty = _ref_abstract_mmd(out, "mean_cov", gamma)
    torch.testing.assert_close(loss, expected, rtol=RTOL, atol=0)
    torch.testing.assert_close(logs["penalty"], penalty, rtol=RTOL, atol=0)


@pytest.mark.parametrize(("sizes", "collapsed"), CASES)
@pytest.mark.parametrize("scale", [1.0, 0.05])  # at 0.05 every precision g of the kernel sees the distances
def test_mmd_matches_domainbed(sizes: tuple[int, ...], collapsed: int | None, scale: float) -> None:
    out = _outputs(sizes, collapsed, seed=3, scale=scale)
    loss, logs = MMDLoss(D, C, len(sizes), gamma=2.0)(out)
    expected, penalty = _ref_abstract_mmd(out, "gaussian", 2.0)
    torch.testing.assert_close(loss, expected, rtol=RTOL, atol=0)
    torch.testing.assert_close(logs["penalty"], penalty, rtol=RTOL, atol=0)
    assert float(logs["penalty"]) > 0


def test_mmd_clamps_distances_as_domainbed() -> None:
    """Far from the origin ``‖x‖² + ‖y‖² − 2x·y`` rounds below 0 on the diagonal; my_cdist clamps it to 1e-30."""
    out = _outputs((6, 5, 7), None, seed=6)
    far = DomainOutputs(tuple((f.detach() + 1e4).requires_grad_() for f in out.features), out.logits, out.labels, 0.0)
    x = far.features[0].detach()
    raw = x.pow(2).sum(1, keepdim=True) + x.pow(2).sum(1).unsqueeze(0) - 2 * x @ x.t()
    assert (raw.diagonal() < 0).any()  # the case the clamp is for
    loss, logs = MMDLoss(D, C, 3)(far)
    expected, penalty = _ref_abstract_mmd(far, "gaussian", 1.0)
    torch.testing.assert_close(loss, expected, rtol=RTOL, atol=0)
    torch.testing.assert_close(logs["penalty"], penalty, rtol=RTOL, atol=0)


@pytest.mark.parametrize("cls", [CORALLoss, MMDLoss])
def test_gradients_match_domainbed_and_gradcheck(cls: type[GeneralizationLoss]) -> None:
    sizes = (4, 6, 3)
    out = _outputs(sizes, None, seed=4, scale=0.2)
    kernel_type = "gaussian" if cls is MMDLoss else "mean_cov"
    loss_fn = cls(D, C, len(sizes))
    inputs = [*out.features, *out.logits]
    got = torch.autograd.grad(loss_fn(out)[0], inputs)
    want = torch.autograd.grad(_ref_abstract_mmd(out, kernel_type, 1.0)[0], inputs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-14)

    def objective(*features: torch.Tensor) -> torch.Tensor:
        return loss_fn(DomainOutputs(features, out.logits, out.labels, out.progress))[0]

    assert torch.autograd.gradcheck(objective, tuple(f.detach().requires_grad_() for f in out.features))


def test_one_domain_has_no_penalty_and_coral_needs_two_rows() -> None:
    out = _outputs((5,), None, seed=5)
    for cls in (CORALLoss, MMDLoss):
        loss, logs = cls(D, C, 1)(out)
        expected, _ = _ref_abstract_mmd(out, "mean_cov", 1.0)
        torch.testing.assert_close(loss, expected, rtol=RTOL, atol=0)
        assert float(logs["penalty"]) == 0.0
    with pytest.raises(DabinError, match="at least 2 samples"):
        CORALLoss(D, C, 2)(_outputs((1, 4), None, seed=5))


# --- GroupDRO -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(4, 7), (6, 2, 9), (5, 5, 3, 8)])
def test_group_dro_matches_domainbed_over_three_steps(sizes: tuple[int, ...]) -> None:
    eta = 0.5  # larger than DomainBed's 1e-2, so q moves visibly in three steps
    loss_fn = GroupDROLoss(D, C, len(sizes), eta=eta).double()
    reference = _RefGroupDRO(eta)
    for step in range(3):
        out = _outputs(sizes, None, seed=10 + step)
        loss, logs = loss_fn(out)
        expected = reference.update(out)
        torch.testing.assert_close(loss, expected, rtol=RTOL, atol=0)
        torch.testing.assert_close(loss_fn.q, reference.q, rtol=RTOL, atol=0)
        assert [float(logs[f"q_{k}"]) for k in range(len(sizes))] == reference.q.tolist()
        # Same gradient: Σ_k q_k ∇L_k, q a constant.
        got = torch.autograd.grad(loss, out.logits)
        want = torch.autograd.grad(expected, out.logits)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=RTOL, atol=0)
    assert not torch.allclose(loss_fn.q, torch.full_like(loss_fn.q, 1 / len(sizes)))


def test_group_dro_q_is_checkpointed_and_frozen_in_eval() -> None:
    loss_fn = GroupDROLoss(D, C, 3)
    assert loss_fn.q.tolist() == [1.0, 1.0, 1.0]  # DomainBed's start: ones
    loss_fn(_outputs((4, 4, 4), None, seed=20))
    state = loss_fn.state_dict()
    assert "q" in state and torch.equal(state["q"], loss_fn.q)
    restored = GroupDROLoss(D, C, 3)
    restored.load_state_dict(state)
    assert torch.equal(restored.q, loss_fn.q)
    before = loss_fn.q.clone()
    loss_fn.eval()
    out = _outputs((4, 4, 4), None, seed=21)
    loss, _ = loss_fn(out)
    assert torch.equal(loss_fn.q, before)
    losses = torch.stack([F.cross_entropy(g, y) for g, y in zip(out.logits, out.labels)])
    torch.testing.assert_close(loss, (losses * before.double()).sum(), rtol=1e-6, atol=0)
    assert loss_fn.eta == 1e-2  # DomainBed's groupdro_eta


# --- DANN over K domains --------------------------------------------------------------------------------------------


def _dann(num_domains: int, seed: int, **options: float) -> tuple[DomainAdversarialLoss, list[torch.Tensor]]:
    loss_fn = DomainAdversarialLoss(D, C, num_domains, hidden_dim=4, dropout=0.0, **options).double()
    gen = torch.Generator().manual_seed(seed)
    weights = []
    for layer in (loss_fn.discriminator[0], loss_fn.discriminator[3]):
        for param in (layer.weight, layer.bias):
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64))
            weights.append(param.detach().clone())
    return loss_fn, weights


@pytest.mark.parametrize(("sizes", "collapsed"), CASES)
def test_dg_dann_is_cross_entropy_plus_domain_cross_entropy(sizes: tuple[int, ...], collapsed: int | None) -> None:
    loss_fn, weights = _dann(len(sizes), seed=30)
    assert loss_fn.discriminator[-1].out_features == len(sizes)
    out = _outputs(sizes, collapsed, seed=31, p=0.4)
    loss, logs = loss_fn(out)
    classifier_loss, disc_loss = _ref_dann_terms(out, weights)
    torch.testing.assert_close(loss, classifier_loss + disc_loss, rtol=RTOL, atol=0)
    torch.testing.assert_close(logs["domain_loss"], disc_loss, rtol=RTOL, atol=0)
    assert logs["lambda"] == pytest.approx(2.0 / (1.0 + math.exp(-4.0)) - 1.0, rel=1e-15)
    w1, b1, w2, b2 = weights
    z = torch.relu(torch.cat(out.features) @ w1.t() + b1) @ w2.t() + b2
    domains = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    assert float(logs["domain_acc"]) == pytest.approx(100.0 * (z.argmax(1) == domains).double().mean().item())


def test_dg_dann_reverses_and_scales_the_features_gradient() -> None:
    sizes = (2, 3, 2)
    loss_fn, weights = _dann(3, seed=40, lambda_gamma=10.0, lambda_max=0.7)
    out = _outputs(sizes, None, seed=41, p=0.2)
    loss, logs = loss_fn(out)
    lam = 0.7 * (2.0 / (1.0 + math.exp(-2.0)) - 1.0)
    assert logs["lambda"] == pytest.approx(lam, rel=1e-15)
    params = list(loss_fn.discriminator.parameters())
    got = torch.autograd.grad(loss, [*out.features, *out.logits, *params])
    ref_weights = [w.clone().requires_grad_() for w in weights]
    classifier_loss, disc_loss = _ref_dann_terms(out, ref_weights)
    grad_f = torch.autograd.grad(disc_loss, out.features, retain_graph=True)
    grad_w = torch.autograd.grad(disc_loss, ref_weights)
    grad_g = torch.autograd.grad(classifier_loss, out.logits)
    n = len(sizes)
    for g, w in zip(got[:n], grad_f):  # the features ascend the domain loss, scaled by λ_p
        torch.testing.assert_close(g, -lam * w, rtol=RTOL, atol=1e-15)
    for g, w in zip(got[n:2 * n], grad_g):  # the logits see the classification term only
        torch.testing.assert_close(g, w, rtol=RTOL, atol=0)
    for g, w in zip(got[2 * n:], grad_w):  # the discriminator descends it, unreversed
        torch.testing.assert_close(g, w, rtol=RTOL, atol=1e-15)


def test_dg_dann_defaults_are_the_dann_task_discriminator() -> None:
    from dabin.methods import DANNLoss

    head, reference = DomainAdversarialLoss(16, C, 4).discriminator, DANNLoss(16, C).discriminator
    assert [type(m) for m in head] == [type(m) for m in reference] and head[2].p == reference[2].p == 0.5
    assert [tuple(p.shape) for p in head.parameters()][:2] == [tuple(p.shape) for p in reference.parameters()][:2]
    assert head[3].out_features == 4


# --- Registry, names, inputs ----------------------------------------------------------------------------------------


def test_names_and_run_kinds() -> None:
    assert tuple(GENERALIZATION) == GENERALIZATION_METHODS == ("erm", "coral", "mmd", "group_dro", "dg_dann")
    assert all(RUN_KINDS[name] == "dg" for name in GENERALIZATION_METHODS)
    assert all(RUN_KINDS[name] == "transfer" for name in TRANSFER_METHODS) and RUN_KINDS["mixed"] == "mixed"
    assert not set(GENERALIZATION_METHODS) & set(TRANSFER_METHODS)


@pytest.mark.parametrize("name", GENERALIZATION_METHODS)
def test_every_method_builds_names_itself_and_gives_a_finite_scalar(name: str) -> None:
    torch.manual_seed(0)
    loss_fn = build_generalization_method(name, D, C, 3)
    assert type(loss_fn) is GENERALIZATION[name] and isinstance(loss_fn, GeneralizationLoss)
    assert (loss_fn.features_dim, loss_fn.num_classes, loss_fn.num_domains) == (D, C, 3)
    assert type(loss_fn).registry_name == name == loss_fn.method_name
    out = _outputs((4, 6, 5), None, seed=50)
    loss_fn.double()
    loss, logs = loss_fn(out)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert all(g.grad is not None and torch.isfinite(g.grad).all() for g in out.logits)
    for key, value in logs.items():
        assert isinstance(key, str) and math.isfinite(float(value))
        assert not isinstance(value, torch.Tensor) or (value.numel() == 1 and not value.requires_grad)
    cls = GENERALIZATION[name]
    hints = typing.get_type_hints(cls.__init__)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params[:3]] == ["features_dim", "num_classes", "num_domains"]
    assert all(p.name in hints for p in params)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
               for p in params[3:])
    assert cls.__doc__ and "Args:" in cls.__doc__


def test_unknown_names_options_and_inputs_are_rejected() -> None:
    with pytest.raises(DabinError, match="unknown domain-generalization method 'irm'; choose from "
                                         "erm, coral, mmd, group_dro, dg_dann"):
        build_generalization_method("irm", D, C, 2)
    assert build_generalization_method("group_dro", D, C, 2, eta=0.1).eta == 0.1
    with pytest.raises(TypeError):
        build_generalization_method("erm", D, C, 2, eta=0.1)
    with pytest.raises(DabinError):
        GroupDROLoss(D, C, 0)
    with pytest.raises(DabinError, match="built for 3 training domains"):
        GroupDROLoss(D, C, 3)(_outputs((4, 4), None, seed=60))
    f, g, y = torch.zeros(3, D), torch.zeros(3, C), torch.zeros(2, dtype=torch.long)
    with pytest.raises(DabinError, match="domain 0"):
        DomainOutputs((f,), (g,), (y,), 0.0)
    with pytest.raises(DabinError):
        DomainOutputs((f,), (g, g), (y,), 0.0)


def test_a_subclass_is_a_method_of_its_own() -> None:
    class Reweighted(CORALLoss):
        pass

    assert Reweighted.registry_name is None and CORALLoss.registry_name == "coral"
    assert Reweighted(D, C, 2).method_name.endswith("test_a_subclass_is_a_method_of_its_own.<locals>.Reweighted")
    assert GeneralizationLoss(D, C, 2).method_name == "dabin.methods.generalization.GeneralizationLoss"


def test_penalties_stay_float32_under_autocast() -> None:
    out = _outputs((4, 5), None, seed=70)
    half = DomainOutputs(tuple(f.detach().bfloat16() for f in out.features), out.logits, out.labels, 0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, logs = MMDLoss(D, C, 2)(half)
    assert logs["penalty"].dtype == torch.float32
