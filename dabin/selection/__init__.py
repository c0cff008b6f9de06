"""Model selection without target labels: unsupervised validators (see :mod:`dabin.selection.validators`)."""

from dabin.selection.validators import (
    VALIDATOR_NAMES,
    VALIDATORS,
    UndefinedScore,
    ValidationInputs,
    bnm,
    class_ami,
    dev,
    entropy,
    im,
    mixval,
    score_all,
    snd,
    source_val,
)

__all__ = [
    "VALIDATORS",
    "VALIDATOR_NAMES",
    "UndefinedScore",
    "ValidationInputs",
    "bnm",
    "class_ami",
    "dev",
    "entropy",
    "im",
    "mixval",
    "score_all",
    "snd",
    "source_val",
]
