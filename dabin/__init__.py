"""dabin: domain adaptation with Batch-Instance Normalization for PyTorch Lightning."""

from dabin.errors import DabinError

__version__ = "0.1.0"
__all__ = ["DabinError", "__version__"]
