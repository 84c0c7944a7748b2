"""API keys: generated once, stored only as SHA-256 hashes, checked on every REST request.

Keys are 32 random bytes, so a fast hash is enough (no password-style stretching needed).
A checked key is remembered for `CACHE_SECONDS`, so a revoked key stops working within that time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from datetime import datetime
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import Request, Security
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, insert, select, update
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from kobliat import problems
from kobliat.db import dialect
from kobliat.db.engine import Database
from kobliat.db.tables import api_keys
from kobliat.db.types import utcnow
from kobliat.problems import Problem

PREFIX = "kbl_"
CACHE_SECONDS = 30.0


class UnknownKey(LookupError):
    """No key, or more than one, matches what was given."""


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known of a stored key: everything but the key itself."""

    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, *, name: str = "default") -> str:
    """Make a new key, store its hash, and return the key (shown once, never again)."""
    key = PREFIX + secrets.token_urlsafe(32)
    db.run(
        lambda uow: uow.connection.execute(
            insert(api_keys).values(
                id=uuid4(),
                name=name,
                prefix=key[:8],
                key_hash=hash_key(key),
                created_at=utcnow(),
            )
        )
    )
    return key


def stored_key_count(db: Database) -> int:
    """How many keys (not revoked) the database holds."""
    with db.reading() as conn:
        count = conn.execute(
            select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        ).scalar_one()
    return int(count)


def list_keys(db: Database) -> list[KeyInfo]:
    """Every stored key, oldest first (revoked ones too)."""
    fields = [field.name for field in dataclasses.fields(KeyInfo)]
    query = select(*(api_keys.c[name] for name in fields))
    with db.reading() as conn:
        rows = conn.execute(query.order_by(api_keys.c.created_at, api_keys.c.id))
        return [KeyInfo(**row._mapping) for row in rows]


def revoke_key(db: Database, ref: str) -> KeyInfo:
    """Revoke the one key whose id, id prefix or key prefix (`kbl_xxxx`) is `ref`."""
    matches = [
        key
        for key in list_keys(db)
        if ref and (str(key.id).startswith(ref.lower()) or key.prefix == ref)
    ]
    if len(matches) != 1:
        found = "no key" if not matches else f"{len(matches)} keys"
        raise UnknownKey(f"{found} match {ref!r}; give more of the id")
    key = matches[0]
    if key.revoked_at is not None:
        return key
    now = utcnow()
    db.run(
        lambda uow: uow.connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    )
    return dataclasses.replace(key, revoked_at=now)


class KeyChecker:
    """Checks bearer keys against KOBLIAT_API_KEYS and the stored hashes (briefly cached)."""

    def __init__(self, db: Database, configured: list[str], *, ttl: float = CACHE_SECONDS) -> None:
        self._db = db
        self._configured = [hash_key(k) for k in configured]
        self._ttl = ttl
        self._known: dict[str, float] = {}

    def is_known(self, key: str) -> bool:
        """True for a configured key or one found valid moments ago (no database read)."""
        digest = hash_key(key)
        if any(hmac.compare_digest(digest, known) for known in self._configured):
            return True
        seen = self._known.get(digest)
        return seen is not None and time.monotonic() - seen < self._ttl

    def is_valid(self, key: str) -> bool:
        """True for a configured key or a stored, unrevoked one."""
        if self.is_known(key):
            return True
        digest = hash_key(key)
        with self._db.reading() as conn:
            found = conn.execute(
                select(api_keys.c.id).where(
                    api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        if found is None:
            return False
        # Written when the cache is refreshed, so a busy key costs one write per CACHE_SECONDS.
        now = utcnow()
        self._db.run(
            lambda uow: uow.connection.execute(
                update(api_keys).where(api_keys.c.id == found.id).values(last_used_at=now)
            )
        )
        self._known[digest] = time.monotonic()
        return True


# Declared through FastAPI's security scheme so the OpenAPI schema says which routes need a key;
# the check and its 401 problem stay ours (auto_error=False).
_bearer = HTTPBearer(auto_error=False, description="an API key (`kobliat keys create`)")


_CHECKED = "kobliat.api_key_checked"  # scope key: RequireKeyFirst accepted the key
_MISSING = "send the API key as `Authorization: Bearer <key>`"


def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """FastAPI dependency: a valid `Authorization: Bearer <key>` or a 401 problem."""
    if request.scope.get(_CHECKED):
        return
    key = credentials.credentials.strip() if credentials is not None else ""
    if not key:
        raise Problem(401, "missing-api-key", _MISSING)
    checker: KeyChecker = request.app.state.kobliat.keys
    if not checker.is_valid(key):
        raise Problem(401, "invalid-api-key", "the API key is not valid")


class RequireKeyFirst:
    """Check the API key of REST requests from their headers, before the body is read, so an
    unauthenticated client cannot make the server read (or hold) anything it sends.

    `protected` holds the first path segments of the routes that need a key; the routes keep
    `require_api_key` too (it documents the scheme and skips the work done here).
    """

    def __init__(self, app: ASGIApp, *, protected: frozenset[str]) -> None:
        self.app = app
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http" or scope["path"].split("/", 2)[1] not in self.protected:
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope)
        if refusal is None:
            scope[_CHECKED] = True
            await self.app(scope, receive, send)
            return
        status, code, detail, headers = refusal
        _name_route(scope)
        # The body is left unread: `LimitBodies` (outside) closes the connection after this.
        await problems.send_problem(send, status, code, detail, headers=headers)

    async def _refusal(self, scope: Scope) -> tuple[int, str, str, dict[str, str]] | None:
        key = _bearer_key(scope)
        if not key:
            return 401, "missing-api-key", _MISSING, {}
        checker: KeyChecker = scope["app"].state.kobliat.keys
        try:
            valid = checker.is_known(key) or await run_in_threadpool(checker.is_valid, key)
        except Exception as exc:
            if not dialect.is_unavailable(exc):
                raise
            problems.OUTAGES.refused(exc)
            return problems.unavailable("the database is unavailable; try again")
        return None if valid else (401, "invalid-api-key", "the API key is not valid", {})


def _name_route(scope: Scope) -> None:
    """Name the route a refused request was aimed at, as the router would have (a full match,
    else one that differs only by method), so the request metrics count it under that route's
    template. None matches: it stays `unmatched`, never the raw path (one series per id)."""
    partial = None
    for context in iter_route_contexts(scope["app"].router.routes):  # through included routers
        match, _ = context.matches(scope)
        if match is Match.FULL:
            scope["route"] = context.original_route
            return
        if match is Match.PARTIAL and partial is None:
            partial = context.original_route
    if partial is not None:
        scope["route"] = partial


def _bearer_key(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key.strip() if scheme.lower() == "bearer" else ""
    return ""
