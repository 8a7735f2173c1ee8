"""Errors a user can cause and fix.

Anything derived from :class:`UserError` carries a message written for a person; the CLI
prints it as one line on stderr and the GUI shows it in a dialog. Anything else is a bug.
"""


class UserError(Exception):
    """A problem with what the user asked for or gave us, explained in one sentence."""


class ConfigError(UserError, ValueError):
    """A setting with a value that cannot work."""


class DataError(UserError):
    """A dataset that cannot be found, downloaded or read."""


class CheckpointError(UserError):
    """A file that is not a usable Latent Explorer checkpoint."""


class TrainingError(UserError):
    """Training cannot go on (diverged, out of memory)."""
