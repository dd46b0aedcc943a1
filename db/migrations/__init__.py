"""Alembic migrations for the store (configured from Python by `db.migrate`; no alembic.ini)."""
