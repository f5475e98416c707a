"""Run by Alembic for every ``db`` command, with what ``migrations.config`` put in its
attributes: the service's settings and its database module (Alembic loads this file outside
the package, so it cannot import the package relatively)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

settings = context.config.attributes["settings"]
database = context.config.attributes["database"]
# Every domain's models, loaded or not by the service, make up the schema.
database.import_domain_models()

# Any number of deploys may run `db upgrade` at once (init containers of several pods): on
# PostgreSQL they queue on this lock, and each one after the first finds nothing to do.
ADVISORY_LOCK = 0x6D69_6772  # "migr"


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=database.Base.metadata,
        # SQLite alters a table by copying it: batch mode does that for every ALTER.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        if not database_is_ahead():
            context.run_migrations()


def database_is_ahead() -> bool:
    """For ``upgrade heads``: whether the database is at revisions this code has no script
    for (a newer release migrated it), recorded for ``migrations.upgrade`` to report."""
    ahead = context.config.attributes.get("ahead")
    if ahead is None:
        return False
    known = {script.revision for script in context.script.walk_revisions()}
    ahead.update(set(context.get_context().get_current_heads()) - known)
    return bool(ahead)


async def run_online() -> None:
    engine = database.create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


asyncio.run(run_online())
