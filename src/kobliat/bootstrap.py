"""The composition root: builds everything from Settings. Nothing is built at import time."""

from __future__ import annotations

from dataclasses import dataclass

from kobliat.auth import KeyChecker
from kobliat.db import migrate
from kobliat.db.engine import Database
from kobliat.settings import Settings


@dataclass
class Container:
    """What a running kobliat process holds."""

    settings: Settings
    db: Database
    keys: KeyChecker

    def close(self) -> None:
        """Release connections."""
        self.db.dispose()


def build(settings: Settings, *, run_migrations: bool = True) -> Container:
    """Connect, migrate (unless told not to) and wire the services."""
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    if run_migrations:
        migrate.upgrade(db.engine)
    return Container(settings=settings, db=db, keys=KeyChecker(db, settings.configured_api_keys()))
