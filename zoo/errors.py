"""User-facing errors: one line, naming the argument or file and what was expected.

Every error a user can cause by bad input raises a subclass of `ZooError` (a `ValueError`),
so CLIs print the message without a traceback and exit 2.
"""


class ZooError(ValueError):
    """Bad input from the user: a one-line message naming the argument or file."""


class ConfigError(ZooError):
    """An argument or config value outside what is allowed."""


class DataError(ZooError):
    """A dataset file that is missing, unreadable or inconsistent."""
