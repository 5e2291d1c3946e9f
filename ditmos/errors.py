"""The one exception type the CLI turns into a one-line message."""


class DitmosError(Exception):
    """A user-facing error: bad input, missing file, impossible request.

    The CLI prints ``str(err)`` on one line to stderr and exits with 2; a
    traceback is shown only with ``ditmos --debug``.
    """
