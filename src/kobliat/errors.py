"""Domain errors: plain exceptions the models raise; the HTTP edge maps them to problem+json."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses. `code` names the rule; `status` is the HTTP status."""

    status = 422
    code = "invalid-request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The input is well-formed but not acceptable (422)."""

    status = 422
    code = "invalid-input"


class RuleViolation(DomainError):
    """The change would break a rule of the model (409)."""

    status = 409
    code = "rule-violation"


class NotFound(DomainError):
    """No such resource (404)."""

    status = 404
    code = "not-found"
