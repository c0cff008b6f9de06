"""The transfer methods' names, torch-free: what a sweep spec and ``--model.method`` accept.

The registry (:data:`dabin.methods.METHODS`) maps exactly these names to their loss modules.
"""

from __future__ import annotations

__all__ = ["TRANSFER_METHODS"]

#: In the order tables show them: the baseline first, then DANN (the paper's), then the others.
TRANSFER_METHODS: tuple[str, ...] = ("source_only", "dann", "adabn", "cdan", "cdan_e", "mcc", "mdd", "dan", "bnm")
