"""The one exception type users see: a clear one-line message, exit code 2 from the CLI."""


class PoolbertError(Exception):
    """Bad input or settings, reported to the user as one line (no traceback)."""
