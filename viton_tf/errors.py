"""The one exception type for a user's mistake: the CLI prints it as one line."""


class UserError(Exception):
    """Bad input from the user (missing folder, corrupt file, bad value), with a message naming it."""
