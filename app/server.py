"""Start the dashboard: Streamlit (headless, 127.0.0.1 by default) plus a `seam worker` for the same store.

    server = start(ServeConfig(db="runs/", port=8501))   # returns once both processes are started
    server.wait_ready()                                  # Streamlit answers its health check
    server.stop()                                        # SIGTERM both (the worker requeues its job)

`seam serve` runs `serve(cfg)`, which blocks until Ctrl-C / SIGTERM or until Streamlit exits. The
store is passed to the app in ``$SEAM_DB``; the worker's pid in ``$SEAM_WORKER_PID`` (the Overview
page checks it is alive). Streamlit runs with usage statistics off and no file watcher.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from db import open_store
from seam.errors import SeamError

MAIN = Path(__file__).resolve().parent / "main.py"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """Settings of `seam serve`."""

    db: str = "."  # store: a folder (FOLDER/seam.db), a .db file or a SQLAlchemy URL
    host: str = "127.0.0.1"  # address to bind; anything but localhost exposes an unauthenticated dashboard
    port: int = 8501  # TCP port
    worker: bool = True  # also run a `seam worker` for the same store (stopped with the dashboard)
    quiet: bool = False  # no worker job logs on stderr
    extra_env: dict[str, str] = field(default_factory=dict)  # added to both processes' environment


def store_target(db: str) -> str:
    """The store location made absolute (URLs unchanged), after checking it opens (created or upgraded)."""
    target = db if "://" in db else str(Path(db).expanduser().resolve())
    open_store(target).close()
    return target


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent(sig: int):  # noqa: ANN202
    """A preexec_fn that makes the child get `sig` if `seam serve` dies (Linux), so nothing is orphaned."""
    if not sys.platform.startswith("linux"):
        return None

    def set_pdeathsig() -> None:
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
        except OSError:
            pass

    return set_pdeathsig


@dataclass
class Server:
    url: str
    target: str  # the store, as the app and the worker were given it
    app: subprocess.Popen
    worker: subprocess.Popen | None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until Streamlit's health endpoint answers (raise if it exits or times out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.app.poll() is not None:
                raise SeamError(f"the dashboard exited with code {self.app.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise SeamError(f"the dashboard did not answer at {self.url} within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        for proc in (self.app, self.worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.app, self.worker):
            if proc is None:
                continue
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start(cfg: ServeConfig) -> Server:
    """Check the store and the port, then start the worker (unless cfg.worker is False) and Streamlit."""
    if not 0 < cfg.port < 65536:
        raise SeamError(f"--port {cfg.port}: not a TCP port; use 1-65535 (default 8501)")
    target = store_target(cfg.db)
    if not port_free(cfg.host, cfg.port):
        raise SeamError(f"--port {cfg.port}: {cfg.host}:{cfg.port} is already in use; stop what runs there or pass --port N")
    env = {**os.environ, **cfg.extra_env, "SEAM_DB": target}
    worker = None
    if cfg.worker:
        cmd = [sys.executable, "-m", "seam", "worker", "--db", target] + (["--quiet"] if cfg.quiet else [])
        worker = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent(signal.SIGTERM))
        env["SEAM_WORKER_PID"] = str(worker.pid)
    else:
        env.pop("SEAM_WORKER_PID", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(MAIN),
           "--server.headless=true", f"--server.address={cfg.host}", f"--server.port={cfg.port}",
           "--browser.gatherUsageStats=false", "--server.fileWatcherType=none", "--global.developmentMode=false",
           "--server.runOnSave=false", "--client.toolbarMode=viewer"]
    try:
        app = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL if cfg.quiet else None,
                               preexec_fn=_die_with_parent(signal.SIGKILL))
    except BaseException:
        if worker is not None:
            worker.terminate()
        raise
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return Server(f"http://{host}:{cfg.port}", target, app, worker)


def serve(cfg: ServeConfig) -> int:
    """Run the dashboard until Ctrl-C / SIGTERM or until Streamlit exits; returns an exit code."""
    if cfg.host not in LOCAL_HOSTS:
        sys.stderr.write(f"warning: --host {cfg.host} exposes the dashboard (no authentication) beyond this machine\n")
    server = start(cfg)

    def stop(signum, _frame):  # noqa: ANN001
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt, so `seam serve &` would not stop on `kill -INT`
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.wait_ready()
        worker_note = f"; worker pid {server.worker.pid}" if server.worker else "; no worker (--no-worker)"
        print(f"SEAM Studio on {server.url} (store {server.target}{worker_note}); Ctrl-C to stop", flush=True)
        warned = False
        while server.app.poll() is None:
            if server.worker is not None and server.worker.poll() is not None and not warned:
                sys.stderr.write(f"warning: the worker exited with code {server.worker.returncode}; queued jobs wait "
                                 "until you run `seam worker --db ...`\n")
                warned = True
            time.sleep(0.5)
        return int(server.app.returncode or 0)
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
