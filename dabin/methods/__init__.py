"""Adaptation and domain-generalization methods as loss modules over one training step's outputs.

Each adaptation method is an :class:`AdaptationLoss`: ``forward(StepOutputs) -> (loss, logs)``, the
term added to the source classification loss. :data:`METHODS` names them (with None for the methods
that add no loss: ``source_only`` and ``adabn``). Each domain-generalization method (DomainBed's
ERM, CORAL, MMD, GroupDRO and DANN) is a :class:`GeneralizationLoss`:
``forward(DomainOutputs) -> (objective, logs)``, the whole objective over the training domains;
:data:`GENERALIZATION` names them. Exports are imported on first use, so the names alone
(:data:`TRANSFER_METHODS`, :data:`GENERALIZATION_METHODS`, for the sweep) come without torch.
"""

from __future__ import annotations

from dabin.lazy import lazy_exports
from dabin.methods.names import GENERALIZATION_METHODS, TRANSFER_METHODS

#: name -> submodule that defines it.
_EXPORTS = {
    "AdaptationLoss": "base",
    "NamedMethod": "base",
    "StepOutputs": "base",
    "BNMLoss": "bnm",
    "CDANELoss": "cdan",
    "CDANLoss": "cdan",
    "CORALLoss": "coral",
    "DANLoss": "dan",
    "DANNLoss": "dann",
    "DomainAdversarialLoss": "dg_dann",
    "MMDLoss": "domain_mmd",
    "DomainOutputs": "generalization",
    "ERMLoss": "generalization",
    "FeatureMatchingLoss": "generalization",
    "GeneralizationLoss": "generalization",
    "GroupDROLoss": "group_dro",
    "MCCLoss": "mcc",
    "MDDLoss": "mdd",
    "GENERALIZATION": "registry",
    "METHODS": "registry",
    "build_generalization_method": "registry",
    "build_method": "registry",
    "method_names": "registry",
}

__all__ = sorted([*_EXPORTS, "GENERALIZATION_METHODS", "TRANSFER_METHODS"])

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
