"""The store on a real PostgreSQL server that this file starts on 127.0.0.1 (and always stops).

Skipped, with the reason, when the server binaries (initdb, pg_ctl) or the psycopg driver are
missing; `scripts/ci_services.sh` installs both, so CI runs it. Running as root (CI, containers)
the throwaway cluster runs as the `postgres` system user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from db import open_store
from db.migrate import current_revision, head_revision
from jobs import cancel_job, enqueue_job, get_job
from jobs.kinds.synthetic import synthetic_frames
from jobs.worker import Worker
from seam.errors import SeamError

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install 'psycopg[binary]'")


def _pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    port: int
    user: str = "seam"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="module")
def pg():
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                    "install them with `apt-get install postgresql` (scripts/ci_services.sh does)")
    run_as: dict = {}
    if os.geteuid() == 0:  # the server refuses to run as root: use the postgres system user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` system user to run the test server as")
        run_as = {"user": "postgres", "group": "postgres"}
    base = Path(tempfile.mkdtemp(prefix="seam-pg-"))  # short path: the socket lives here too
    if run_as:
        shutil.chown(base, "postgres", "postgres")
    data, log = base / "data", base / "server.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def pg_cmd(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, env=env,
                              cwd=base, timeout=timeout, **run_as)

    started = False
    try:
        init = pg_cmd("initdb", "-D", str(data), "-U", "seam", "-A", "trust", "-E", "UTF8", "--no-sync")
        assert init.returncode == 0, f"initdb failed: {init.stderr[-2000:]}"
        for _attempt in range(3):  # a free port can be taken between the probe and the start
            port = _free_port()
            opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
            start = pg_cmd("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", opts, "start")
            if start.returncode == 0:
                started = True
                break
        assert started, f"pg_ctl start failed: {start.stderr[-1000:]}\n{log.read_text()[-2000:] if log.exists() else ''}"
        yield PgServer(port)
    finally:
        if started or (data / "postmaster.pid").exists():
            stop = pg_cmd("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop", timeout=60)
            pid_file = data / "postmaster.pid"
            if stop.returncode != 0 and pid_file.exists():  # the postmaster this fixture started
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def store(pg, request):
    s = open_store(pg.new_database(f"t_{request.node.name[:40].lower()}"))
    yield s
    s.close()


def test_postgres_new_database_opened_by_several_processes_at_once(pg):
    url = pg.new_database("fresh")
    code = f"from db import open_store; open_store({url!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors  # the schema is created once, under the write lock
    store = open_store(url)
    with store.read() as conn:
        assert current_revision(conn) == head_revision()
    store.close()


def _instructions(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"q{i}" for i in range(n)],
        "prompt": [f"question {i}? 'quoted' and \"double\" — ünïcode" for i in range(n)],
        "chosen": [f"good answer {i}" for i in range(n)],
        "rejected": [f"bad answer {i}" if i % 2 == 0 else None for i in range(n)],
        "meta": [{"source": "test", "i": i} if i % 3 else None for i in range(n)],
    })


def test_postgres_schema_data_queries_and_annotations(store, pg, tmp_path):
    assert store.engine.dialect.name == "postgresql"
    with store.read() as conn:
        assert current_revision(conn) == head_revision()
    again = open_store(store.engine.url.render_as_string(hide_password=False))  # at head: opens as is
    again.close()

    df = _instructions(20)
    ds = store.import_instructions("rl", df, source_path="rl.jsonl")
    assert store.import_instructions("rl", df) == ds
    with pytest.raises(SeamError, match="already stored with different content"):
        store.import_instructions("rl", df.assign(chosen="other"))
    back = store.instructions(ds)
    assert back["id"].tolist() == df["id"].tolist() and back["prompt"].tolist() == df["prompt"].tolist()
    assert back["meta"].tolist() == df["meta"].tolist()
    assert back["rejected"].isna().tolist() == df["rejected"].isna().tolist()

    variants = ["contrast", "llm"]
    details, scores = synthetic_frames(df["id"].tolist(), variants, 3, seed=7)
    negs = details[["id", "variant", "neg_index"]].assign(text=[f"neg {i}" for i in range(len(details))],
                                                           meta=[{"k": i} if i % 2 else None for i in range(len(details))])
    assert store.import_negatives(ds, negs) == len(negs)
    with pytest.raises(SeamError, match="already stored"):
        store.import_negatives(ds, negs.iloc[:1])
    assert store.negatives(ds).shape[0] == len(negs)  # the failed write rolled back; the store goes on

    pm = store.register_model("pm", "/models/pm", fingerprint="abc", meta={"params": 1})
    assert store.register_model("pm", "/models/pm", fingerprint="abc") == pm
    run = store.create_score_run(ds, variants, {"weighting": "paper"}, pm_model_id=pm)
    assert store.save_score_results(run, details, scores) == (len(details), len(scores))
    with pytest.raises(SeamError, match="already stored"):
        store.save_score_results(run, details.iloc[:1], None)
    with pytest.raises(SeamError, match="cannot replace negatives"):
        store.import_negatives(ds, negs.iloc[:1], replace=True)

    stored = store.score_details(run)
    want = details.sort_values(["id", "variant", "neg_index"], key=_natural).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, want, check_dtype=False, atol=0, rtol=0)  # float8: exact

    lowest = store.lowest_seam(run, "llm", limit=5, offset=1)
    expected = scores[scores.variant == "llm"].sort_values("seam").iloc[1:6]
    assert lowest["id"].tolist() == expected["id"].tolist()
    assert lowest["seam"].tolist() == expected["seam"].tolist()
    worst = lowest["id"].iloc[0]
    breakdown = store.instruction_breakdown(run, worst)
    mine = want[want.id == worst]
    assert breakdown["term"].tolist() == mine["term"].tolist() and breakdown["text"].notna().all()
    assert breakdown["meta"].tolist() == negs.loc[mine.index, "meta"].tolist()
    by_row = store.instruction_breakdown(run, int(lowest["instruction_id"].iloc[0]))
    assert by_row["rm_neg"].tolist() == breakdown["rm_neg"].tolist()

    iid = store.instruction_ids(ds)[worst]
    aid = store.add_annotation(iid, "resp A", "resp B", "b", "ann1", response_a_ref="gold",
                               response_b_ref="negative:3", score_run_id=run, duration_s=2.5, meta={"ui": 1})
    store.add_annotation(iid, "x", "y", "tie", "gpt", source="llm")
    ann = store.annotations(instruction_id=iid)
    assert ann["id"].tolist()[0] == aid and ann["choice"].tolist() == ["b", "tie"]
    assert store.annotations(score_run_id=run)["duration_s"].tolist() == [2.5]

    runs = store.create_run("ppo", {"lr": 1e-5}, inputs=[{"role": "scores", "ref_kind": "score_run", "ref_id": run,
                                                          "content_hash": "abc"}])
    store.update_run(runs, status="done", artifacts={"checkpoint": tmp_path})
    store.log_metrics(runs, 0, {"reward": 0.5, "kl": None})
    assert store.run(runs)["artifacts"] == {"checkpoint": str(tmp_path)}
    assert store.run_metrics(runs)["name"].tolist() == ["kl", "reward"]

    out = store.export_dataset(ds, tmp_path / "pref.jsonl", layout="trl-preference", ids=["q0", "q2"])
    assert len(out.read_text().splitlines()) == 2


def _natural(col: pd.Series) -> pd.Series:
    return col.map(lambda v: int(v[1:]) if isinstance(v, str) and v.startswith("q") else v)


def _score_run(store, n: int, variants=("contrast", "llm")) -> int:
    df = pd.DataFrame({"id": [f"q{i}" for i in range(n)], "prompt": "p", "chosen": "c"})
    ds = store.import_instructions(f"rl{n}", df)
    return store.create_score_run(ds, list(variants))


def test_postgres_worker_runs_synthetic_score_like_sqlite(store, tmp_path):
    run = _score_run(store, 45)
    job = enqueue_job(store, "synthetic-score", {"score_run_id": run, "chunk_size": 10, "seed": 3})
    idle = enqueue_job(store, "synthetic-score", {"score_run_id": run}, priority=-1)
    assert cancel_job(store, idle) == "cancelled"
    assert Worker(store, echo=False, poll_s=0.05).run(once=True) == 1
    info = get_job(store, job)
    assert info["status"] == "done" and info["chunks_done"] == 5 and info["progress"] == 1.0, info.get("error")
    assert "chunk 4 writing" in info["log"] and info["result"] == {"chunks": 5, "details_written": 45 * 2 * 4}
    assert store.score_run(run)["status"] == "done"

    lite = open_store(tmp_path / "lite")  # the same job on SQLite: the same rows
    lite_run = _score_run(lite, 45)
    enqueue_job(lite, "synthetic-score", {"score_run_id": lite_run, "chunk_size": 10, "seed": 3})
    Worker(lite, echo=False, poll_s=0.05).run(once=True)
    pd.testing.assert_frame_equal(store.score_details(run), lite.score_details(lite_run), atol=0, rtol=0)
    pd.testing.assert_frame_equal(store.seam_scores(run), lite.seam_scores(lite_run), atol=0, rtol=0)
    lite.close()


def test_postgres_concurrent_workers_and_writers(store):
    url = store.engine.url.render_as_string(hide_password=False)
    jobs = [enqueue_job(store, "synthetic-score", {"score_run_id": _score_run(store, n), "chunk_size": 3})
            for n in range(5, 15)]
    stores = [open_store(url) for _ in range(3)]
    workers = [Worker(s, echo=False, poll_s=0.05) for s in stores]
    model_ids: list[int] = []

    def register(s) -> None:  # check-then-insert from several connections at once: one row
        for _ in range(5):
            model_ids.append(s.register_model("rm", "/models/rm", fingerprint="f1"))

    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    threads += [threading.Thread(target=register, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    infos = [get_job(store, j) for j in jobs]
    # a job run twice would have failed on the unique (instruction, run, variant) keys
    assert all(i["status"] == "done" and i["attempts"] == 1 for i in infos), [i["error"] for i in infos]
    assert {i["worker_id"] for i in infos} <= {w.worker_id for w in workers}
    assert len(set(model_ids)) == 1 and len(model_ids) == 15 and len(store.models("rm")) == 1
    for s in stores:
        s.close()


def test_postgres_writes_queue_behind_the_write_lock(store):
    """A second writer waits for the first (as BEGIN IMMEDIATE does on SQLite); readers do not wait."""
    ds = store.import_instructions("rl", _instructions(2))
    iid = store.instruction_ids(ds)["q0"]
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with store.write() as conn:
            holding.set()
            time.sleep(0.6)
            store.add_annotation(iid, "a", "b", "a", "first", conn=conn)
            order.append("first")

    t = threading.Thread(target=first)
    t.start()
    assert holding.wait(10)
    started = time.monotonic()
    assert store.count("annotations") == 0  # a read during the write: no wait, no uncommitted rows
    assert time.monotonic() - started < 0.5
    store.add_annotation(iid, "c", "d", "b", "second")
    order.append("second")
    t.join(10)
    assert order == ["first", "second"] and time.monotonic() - started >= 0.4
    assert store.annotations()["annotator"].tolist() == ["first", "second"]
