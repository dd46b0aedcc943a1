"""User-facing errors.

A `SeamError` carries one line that says what was wrong and how to fix it. The CLI prints it as
``error: <message>`` on stderr and exits with code 2; library callers can catch it.
"""


class SeamError(Exception):
    """Bad input or configuration that the user can fix (exit code 2 in the CLI)."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep it to one line: the CLI contract is a single `error:` line.
        super().__init__(" ".join(str(message).split()))
