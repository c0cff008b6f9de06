"""Model selection without target labels: unsupervised validators (see :mod:`dabin.selection.validators`).

The package's names are the validators module's, listed once there.
"""

from dabin.selection.validators import *  # noqa: F403
from dabin.selection.validators import __all__
