"""Schema migrations with Alembic, configured from Python (no alembic.ini needed in the cwd).

`ensure_schema` runs on every `open_store`: a new database is created at the newest revision,
an older one is upgraded in one transaction, and a database written by a newer seam (a revision
this version does not know) is refused with a message saying to upgrade seam.

The upgrade holds the store's write lock from the start (``BEGIN IMMEDIATE`` on SQLite, the
advisory write lock on PostgreSQL), so two processes opening an old or a new database at once
upgrade it once. On SQLite foreign keys are switched off for the duration (the SQLite way to let
batch migrations copy tables) and checked before commit.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from seam.errors import SeamError

from .engine import WRITE_OPTION, is_sqlite

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at the migrations shipped in this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    heads = script_directory().get_heads()
    if len(heads) != 1:  # a developer error, not a user one
        raise RuntimeError(f"db/migrations has {len(heads)} heads {heads}; merge them (python -m db merge)")
    return heads[0]


def known_revisions() -> list[str]:
    """Every revision this version ships, oldest first."""
    return [rev.revision for rev in reversed(list(script_directory().walk_revisions()))]


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _user_tables(conn: Connection) -> list[str]:
    return [t for t in inspect(conn).get_table_names() if t != "alembic_version" and not t.startswith("sqlite_")]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade (or create) the schema to `revision` in one write transaction."""
    with engine.connect() as conn:
        sqlite = is_sqlite(engine)
        raw = conn.connection.driver_connection  # pragmas below must run outside a transaction
        # the store's write lock first (BEGIN IMMEDIATE / PostgreSQL's advisory lock), so processes
        # opening a new store at once create the schema once: Alembic re-reads the version under it
        conn.execution_options(**{WRITE_OPTION: True})
        if sqlite:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                command.upgrade(alembic_config(connection=conn), revision)
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise RuntimeError(f"migration to {revision} left foreign-key violations: {bad[:5]}")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys = ON")


def ensure_schema(engine: Engine, *, display: str, allow_upgrade: bool = True) -> str:
    """Create or upgrade the schema to head; return the revision the database is now at."""
    head = head_revision()
    with engine.connect() as conn:
        # tables first, then the version: another process creating the schema commits both at once, so a
        # version read after its tables are seen is its committed one (the reverse order races: no version
        # table yet, then the new tables, read as a foreign database)
        tables = _user_tables(conn)
        current = current_revision(conn)
    if current == head:
        return head
    if current is None and tables:
        raise SeamError(
            f"{display} already holds tables ({', '.join(sorted(tables)[:5])}) but no seam schema version; "
            "it is not a seam store: point --db at a new file or folder"
        )
    known = known_revisions()
    if current is not None and current not in known:
        raise SeamError(
            f"{display} was written by a newer seam (schema revision {current}; this seam knows up to {head}): "
            "upgrade seam (pip install -U seam-studio) or open another store"
        )
    if current is not None and not allow_upgrade:
        raise SeamError(
            f"{display} is at schema revision {current} and this seam needs {head}: "
            f"back it up, then run `python -m db upgrade {display}`"
        )
    try:
        upgrade(engine, head)
    except SeamError:
        raise
    except Exception as exc:  # read-only file, permissions, a failing migration
        what = "create the schema in" if current is None else f"upgrade schema {current} -> {head} of"
        raise SeamError(
            f"could not {what} {display} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            f"nothing was changed; make it writable and run `python -m db upgrade {display}`"
        ) from exc
    return head
