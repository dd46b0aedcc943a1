"""Engines: where a store lives (folder, .db file or any SQLAlchemy URL) and SQLite settings.

SQLite gets WAL (readers never block the writer and never fail while it writes), foreign keys
on, a 30 s busy timeout and ``synchronous=NORMAL`` (durable against a killed process). Python's
sqlite3 module is put in autocommit mode so SQLAlchemy's ``begin`` emits the ``BEGIN`` itself:
plain reads use a deferred ``BEGIN``; writes (connections with the ``sqlite_write`` execution
option, see `Store.write`) use ``BEGIN IMMEDIATE``, which takes the write lock up front and waits
for it under the busy timeout, instead of failing with "database is locked" when a read
transaction later tries to write.

PostgreSQL (``postgresql+psycopg://user@host:port/db``) keeps the same contract: a write
transaction's first statement takes a transaction-scoped advisory lock (`PG_WRITE_LOCK`), so
store writers queue one at a time exactly as on SQLite (check-then-insert calls such as
`register_model` stay race-free), waiting at most `BUSY_TIMEOUT_MS` like SQLite's busy timeout;
reads run in REPEATABLE READ (one snapshot per read block) and never wait for writers.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import StaticPool

from seam.errors import SeamError

DEFAULT_FILENAME = "seam.db"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "sqlite_write"  # execution option of write connections (every dialect)
PG_WRITE_LOCK = 0x5EA3_0001  # pg_advisory_xact_lock key that serializes store writes on PostgreSQL


def resolve_url(target: str | Path) -> str:
    """Turn a folder, a ``.db`` path or a SQLAlchemy URL into a URL.

    A folder (existing, or a new path without a suffix) means ``<folder>/seam.db``; a path ending
    in .db/.sqlite/.sqlite3 (or an existing file) is that SQLite file; anything with ``://`` is
    used as is.
    """
    text = str(target).strip()
    if not text:
        raise SeamError("empty store location: pass a folder, a .db file or a SQLAlchemy URL (e.g. sqlite:///seam.db)")
    if "://" in text:
        try:
            make_url(text)
        except Exception as exc:  # sqlalchemy.exc.ArgumentError
            raise SeamError(f"store URL {text!r} is not a valid SQLAlchemy URL ({exc}); e.g. sqlite:///path/seam.db") from None
        return text
    path = Path(text).expanduser()
    if path.is_dir() or (not path.exists() and path.suffix == ""):
        path = path / DEFAULT_FILENAME
    elif path.suffix.lower() not in SQLITE_SUFFIXES and not path.is_file():
        raise SeamError(
            f"store location {text!r} is neither a folder nor a SQLite file ending in {', '.join(SQLITE_SUFFIXES)}; "
            "pass a folder (the store is <folder>/seam.db), a .db file or a SQLAlchemy URL"
        )
    if path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise SeamError(f"store location {text!r} is an existing file that is not a SQLite database; "
                                "refusing to overwrite it: pass a folder, a new .db path or a SQLAlchemy URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets the pragmas and transaction handling described above."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend != "sqlite":
        try:
            engine = create_engine(url, echo=echo, pool_pre_ping=True)
        except (NoSuchModuleError, ImportError) as exc:
            raise SeamError(
                f"store URL {parsed.render_as_string(hide_password=True)!r} needs a database driver that is not "
                f"installed ({exc}); install it (e.g. pip install 'psycopg[binary]' and use postgresql+psycopg://) "
                "or use a SQLite folder or .db file"
            ) from None
        if backend == "postgresql":
            _serialize_postgres_writes(engine)
        return engine
    memory = parsed.database in (None, "", ":memory:")
    kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared in-memory database for every connection
    engine = create_engine(url, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001 - DBAPI objects
        dbapi_conn.isolation_level = None  # autocommit in the driver; SQLAlchemy emits BEGIN below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if not memory:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _serialize_postgres_writes(engine: Engine) -> None:
    """Write transactions (`WRITE_OPTION`) start by taking the store's advisory write lock."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        if conn.get_execution_options().get(WRITE_OPTION, False):
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


def read_options(engine: Engine) -> dict:
    """Execution options of a read block: one snapshot for the whole block on PostgreSQL."""
    return {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
