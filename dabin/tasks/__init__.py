"""The earlier name of :mod:`dabin.modules`, kept so configs and checkpoints that name it still load.

``class_path: dabin.tasks.DANN`` (configs and the ``config.yaml`` Lightning stores beside every
run) resolves to :class:`dabin.modules.TransferModule`; ``dabin.tasks.MixedDomainClassifier`` to
:class:`dabin.modules.MixedDomainClassifier`. New code imports :mod:`dabin.modules`.
"""

from dabin.modules import DANN, MixedDomainClassifier, TransferModule
from dabin.modules.base import DomainModule as DomainTask

__all__ = ["DANN", "DomainTask", "MixedDomainClassifier", "TransferModule"]
