"""The one error a request can end in: :class:`RequestError`, answered as JSON."""
from __future__ import annotations


class RequestError(Exception):
    """A request we cannot answer; becomes ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, message: str, code: str = "bad_request", status: int = 400):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
