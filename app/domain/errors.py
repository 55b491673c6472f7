"""Errors the domain and services raise; one handler renders them as RFC 9457 problems.

Each error class names its problem type, title and status, so no service or router needs
to know about HTTP exceptions. Extra keyword arguments become extension members of the
problem document (for example the allowed actions of a refused transition).
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "urn:cleanwindow:problem:"


class DomainError(Exception):
    slug: ClassVar[str] = "error"
    title: ClassVar[str] = "Request could not be processed"
    status: ClassVar[int] = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug


class InvalidInput(DomainError):
    slug = "invalid-input"
    title = "Invalid input"
    status = 422


class NotAuthenticated(DomainError):
    slug = "not-authenticated"
    title = "Authentication required"
    status = 401

    def __init__(self, detail: str, **extensions: Any):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extensions)


class InvalidCredentials(DomainError):
    slug = "invalid-credentials"
    title = "Invalid username or password"
    status = 401


class RetryLater(DomainError):
    """An error that passes with time; says when, as `Retry-After` and `retry_after`."""

    def __init__(self, detail: str, *, retry_after_seconds: int):
        super().__init__(
            detail,
            headers={"Retry-After": str(retry_after_seconds)},
            retry_after=retry_after_seconds,
        )


class TooManyAttempts(RetryLater):
    slug = "too-many-attempts"
    title = "Too many failed attempts"
    status = 429


class Forbidden(DomainError):
    slug = "forbidden"
    title = "Not allowed for your role"
    status = 403


class NotFound(DomainError):
    slug = "not-found"
    title = "Not found"
    status = 404


class Conflict(DomainError):
    slug = "conflict"
    title = "Conflict with the current state"
    status = 409


class ServiceBusy(RetryLater):
    slug = "busy"
    title = "Service busy"
    status = 503


class DatabaseUnavailable(RetryLater):
    """The database cannot be reached, or no pooled connection came free in time."""

    slug = "database-unavailable"
    title = "Database unavailable"
    status = 503
