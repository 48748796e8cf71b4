"""The errors that mean "the options cannot be used as given", raised by any layer; the command line exits with
status 2 for them (:data:`USAGE_ERRORS`) and 1 for any other error."""

from __future__ import annotations

__all__ = ["UsageError", "InputNotFoundError", "USAGE_ERRORS"]


class UsageError(ValueError):
    """A command line, config file or config field that cannot be used as given."""


class InputNotFoundError(FileNotFoundError):
    """A folder, file or Hub repo named by an option (``--dataset``, ``--label_set``) that does not exist or holds
    nothing usable."""


USAGE_ERRORS = (UsageError, InputNotFoundError)
