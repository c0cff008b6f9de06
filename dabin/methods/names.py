"""The methods' names, torch-free: what a sweep spec, a run record and ``--model.method`` accept.

The registry (:data:`dabin.methods.METHODS`) maps exactly these names to their loss modules.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["RUN_KINDS", "SOURCE_BATCH_ONLY", "TRANSFER_METHODS", "RunKind"]

#: In the order tables show them: the baseline first, then DANN (the paper's), then the others.
TRANSFER_METHODS: tuple[str, ...] = ("source_only", "dann", "adabn", "cdan", "cdan_e", "mcc", "mdd", "dan", "bnm")

#: What a run of a method is: ``transfer`` (source -> target, Table 4) or ``mixed`` (every domain at
#: once, held-out folds, Table 3).
RunKind = Literal["transfer", "mixed"]
#: Every method a sweep can run, with its kind.
RUN_KINDS: dict[str, RunKind] = {**dict.fromkeys(TRANSFER_METHODS, "transfer"), "mixed": "mixed"}
#: The transfer methods whose training passes no target batch (they add no adaptation loss).
SOURCE_BATCH_ONLY: tuple[str, ...] = ("source_only", "adabn")
