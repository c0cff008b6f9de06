"""The LightningModules: one transfer module for every adaptation method, the mixed-domain classifier,
and what every run writes.

("Task" means a source→target pair everywhere in dabin; these are modules. The package was
``dabin.tasks`` and the transfer module ``DANN``: :mod:`dabin.tasks` re-exports these names, so
configs and checkpoints that name ``dabin.tasks.DANN`` still work; it is deprecated, warns when
imported, and will be removed.)
"""

from dabin.modules.base import DomainModule, NonFiniteLossError
from dabin.modules.transfer import DANN, TransferModule
from dabin.modules.mixed import MixedDomainClassifier
from dabin.modules.generalization import GeneralizationModule
from dabin.modules.outputs import MODEL_SELECTION, RunSummary
from dabin.modules.progress import PlainProgress, progress_callback
from dabin.schedules import dann_lambda, dann_lr_factor, progress, step_decay_factor

__all__ = [
    "DANN",
    "MODEL_SELECTION",
    "DomainModule",
    "GeneralizationModule",
    "MixedDomainClassifier",
    "NonFiniteLossError",
    "PlainProgress",
    "RunSummary",
    "dann_lambda",
    "dann_lr_factor",
    "progress",
    "progress_callback",
    "step_decay_factor",
    "TransferModule",
]
