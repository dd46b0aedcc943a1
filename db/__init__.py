"""The SEAM Studio store: SQLAlchemy models, engine, Alembic migrations, queries and files -> store.

    from db import open_store
    store = open_store("runs/")      # a folder (runs/seam.db), a .db file or any SQLAlchemy URL

See docs/store.md. The job queue and worker live in the `jobs` package, which builds on this one;
`seam/` never imports either (only seam/cli joins them).
"""

from .store import Store, open_store

__all__ = ["Store", "open_store"]
