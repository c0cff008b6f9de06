"""Lightning modules for the paper's two experiments, and what every run writes."""

from dabin.tasks.base import DomainTask, NonFiniteLossError
from dabin.tasks.dann import DANN
from dabin.tasks.mixed import MixedDomainClassifier
from dabin.tasks.outputs import MODEL_SELECTION, RunSummary
from dabin.tasks.progress import PlainProgress, progress_callback
from dabin.tasks.schedules import dann_lambda, dann_lr_factor, progress, step_decay_factor

__all__ = [
    "DANN",
    "MODEL_SELECTION",
    "DomainTask",
    "MixedDomainClassifier",
    "NonFiniteLossError",
    "PlainProgress",
    "RunSummary",
    "dann_lambda",
    "dann_lr_factor",
    "progress",
    "progress_callback",
    "step_decay_factor",
]
