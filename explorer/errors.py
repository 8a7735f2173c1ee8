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


def describe_failure(exc: BaseException) -> str:
    """One line for a person about an unexpected failure in background work: a UserError's
    own sentence, out of memory as advice, anything else as its type and message."""
    if isinstance(exc, UserError):
        return str(exc)
    text = " ".join(str(exc).split())
    from explorer.oom import is_out_of_memory, out_of_memory_message

    if is_out_of_memory(exc):
        return out_of_memory_message(exc, smaller_batch="a smaller batch", fewer_images="fewer images",
                                     sentences=True)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
