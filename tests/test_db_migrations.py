"""Alembic migrations: old databases upgrade cleanly, the models match the migrations."""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db import open_store
from db.__main__ import main as db_main
from db.engine import make_engine, resolve_url
from db.migrate import alembic_config, head_revision, known_revisions, upgrade
from db.models import Base
from jobs import enqueue_job, get_job
from seam.errors import SeamError


def _first_revision_db(path):
    """A database exactly as the first migration made it, with a little data in it."""
    first = known_revisions()[0]
    engine = make_engine(resolve_url(path))
    upgrade(engine, first)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO datasets (id, name, n_instructions, created_at) VALUES (1, 'old', 1, '2024-01-01')")
        conn.execute("INSERT INTO instructions (dataset_id, ext_id, prompt, chosen) VALUES (1, 'q0', 'p', 'c')")
    return first


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_there_is_an_upgrade_path():
    revisions = known_revisions()
    assert len(revisions) >= 2 and revisions[-1] == head_revision()


def test_first_revision_database_upgrades_on_open(tmp_path):
    path = tmp_path / "old.db"
    first = _first_revision_db(path)
    assert "jobs" not in _tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == first

    with pytest.raises(SeamError, match=r"python -m db upgrade"):
        open_store(path, upgrade=False)  # refuses, and says how

    store = open_store(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {"jobs", "job_chunks"} <= _tables(path)
    assert store.instructions(store.dataset_id("old"))["id"].tolist() == ["q0"]  # data kept
    job = enqueue_job(store, "synthetic-score", {"score_run_id": 1})
    assert get_job(store, job)["status"] == "queued"
    store.close()
    open_store(path).close()  # opening again at head is a no-op


def test_models_match_migrations(tmp_path):
    engine = make_engine(resolve_url(tmp_path / "head.db"))
    upgrade(engine, "head")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"db/models.py and db/migrations differ; add a revision (python -m db revision): {diff}"


def test_downgrade_to_base_and_back(tmp_path):
    path = tmp_path / "d.db"
    open_store(path).close()
    cfg = alembic_config(url=resolve_url(path))
    command.downgrade(cfg, "base")
    assert _tables(path) <= {"alembic_version"}
    open_store(path).close()
    assert "score_details" in _tables(path)


def test_newer_or_foreign_databases_are_refused(tmp_path):
    path = tmp_path / "new.db"
    open_store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
    with pytest.raises(SeamError, match="newer seam.*upgrade seam"):
        open_store(path)

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(SeamError, match="not a seam store"):
        open_store(other)


def test_db_maintenance_command(tmp_path, capsys):
    path = tmp_path / "old.db"
    first = _first_revision_db(path)
    assert db_main(["current", str(path)]) == 0
    assert f"schema {first}" in capsys.readouterr().out
    assert db_main(["upgrade", str(path)]) == 0
    assert head_revision() in capsys.readouterr().out
