"""The one error the handlers raise; the app turns it into a JSON response with its status."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, extra: dict[str, object] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}
