"""Errors a user can cause.

The library raises :class:`UserError` for anything the user can fix (a bad architecture string,
an unknown benchmark, a missing column). The CLI turns it into one line on stderr and exit code 2;
any other exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A problem with the user's input; the message names the thing and what was expected."""
