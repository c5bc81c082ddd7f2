"""The one error type the engine raises for bad input."""

from __future__ import annotations


class SpecError(ValueError):
    """A network spec, training config or dataset that cannot be used.

    ``field`` is the path of the offending value (``layers[1].weights``) so that
    callers such as the HTTP API can point the user at it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
