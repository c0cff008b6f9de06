"""The adaptation methods by name.

``METHODS[name]`` is the :class:`~dabin.methods.base.AdaptationLoss` subclass a run builds as
``cls(features_dim, num_classes, **options)``, or None for a method that adds no loss:

* ``source_only``: the source classification loss alone (the baseline).
* ``adabn``: AdaBN (Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation",
  ICLR workshop 2017 / Pattern Recognition 2018): trained as ``source_only``; before testing, the
  trainer re-estimates every normalization layer's statistics on the unlabelled target training
  images (:func:`dabin.nn.recalibrate_norm_stats`: by default each layer's population statistics
  over all of them, as the paper's Algorithm 1; the DANN task's ``target_norm_stats``). Nothing
  happens in the loss, so there is no loss module.
* ``dann`` (:class:`DANNLoss`), ``cdan`` (:class:`CDANLoss`), ``cdan_e`` (:class:`CDANELoss`: CDAN
  with entropy conditioning), ``mcc`` (:class:`MCCLoss`), ``mdd`` (:class:`MDDLoss`), ``dan``
  (:class:`DANLoss`), ``bnm`` (:class:`BNMLoss`).

``GENERALIZATION[name]`` is the :class:`~dabin.methods.generalization.GeneralizationLoss`
subclass a domain-generalization run builds as ``cls(features_dim, num_classes, num_domains,
**options)`` (DomainBed's methods; the whole objective over the training domains, classification
included):

* ``erm`` (:class:`ERMLoss`), ``coral`` (:class:`CORALLoss`), ``mmd`` (:class:`MMDLoss`),
  ``group_dro`` (:class:`GroupDROLoss`), ``dg_dann`` (:class:`DomainAdversarialLoss`).

The two kinds are two mappings, because their modules are built and called differently; their
names are disjoint (:data:`dabin.methods.names.RUN_KINDS` holds both).

Each class names itself where it is defined (``class DANNLoss(AdaptationLoss, name="dann")``: its
:attr:`~dabin.methods.base.NamedMethod.registry_name`), so a run records a loss by the name that
rebuilds it without asking the registry, and the registry is the only module that knows them all;
it checks on import that every line's class names itself so.
"""

from __future__ import annotations

from typing import Any

from dabin.errors import DabinError
from dabin.methods.base import AdaptationLoss
from dabin.methods.bnm import BNMLoss
from dabin.methods.cdan import CDANELoss, CDANLoss
from dabin.methods.coral import CORALLoss
from dabin.methods.dan import DANLoss
from dabin.methods.dann import DANNLoss
from dabin.methods.dg_dann import DomainAdversarialLoss
from dabin.methods.domain_mmd import MMDLoss
from dabin.methods.generalization import ERMLoss, GeneralizationLoss
from dabin.methods.group_dro import GroupDROLoss
from dabin.methods.mcc import MCCLoss
from dabin.methods.mdd import MDDLoss
from dabin.methods.names import GENERALIZATION_METHODS, TRANSFER_METHODS

__all__ = ["GENERALIZATION", "METHODS", "build_generalization_method", "build_method", "method_names"]

#: Method name → loss class, or None where the method adds no loss (``source_only``, ``adabn``).
METHODS: dict[str, type[AdaptationLoss] | None] = {
    "source_only": None,
    "dann": DANNLoss,
    "adabn": None,
    "cdan": CDANLoss,
    "cdan_e": CDANELoss,
    "mcc": MCCLoss,
    "mdd": MDDLoss,
    "dan": DANLoss,
    "bnm": BNMLoss,
}


#: Domain-generalization method name → objective class.
GENERALIZATION: dict[str, type[GeneralizationLoss]] = {
    "erm": ERMLoss,
    "coral": CORALLoss,
    "mmd": MMDLoss,
    "group_dro": GroupDROLoss,
    "dg_dann": DomainAdversarialLoss,
}


if tuple(METHODS) != TRANSFER_METHODS:  # pragma: no cover - a registry line without its name, or the reverse
    raise ImportError(f"dabin.methods.names.TRANSFER_METHODS {TRANSFER_METHODS} and the registry {tuple(METHODS)} differ")
if tuple(GENERALIZATION) != GENERALIZATION_METHODS:  # pragma: no cover - as above, for the DG methods
    raise ImportError(f"dabin.methods.names.GENERALIZATION_METHODS {GENERALIZATION_METHODS} and the registry "
                      f"{tuple(GENERALIZATION)} differ")
_misnamed = [f"{name}: {cls.__qualname__}(name={cls.registry_name!r})"
             for name, cls in [*METHODS.items(), *GENERALIZATION.items()]
             if cls is not None and cls.registry_name != name]
if _misnamed:  # pragma: no cover - a class named otherwise than its registry line
    raise ImportError(f"registry lines whose class names itself otherwise: {'; '.join(_misnamed)}")


def method_names() -> tuple[str, ...]:
    """The registered method names, in registry order."""
    return tuple(METHODS)


def build_method(name: str, features_dim: int, num_classes: int, **options: Any) -> AdaptationLoss | None:
    """The loss module of method ``name``, or None for ``source_only`` and ``adabn``.

    Args:
        name: A key of :data:`METHODS`.
        features_dim: ``D``, the width of the bottleneck features.
        num_classes: ``C``.
        **options: The method's keyword options (e.g. ``margin=2.0`` for ``mdd``).

    Returns:
        The module, or None.

    Raises:
        DabinError: For an unknown name, or options given to a method without a loss.
    """
    if name not in METHODS:
        raise DabinError(f"unknown adaptation method {name!r}; choose from {', '.join(METHODS)}")
    cls = METHODS[name]
    if cls is None:
        if options:
            raise DabinError(f"method {name!r} has no options, got {', '.join(sorted(options))}")
        return None
    return cls(features_dim, num_classes, **options)


def build_generalization_method(name: str, features_dim: int, num_classes: int, num_domains: int,
                                **options: Any) -> GeneralizationLoss:
    """The objective module of domain-generalization method ``name``.

    Args:
        name: A key of :data:`GENERALIZATION`.
        features_dim: ``D``, the width of the features the classifier reads.
        num_classes: ``C``.
        num_domains: ``K``, the number of training domains.
        **options: The method's keyword options (e.g. ``eta=0.1`` for ``group_dro``).

    Returns:
        The module.

    Raises:
        DabinError: For an unknown name (the message lists the known ones).
    """
    if name not in GENERALIZATION:
        raise DabinError(f"unknown domain-generalization method {name!r}; choose from {', '.join(GENERALIZATION)}")
    return GENERALIZATION[name](features_dim, num_classes, num_domains, **options)
