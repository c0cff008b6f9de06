"""BIN's arithmetic as three ``torch.compile``-d kernels: one fused loop each instead of ~30 ops.

The eager formulation in :mod:`dabin.nn.functional` already streams the activation only a few
times, but around those passes it runs dozens of small per-``(n, c)`` operations and two extra
full-size passes in the backward; on small maps (14×14 and below) their fixed cost exceeds
BatchNorm's single fused kernel. Inductor fuses the statistics, the coefficients and the affine
map of each kernel into generated C++ loops (measured on the 2-core CPU: training forward+backward
0.4–1.0× BatchNorm instead of 0.8–1.5×; see ``experiments/bench_bin.py``).

The math is exactly the eager one (module docstring of :mod:`dabin.nn.functional`):
instance statistics from ``E[x]`` and ``E[x²]``, batch statistics from them by the law of total
variance, eq. (3) as ``y = x·(a + t) + (β − a·μ_B − t·μ_I)`` with ``a = γρ/σ_B``,
``t = γ(1−ρ)/σ_I``, and the analytic backward ``dx = g·p + x·q + r``.

The kernels are used for contiguous float32 CPU input of rank ≥ 3 with more than one value per
instance; everything else (float64, half types, channels_last, 1×1 maps, CUDA) takes the eager
path. Compilation happens once per process (shapes are dynamic) and is cached on disk by
Inductor; if it fails (no C++ compiler, say) a warning is given once and the eager path is used.
``DABIN_BIN_COMPILE=0`` turns the kernels off.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["compiled_enabled", "eligible", "kernel", "set_compiled"]

_state = {"enabled": os.environ.get("DABIN_BIN_COMPILE", "1") != "0"}


def set_compiled(enabled: bool) -> None:
    """Switch the compiled kernels on or off for this process (e.g. to compare with eager)."""
    _state["enabled"] = enabled


def compiled_enabled() -> bool:
    """Whether the compiled kernels may be used."""
    return _state["enabled"]


def eligible(x: Tensor) -> bool:
    """Whether ``x`` takes the compiled path (see the module docstring).

    Not while Dynamo traces a model that holds the layer (``torch.compile(model)``): a
    ``torch.compile`` call inside a traced region cannot be traced and would break the user's graph
    at every BIN layer; the eager arithmetic is traced instead and Inductor fuses it the same way.
    """
    return (_state["enabled"] and not torch.compiler.is_compiling() and x.device.type == "cpu"
            and x.dtype == torch.float32 and x.dim() >= 3 and x.is_contiguous() and x[0, 0].numel() > 1)


def _instance_stats(xr: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    mean_i = xr.mean(-1)
    var_i = ((xr * xr).mean(-1) - mean_i * mean_i).clamp_min(0.0)
    return mean_i, var_i, (var_i + eps).rsqrt()


def _mix(xr: Tensor, gamma: Tensor, beta: Tensor, rho: Tensor, mean_i: Tensor, rstd_i: Tensor, mean_b: Tensor,
         rstd_b: Tensor) -> Tensor:
    # eq. (3) as one affine map per (n, c): y = x·(a + t) + (β − a·μ_B − t·μ_I)
    a = gamma * rho * rstd_b
    t = gamma * (1.0 - rho) * rstd_i
    shift = beta - a * mean_b - t * mean_i
    return xr * (a + t)[..., None] + shift[..., None]


def _train(x: Tensor, gamma: Tensor, beta: Tensor, rho: Tensor, eps: float) -> tuple[Tensor, ...]:
    xr = x.reshape(x.shape[0], x.shape[1], -1)
    mean_i, var_i, rstd_i = _instance_stats(xr, eps)
    mean_b = mean_i.mean(0)
    var_b = var_i.mean(0) + ((mean_i - mean_b) ** 2).mean(0)  # law of total variance
    rstd_b = (var_b + eps).rsqrt()
    y = _mix(xr, gamma, beta, rho, mean_i, rstd_i, mean_b, rstd_b).reshape(x.shape)
    return y, mean_i, rstd_i, mean_b, rstd_b, var_b


def _eval(x: Tensor, gamma: Tensor, beta: Tensor, rho: Tensor, mean_b: Tensor, var_b: Tensor,
          eps: float) -> tuple[Tensor, ...]:
    xr = x.reshape(x.shape[0], x.shape[1], -1)
    mean_i, _, rstd_i = _instance_stats(xr, eps)
    rstd_b = (var_b + eps).rsqrt()
    y = _mix(xr, gamma, beta, rho, mean_i, rstd_i, mean_b, rstd_b).reshape(x.shape)
    return y, mean_i, rstd_i, rstd_b


def _backward(x: Tensor, g: Tensor, gamma: Tensor, rho: Tensor, mean_i: Tensor, rstd_i: Tensor, mean_b: Tensor,
              rstd_b: Tensor) -> tuple[Tensor, ...]:
    # Training-mode backward: the BN branch's statistics depend on the whole batch.
    n, c = x.shape[0], x.shape[1]
    xr = x.reshape(n, c, -1)
    gr = g.reshape(n, c, -1)
    spatial = xr.shape[-1]
    count = n * spatial
    s1 = gr.sum(-1)
    s2 = (gr * xr).sum(-1)
    t_i = rstd_i * (s2 - mean_i * s1)  # Σ g·x̂_I per (n, c)
    t_b = rstd_b * (s2 - mean_b * s1)  # Σ g·x̂_B per (n, c)
    k_b = gamma * rho
    k_i = gamma * (1.0 - rho)
    p = k_b * rstd_b + k_i * rstd_i
    c_i = k_i * rstd_i * rstd_i * t_i / spatial
    c_b = k_b * rstd_b * rstd_b * t_b.sum(0) / count
    q = -c_i - c_b
    r = c_i * mean_i - k_i * rstd_i * s1 / spatial + c_b * mean_b - k_b * rstd_b * s1.sum(0) / count
    grad_x = (gr * p[..., None] + xr * q[..., None] + r[..., None]).reshape(x.shape)
    grad_gamma = (rho * t_b + (1.0 - rho) * t_i).sum(0)
    grad_beta = s1.sum(0)
    grad_rho = gamma * (t_b - t_i).sum(0)  # eq. (5)
    return grad_x, grad_gamma, grad_beta, grad_rho


_SOURCES: dict[str, Callable[..., tuple[Tensor, ...]]] = {"train": _train, "eval": _eval, "backward": _backward}


@functools.cache
def _compiled(name: str) -> Callable[..., tuple[Tensor, ...]]:
    return torch.compile(_SOURCES[name], dynamic=True)


def kernel(name: str, *args: Any) -> tuple[Tensor, ...] | None:
    """Run compiled kernel ``name`` (``train``, ``eval`` or ``backward``); None if compiling failed.

    A failure disables the compiled path for the rest of the process, with one warning.
    """
    # Dynamo keeps an nn.Parameter's shape static, and the gate, γ and β broadcast against x's
    # channel dimension: passed as parameters they would force one recompile per channel count.
    args = tuple(arg.detach() if isinstance(arg, Tensor) else arg for arg in args)
    try:
        with torch.no_grad():
            return _compiled(name)(*args)
    except Exception as error:  # noqa: BLE001 - any compiler/toolchain failure means: use eager
        _state["enabled"] = False
        warnings.warn(f"dabin: torch.compile of the BIN kernels failed ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); using the eager path", stacklevel=3)
        return None
