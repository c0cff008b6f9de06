"""The one exception type users see: a bad input, stated in one line."""


class DabinError(ValueError):
    """A user-facing error: its message names the problem and the offending value.

    The command line prints it as a single ``dabin: error: ...`` line and exits with status 2,
    without a traceback.
    """


#: Exit status of a trainer stopped by a pre-emption signal after saving its checkpoint (sysexits'
#: EX_TEMPFAIL, "try again"): the run is unfinished, not failed, and resumes from that checkpoint.
EXIT_PREEMPTED = 75
