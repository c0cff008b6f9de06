"""The methods' names, torch-free: what a sweep spec, a run record and ``--model.method`` accept.

The registry maps exactly these names to their loss modules: :data:`TRANSFER_METHODS` to
:data:`dabin.methods.METHODS`, :data:`GENERALIZATION_METHODS` to :data:`dabin.methods.GENERALIZATION`.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["GENERALIZATION_METHODS", "RUN_KINDS", "SOURCE_BATCH_ONLY", "TRANSFER_METHODS", "RunKind"]

#: In the order tables show them: the baseline first, then DANN (the paper's), then the others.
TRANSFER_METHODS: tuple[str, ...] = ("source_only", "dann", "adabn", "cdan", "cdan_e", "mcc", "mdd", "dan", "bnm")

#: The domain-generalization methods (DomainBed's, over several labelled training domains and no
#: target batch): the baseline ERM first.
GENERALIZATION_METHODS: tuple[str, ...] = ("erm", "coral", "mmd", "group_dro", "dg_dann")

#: What a run of a method is: ``transfer`` (source -> target, Table 4), ``mixed`` (every domain at
#: once, held-out folds, Table 3) or ``dg`` (domain generalization: trained on several labelled
#: domains, tested on a held-out one).
RunKind = Literal["transfer", "mixed", "dg"]
#: Every method a sweep can run, with its kind.
RUN_KINDS: dict[str, RunKind] = {**dict.fromkeys(TRANSFER_METHODS, "transfer"), "mixed": "mixed",
                                 **dict.fromkeys(GENERALIZATION_METHODS, "dg")}
#: The transfer methods whose training passes no target batch (they add no adaptation loss).
SOURCE_BATCH_ONLY: tuple[str, ...] = ("source_only", "adabn")

if len(RUN_KINDS) != len(TRANSFER_METHODS) + 1 + len(GENERALIZATION_METHODS):  # pragma: no cover - a name twice
    raise ImportError(f"a method name is listed twice among {TRANSFER_METHODS}, 'mixed' and {GENERALIZATION_METHODS}")
