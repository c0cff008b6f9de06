"""MixStyle (Zhou, Yang, Qiao & Xiang, "Domain Generalization with MixStyle", ICLR 2021).

Feature statistics of a CNN's early layers carry an image's *style* (Huang & Belongie's AdaIN);
MixStyle synthesizes new styles during training by mixing the channel-wise mean and standard
deviation of two samples of the batch, leaving each sample's normalized content untouched. For an
activation ``x`` of shape ``(B, C, H, W)``, per sample ``n`` and channel ``c``::

    μ(x)    = mean of x[n, c] over (H, W)
    σ(x)    = sqrt(var(x[n, c]) + ε)                      (unbiased variance, see below)
    x̃      = x[perm]                                      (a shuffled copy of the batch)
    γ_mix   = λ·σ(x) + (1 − λ)·σ(x̃)
    β_mix   = λ·μ(x) + (1 − λ)·μ(x̃)                       λ ~ Beta(α, α), one per sample
    out     = γ_mix · (x − μ(x)) / σ(x) + β_mix

This follows the authors' code, ``KaiyangZhou/mixstyle-release`` (``reid/models/mixstyle.py``,
``MixStyle.forward``; the image-classification runs use the same class from
``KaiyangZhou/Dassl.pytorch``, ``dassl/modeling/ops/mixstyle.py``), where it differs from the
paper's text:

* ``σ`` uses ``torch.var``'s default, the *unbiased* variance (divides by ``HW − 1``); the paper's
  eq. (2) writes the biased ``1/(HW)`` mean. Followed: unbiased, so maps of one pixel are refused
  (the official code returns NaN there).
* ``μ`` and ``σ`` are *detached*: no gradient flows through the statistics, so
  ``∂out/∂x = γ_mix / σ(x)`` elementwise. The paper does not mention it. Followed.
* The layer is applied with probability ``p`` (one draw per call, i.e. per batch and per insertion
  point); the paper only says "activated with probability 0.5". Followed, see :class:`MixStyle`.

:func:`insert_mixstyle` puts the layer after ResNet stages as the official backbones do
(``resnet18_ms_l123`` in Dassl: after ``layer1``, ``layer2`` and ``layer3``), without changing the
ResNet's state-dict keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.nn.functional import _affine

__all__ = [
    "DEFAULT_MIXSTYLE_LAYERS",
    "MIXSTYLE_ATTR",
    "MIX_METHODS",
    "MixMethod",
    "MixStyleMode",
    "MixStyle",
    "insert_mixstyle",
    "mixstyle_disabled",
    "mixstyle_modules",
    "set_mixstyle",
]

#: How the partner ``x̃`` of each sample is chosen (see :class:`MixStyle`).
MixMethod = Literal["random", "crossdomain"]
#: A module's MixStyle setting: none, or one of :data:`MixMethod`.
MixStyleMode = Literal["off", "random", "crossdomain"]
#: The values of :data:`MixMethod`.
MIX_METHODS: tuple[str, ...] = get_args(MixMethod)
#: The official default insertion points (Dassl's ``resnet{18,50,101}_ms_l123``, used for PACS).
DEFAULT_MIXSTYLE_LAYERS: tuple[str, ...] = ("layer1", "layer2", "layer3")
#: The attribute under which :func:`insert_mixstyle` registers its layers on the model.
MIXSTYLE_ATTR = "mixstyle"


def _check_mix(mix: str) -> None:
    if mix not in MIX_METHODS:
        raise DabinError(f"unknown MixStyle mix {mix!r}; choose one of {', '.join(MIX_METHODS)}")


class _ScaleShift(torch.autograd.Function):
    """``x·scale + shift`` with per-``(n, c)`` coefficients that are constants for autograd.

    The gradient is ``g·scale``, one elementwise pass. Autograd through the forward's kernel
    (BatchNorm's eval kernel, see :func:`_scale_shift`) would give the same numbers, but its
    eval-mode backward takes about twice as long as a multiply on CPU.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(scale)
        return _affine(x, scale.reshape(x.shape[:2]), shift.reshape(x.shape[:2]))

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (scale,) = ctx.saved_tensors
        return grad_out * scale, None, None


def _scale_shift(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``x·scale + shift`` with ``(B, C, 1, 1)`` coefficients that need no gradient.

    Eagerly this is :func:`dabin.nn.functional`'s fused per-``(n, c)`` multiply-add (BatchNorm's
    eval kernel on the ``(1, B·C, H·W)`` view for contiguous input, about twice ``addcmul``'s
    speed on CPU; ``addcmul`` for other layouts, which keeps the memory format) under
    :class:`_ScaleShift`'s one-pass gradient. Traced (``torch.compile``) it is a plain
    ``addcmul``, which the compiler fuses with its neighbours.
    """
    if torch.compiler.is_compiling():
        return torch.addcmul(shift, x, scale)
    if torch.is_grad_enabled() and x.requires_grad:
        return _ScaleShift.apply(x, scale, shift)
    return _affine(x, scale.reshape(x.shape[:2]), shift.reshape(x.shape[:2]))


class MixStyle(nn.Module):
    r"""Mix the instance statistics of pairs of samples, in training only.

    With ``μ``, ``σ`` the per-``(n, c)`` spatial mean and ``sqrt(unbiased var + ε)`` of ``x``
    (detached, as in the official code), ``λ ~ Beta(α, α)`` of shape ``(B, 1, 1, 1)`` and ``x̃ =
    x[perm]``::

        γ_mix = λ·σ(x) + (1 − λ)·σ(x̃),    β_mix = λ·μ(x) + (1 − λ)·μ(x̃)
        out   = γ_mix · (x − μ(x)) / σ(x) + β_mix  =  a·x + b,
        a     = γ_mix / σ(x),                  b     = β_mix − μ(x)·a           (per (n, c))

    computed in that folded form: the official ``x_normed * sig_mix + mu_mix`` up to rounding, in
    one fused multiply-add pass instead of four elementwise ones, and, since ``μ`` and ``σ`` are
    constants for autograd, with the input gradient ``g·a`` in one pass (``_ScaleShift``).

    The layer is the identity in eval mode, while deactivated (:meth:`deactivate`, or
    ``active=False``), and on the batches where the Bernoulli(``p``) draw says skip. The draw is
    one per call (per batch, per insertion point) as in the official code, which skips when
    Python's ``random.random() > p``; here it is ``torch.rand(()) >= p`` (so ``p=0`` never mixes
    and ``p=1`` always does): the same distribution from a different stream, chosen so that
    ``torch.manual_seed`` alone makes a run reproducible. ``λ`` (``torch.distributions.Beta``) and
    the permutation (``torch.randperm``) are drawn on the CPU default generator in the official
    order (``λ``, then the permutation), whatever the device of ``x``.

    Partner choice (``mix``):

    * ``"random"``: ``perm = torch.randperm(B)``. A sample may be paired with itself (its
      output is then ``x`` up to rounding).
    * ``"crossdomain"``: the batch must be two equal halves from two domains, ``[A; B]`` with
      ``A = x[:B/2]``, ``B = x[B/2:]``. The official construction reverses ``arange(B)``, cuts it
      into the halves ``[B−1, …, B/2]`` and ``[B/2−1, …, 0]``, shuffles each with its own
      ``randperm(B/2)`` and concatenates them: every sample of ``A`` gets a partner from ``B`` and
      vice versa, each partner used once. An odd batch raises :class:`~dabin.errors.DabinError`
      (a ``ValueError``): the release repository crashes on it (a shape mismatch; ``B = 1`` fails
      to unpack), and Dassl's later fix (shuffling halves of sizes ``⌈B/2⌉`` and ``⌊B/2⌋``) runs
      but misaligns them: positions ``0 … ⌊B/2⌋`` draw from ``{⌊B/2⌋, …, B−1}``, so sample
      ``⌊B/2⌋`` can be its own partner.

    Numerics: statistics and mixing run in float32 (float64 for float64 input) and the output is
    cast back to the input's dtype, so bf16 autocast keeps bf16 activations with float32
    statistics; the variance comes from ``Σx`` and ``Σx²`` (one read of ``x`` each, see
    ``_statistics`` for its float32 error); elementwise ops keep the memory format (channels_last
    in, channels_last out).

    ``torch.compile``: the mode, ``active`` and ``mix`` are Python attributes (guards, no break);
    the Bernoulli draw is read with ``.item()`` and branched on in Python, a graph break once per
    call that costs a few microseconds and keeps the skipped batches free.

    Args:
        p: Probability of mixing a batch, in ``[0, 1]`` (official default 0.5).
        alpha: ``α > 0`` of ``Beta(α, α)`` (official default 0.1: ``λ`` near 0 or 1 mostly).
        eps: Added to the variance before the square root.
        mix: ``"random"`` or ``"crossdomain"``.
        active: Whether the layer mixes in training (the official ``_activated``).

    Shape:
        ``(B, C, H, W)`` with ``H·W ≥ 2`` in, same shape, dtype and memory format out.
    """

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 0.1,
        eps: float = 1e-6,
        mix: MixMethod = "random",
        active: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise DabinError(f"MixStyle p must be in [0, 1], got {p}")
        if not alpha > 0.0:
            raise DabinError(f"MixStyle alpha must be > 0 (Beta(alpha, alpha)), got {alpha}")
        if not eps >= 0.0:
            raise DabinError(f"MixStyle eps must be >= 0, got {eps}")
        _check_mix(mix)
        self.p = float(p)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.mix: MixMethod = mix
        self.active = bool(active)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}, mix={self.mix!r}, active={self.active}"

    def activate(self) -> None:
        """Let the layer mix in training mode (the official ``set_activation_status(True)``)."""
        self.active = True

    def deactivate(self) -> None:
        """Make the layer the identity, in any mode (the official ``set_activation_status(False)``)."""
        self.active = False

    def forward(self, x: Tensor) -> Tensor:
        """Mix the styles of ``x`` (training, active, with probability ``p``), else return ``x``.

        Args:
            x: ``(B, C, H, W)`` activations, any floating dtype and memory format.

        Returns:
            ``x`` itself, or the mixed tensor of the same shape, dtype and memory format.

        Raises:
            DabinError: in training (active) mode, for input that is not 4-d, a map of one pixel,
                an odd batch with ``mix="crossdomain"``, or an unknown ``mix``.
        """
        if not self.training or not self.active:
            return x
        # Check before the draw, so a bad batch fails every time, not on a fraction p of them.
        self._check_input(x)
        if not self._draw_mix():
            return x
        batch = x.shape[0]
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mu, sig = self._statistics(xf)
        lmda = self._lambda(batch).to(device=x.device, dtype=mu.dtype)
        perm = self._permutation(batch).to(x.device)
        mu_mix = mu * lmda + mu[perm] * (1 - lmda)
        sig_mix = sig * lmda + sig[perm] * (1 - lmda)
        # γ_mix·(x − μ)/σ + β_mix folded into one multiply-add: a = γ_mix/σ, b = β_mix − μ·a. With
        # μ, σ detached, a and b are constants for autograd, so the input gradient is g·a, one pass
        # (the official order of operations takes four passes forward and two backward).
        # (None of these ops is on autocast's cast lists: under bf16 autocast they stay float32.)
        scale = sig_mix / sig
        shift = mu_mix - mu * scale
        return _scale_shift(xf, scale, shift).to(x.dtype)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
        # A bound method of a registered module: deepcopy and pickle follow it to the copied
        # layer (no lambda or closure), and the layer's train/eval mode follows the model's.
        return self(output)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise DabinError(f"MixStyle expects (B, C, H, W) input, got shape {tuple(x.shape)}")
        if x.shape[2] * x.shape[3] < 2:
            raise DabinError(
                f"MixStyle needs at least 2 values per map for the unbiased variance, got "
                f"shape {tuple(x.shape)}"
            )
        _check_mix(self.mix)
        if self.mix == "crossdomain" and x.shape[0] % 2:
            raise DabinError(
                f"MixStyle mix='crossdomain' needs an even batch [domain A; domain B] of two equal "
                f"halves, got batch size {x.shape[0]}"
            )

    def _draw_mix(self) -> bool:
        # torch.rand in [0, 1): p=0 never mixes, p=1 always does. ``.item()`` is the one graph
        # break under torch.compile (see the class docstring).
        return bool(torch.rand(()).item() < self.p)

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, σ)`` of shape ``(B, C, 1, 1)``, detached, in float32 (float64 for float64 input).

        One read of ``x`` for each of ``Σx`` and ``Σx²`` (a sum and a vector norm, at memory
        speed), then ``var = (Σx² − μ·Σx) / (HW − 1)``, clipped at 0. ``torch.var``'s Welford loop,
        which the official code runs, is 10–30× slower on CPU, and the two-pass form (the mean,
        then the squared deviations from it) writes and reads a full-size temporary. The price
        is cancellation in float32: the variance's relative error is up to about
        ``5·ε_float32·(1 + μ²/σ²)`` (half that in ``σ``), measured 1e-6 for maps whose mean is
        about their spread (as after a ReLU), 7e-5 at a mean 10× the spread, against 6e-8 for
        ``torch.var``; float64 input agrees with the official code to 1e-12.
        """
        dtype = torch.promote_types(x.dtype, torch.float32)
        count = x.shape[2] * x.shape[3]
        with torch.no_grad():  # the official code detaches both: constants for the gradient
            xf = x.detach().to(dtype)
            total = xf.sum(dim=(2, 3), keepdim=True)
            mu = total / count
            sum_sq = torch.linalg.vector_norm(xf, dim=(2, 3), keepdim=True).square_()
            var = sum_sq.addcmul_(total, mu, value=-1.0).div_(count - 1).clamp_min_(0.0)
            sig = var.add_(self.eps).sqrt_()
        return mu, sig

    def _lambda(self, batch: int) -> Tensor:
        """``λ ~ Beta(α, α)``, shape ``(batch, 1, 1, 1)``, float32 on the CPU (as the official)."""
        # validate_args=False: α > 0 is checked at construction; the per-call check would cost as
        # much as the draw. The draw itself is the validated one's (same stream, same values).
        beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha), validate_args=False)
        return beta.sample((batch, 1, 1, 1))

    def _permutation(self, batch: int) -> Tensor:
        """The partner index of each sample, a permutation of ``range(batch)`` (int64, CPU)."""
        if self.mix == "random":
            return torch.randperm(batch)
        # crossdomain: official construction. perm = arange(B-1, -1, -1).chunk(2) gives
        # perm_b = [B-1, ..., B/2] (indices of the second half) and perm_a = [B/2-1, ..., 0];
        # each is shuffled by its own randperm(B/2), drawn in this order, then cat([perm_b, perm_a]).
        half = batch // 2
        perm_b = torch.arange(batch - 1, half - 1, -1)
        perm_a = torch.arange(half - 1, -1, -1)
        return torch.cat([perm_b[torch.randperm(half)], perm_a[torch.randperm(half)]])


def insert_mixstyle(
    model: nn.Module,
    after: Sequence[str] = DEFAULT_MIXSTYLE_LAYERS,
    p: float = 0.5,
    alpha: float = 0.1,
    eps: float = 1e-6,
    mix: MixMethod = "random",
) -> nn.Module:
    """Apply a :class:`MixStyle` to the output of each named child of ``model``, in place.

    Each child gets its own :class:`MixStyle` (the official backbones share one instance; the
    layer holds no state, so only the random streams differ), run by a forward hook on the child.
    The layers are registered on the model as ``model.mixstyle`` (an ``nn.ModuleDict`` keyed by
    child name), so ``model.train()``/``model.eval()`` reach them and :func:`set_mixstyle` finds
    them.

    Why a hook and not ``model.layer1 = nn.Sequential(model.layer1, MixStyle())``: wrapping renames
    every key below the child (``layer1.0.conv1.weight`` becomes ``layer1.0.0.conv1.weight``), so
    published weights no longer load strictly. With the hook the state dict is unchanged (MixStyle
    has no parameters or buffers). The hook is the layer's bound method, so ``copy.deepcopy`` and
    ``pickle`` carry it to the copied layer; no lambda or closure is involved.

    Args:
        model: A torchvision-style ResNet (or any module with the named children).
        after: Names of direct children after which to mix; the official default
            ``("layer1", "layer2", "layer3")`` (Dassl's ``resnet18_ms_l123``, PACS; ``l12`` is
            its choice for OfficeHome and re-ID).
        p: Probability of mixing, per batch and per insertion point.
        alpha: ``α`` of ``Beta(α, α)``.
        eps: Added to the variance.
        mix: ``"random"`` or ``"crossdomain"`` (the latter needs batches ``[domain A; domain B]``).

    Returns:
        ``model``, with the layers inserted.

    Raises:
        DabinError: (a ``ValueError``) a name that is not a child of ``model``, no or repeated
            names, bad MixStyle arguments, or a model that already has MixStyle inserted.
    """
    names = (after,) if isinstance(after, str) else tuple(after)
    if not names:
        raise DabinError("insert_mixstyle needs at least one layer name in `after`")
    if len(set(names)) != len(names):
        raise DabinError(f"insert_mixstyle got repeated layer names: {list(names)}")
    children = dict(model.named_children())
    missing = [name for name in names if name not in children]
    if missing:
        raise DabinError(
            f"{type(model).__name__} has no child module {', '.join(map(repr, missing))} to insert "
            f"MixStyle after; its children are {', '.join(children) or 'none'}"
        )
    if MIXSTYLE_ATTR in children or hasattr(model, MIXSTYLE_ATTR):
        raise DabinError(f"{type(model).__name__} already has an attribute {MIXSTYLE_ATTR!r} (MixStyle inserted?)")
    layers = nn.ModuleDict({name: MixStyle(p=p, alpha=alpha, eps=eps, mix=mix) for name in names})
    for name in names:
        children[name].register_forward_hook(layers[name]._hook)
    model.add_module(MIXSTYLE_ATTR, layers)
    return model


def mixstyle_modules(model: nn.Module) -> list[MixStyle]:
    """Every :class:`MixStyle` in ``model`` (inserted or built in), in ``model.modules()`` order."""
    return [m for m in model.modules() if isinstance(m, MixStyle)]


def set_mixstyle(model: nn.Module, *, active: bool | None = None, mix: MixMethod | None = None) -> int:
    """Switch every :class:`MixStyle` of ``model`` on/off and/or set its ``mix`` (the official
    ``model.apply(activate_mixstyle)``, ``model.apply(crossdomain_mixstyle)``, ...).

    Args:
        model: Any module.
        active: New ``active`` state, or ``None`` to keep each layer's.
        mix: New ``mix``, or ``None`` to keep each layer's.

    Returns:
        How many layers were set.

    Raises:
        DabinError: unknown ``mix``.
    """
    if mix is not None:
        _check_mix(mix)
    layers = mixstyle_modules(model)
    for layer in layers:
        if active is not None:
            layer.active = active
        if mix is not None:
            layer.mix = mix
    return len(layers)


@contextmanager
def mixstyle_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` without MixStyle in the block (e.g. a training-mode pass that must not mix),
    restoring each layer's own ``active`` state afterwards (the official ``run_without_mixstyle``
    assumes they were all on)."""
    layers = mixstyle_modules(model)
    states = [layer.active for layer in layers]
    try:
        for layer in layers:
            layer.active = False
        yield model
    finally:
        for layer, state in zip(layers, states):
            layer.active = state
