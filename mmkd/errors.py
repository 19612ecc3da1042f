"""Errors the CLI maps to exit codes: bad input is exit 2 with one line, nothing launched."""


class UserInputError(ValueError):
    """Bad input from the user (config, usage, missing files): the CLI prints the message and exits 2.

    The message is one line that names the offending key or value, e.g.
    ``search.lr.low: must be > 0 (got -0.1)``.
    """
