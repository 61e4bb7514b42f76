"""The one exception type that reaches users as a single actionable line."""


class BrainmetsError(Exception):
    """A problem with the user's input or configuration; its message names the file and the fix."""
