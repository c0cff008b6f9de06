import torch

from dabin.nn import GradientReversal, gradient_reversal


def test_forward_is_identity_and_gradient_is_minus_lambda():
    grl = GradientReversal(0.3)
    x = torch.randn(4, 5, requires_grad=True)
    y = grl(x)
    assert torch.equal(y, x)
    g = torch.randn(4, 5)
    y.backward(g)
    torch.testing.assert_close(x.grad, -0.3 * g)


def test_coefficient_is_a_settable_buffer():
    grl = GradientReversal()
    grl.set_coeff(0.75)
    assert "coeff" in grl.state_dict() and grl.coeff.item() == 0.75
    x = torch.ones(2, requires_grad=True)
    grl(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2,), -0.75))


def test_functional_form():
    x = torch.ones(3, requires_grad=True)
    (gradient_reversal(x, 2.0) * 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), -6.0))
