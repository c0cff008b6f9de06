"""The one exception type users see: a bad input, stated in one line."""


class DabinError(ValueError):
    """A user-facing error: its message names the problem and the offending value.

    The command line prints it as a single ``dabin: error: ...`` line and exits with status 2,
    without a traceback.
    """
