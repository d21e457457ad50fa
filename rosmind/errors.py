"""User-facing errors.

A ``UserError`` is something the user can fix (a bad file, an unknown name, a missing
topic). The CLI prints its message as one paragraph and exits nonzero, with no traceback.
"""


class UserError(Exception):
    """An error caused by user input; ``str(err)`` names what is wrong and where."""

    exit_code = 2


class SpecError(UserError):
    """A robot spec, config, or launch file that fails validation."""


class UnknownNameError(UserError):
    """A registry lookup for a name nobody registered."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt, or made for another robot."""


class DatasetError(UserError):
    """A dataset that is missing, empty, corrupt, or lacks a key."""


class TopicTimeoutError(UserError):
    """A topic the graph needs never arrived."""


class HardwareError(UserError):
    """A device that is absent, does not answer, or answers wrongly; the message names the
    device (port, id) and what to check."""
