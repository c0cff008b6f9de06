"""Adaptation methods as loss modules over one step's source and target outputs.

Each method is an :class:`AdaptationLoss`: ``forward(StepOutputs) -> (loss, logs)``, the term
added to the source classification loss. :data:`METHODS` names them (with None for the methods
that add no loss: ``source_only`` and ``adabn``).
"""

from dabin.methods.base import AdaptationLoss, StepOutputs
from dabin.methods.bnm import BNMLoss
from dabin.methods.cdan import CDANELoss, CDANLoss
from dabin.methods.dan import DANLoss
from dabin.methods.dann import DANNLoss
from dabin.methods.mcc import MCCLoss
from dabin.methods.mdd import MDDLoss
from dabin.methods.registry import METHODS, build_method, method_names

__all__ = [
    "METHODS",
    "AdaptationLoss",
    "BNMLoss",
    "CDANELoss",
    "CDANLoss",
    "DANLoss",
    "DANNLoss",
    "MCCLoss",
    "MDDLoss",
    "StepOutputs",
    "build_method",
    "method_names",
]
