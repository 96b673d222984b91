"""The one exception type users see: a clear one-line message, exit code 2 from the CLI."""


class PoolbertError(Exception):
    """Bad input or settings, reported to the user as one line (no traceback). A line break
    that arrives inside a message (a column name or a label read from the user's file) is
    shown escaped, so the message stays one line whatever the data holds."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
