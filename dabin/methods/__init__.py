"""Adaptation methods as loss modules over one step's source and target outputs.

Each method is an :class:`AdaptationLoss`: ``forward(StepOutputs) -> (loss, logs)``, the term
added to the source classification loss. :data:`METHODS` names them (with None for the methods
that add no loss: ``source_only`` and ``adabn``). Exports are imported on first use, so the names
alone (:data:`TRANSFER_METHODS`, for the sweep) come without torch.
"""

from __future__ import annotations

from dabin.lazy import lazy_exports
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
