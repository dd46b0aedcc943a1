"""Engines: where a store lives (folder, .db file or any SQLAlchemy URL) and SQLite settings.

SQLite gets WAL (readers never block the writer and never fail while it writes), foreign keys
on, a 30 s busy timeout and ``synchronous=NORMAL`` (durable against a killed process). Python's
sqlite3 module is put in autocommit mode so SQLAlchemy's ``begin`` emits the ``BEGIN`` itself:
plain reads use a deferred ``BEGIN``; writes (connections with the ``sqlite_write`` execution
option, see `Store.write`) use ``BEGIN IMMEDIATE``, which takes the write lock up front and waits
for it under the busy timeout, instead of failing with "database is locked" when a read
transaction later tries to write.
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
WRITE_OPTION = "sqlite_write"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets the pragmas and transaction handling described above."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url, echo=echo, pool_pre_ping=True)
        except (NoSuchModuleError, ImportError) as exc:
            raise SeamError(
                f"store URL {parsed.render_as_string(hide_password=True)!r} needs a database driver that is not "
                f"installed ({exc}); install it (e.g. pip install psycopg) or use a SQLite folder or .db file"
            ) from None
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


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
