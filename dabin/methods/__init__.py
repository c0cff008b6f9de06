"""Adaptation methods as loss modules over one step's source and target outputs.

Each method is an :class:`AdaptationLoss`: ``forward(StepOutputs) -> (loss, logs)``, the term
added to the source classification loss. :data:`METHODS` names them (with None for the methods
that add no loss: ``source_only`` and ``adabn``). Exports are imported on first use, so the names
alone (:data:`TRANSFER_METHODS`, for the sweep) come without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from dabin.methods.names import TRANSFER_METHODS

#: name -> submodule that defines it.
_EXPORTS = {
    "AdaptationLoss": "base",
    "StepOutputs": "base",
    "BNMLoss": "bnm",
    "CDANELoss": "cdan",
    "CDANLoss": "cdan",
    "DANLoss": "dan",
    "DANNLoss": "dann",
    "MCCLoss": "mcc",
    "MDDLoss": "mdd",
    "METHODS": "registry",
    "build_method": "registry",
    "method_names": "registry",
}

__all__ = sorted([*_EXPORTS, "TRANSFER_METHODS"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
