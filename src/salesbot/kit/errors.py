"""The application's error base: expected failures carry their HTTP status, so none becomes a 500."""

from __future__ import annotations


class AppError(Exception):
    """An expected failure with a message for the caller and the HTTP status that describes it."""

    status_code: int = 400

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(AppError):
    status_code = 404


class ConflictError(AppError):
    status_code = 409
