"""Deprecated: the earlier name of :mod:`dabin.modules`, kept so configs and checkpoints that name it still load.

``class_path: dabin.tasks.DANN`` (configs and the ``config.yaml`` Lightning stores beside every
run) resolves to :class:`dabin.modules.TransferModule`; ``dabin.tasks.MixedDomainClassifier`` to
:class:`dabin.modules.MixedDomainClassifier`, ``dabin.tasks.DomainTask`` to
:class:`dabin.modules.DomainModule`. Importing this package warns (a :class:`DeprecationWarning`
pointing at the importer, once a process); it will be removed. New code and configs name
:mod:`dabin.modules`.
"""

import warnings

from dabin.modules import DANN, MixedDomainClassifier, TransferModule
from dabin.modules.base import DomainModule as DomainTask

__all__ = ["DANN", "DomainTask", "MixedDomainClassifier", "TransferModule"]

warnings.warn("dabin.tasks is the earlier name of dabin.modules and will be removed; use dabin.modules.TransferModule "
              "for dabin.tasks.DANN and dabin.tasks.TransferModule, dabin.modules.MixedDomainClassifier for "
              "dabin.tasks.MixedDomainClassifier and dabin.modules.DomainModule for dabin.tasks.DomainTask (in a "
              "config: class_path: dabin.modules.TransferModule)", DeprecationWarning, stacklevel=2)
