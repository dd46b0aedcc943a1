"""`seam worker --backend ray`: score chunks as Ray tasks spread over a Ray cluster.

    with RayBackend(RayConfig(address="127.0.0.1:6379")) as backend:
        Worker(store, handlers=backend.handlers()).run()

The worker process stays the store's only writer: it claims jobs, plans a `score` job exactly as
the local backend does (jobs.kinds.score: same inputs, same chunks, same chunk keys) and commits
each chunk's rows with its done-marker. The model work of each chunk (`score_chunk`, the very
function the local backend calls) runs in Ray actors (`ChunkScorer`), each loading the PM and
RM once and scoring the chunks it is handed; a few chunks per actor are in flight at a time and
each is committed as its result returns. An actor asks for one GPU when the cluster has GPUs
(and the run's device is not ``cpu``), else one CPU. A killed worker resumes like the local one:
committed chunks are skipped, the others are scored again.

Addresses: ``local`` starts a Ray instance inside the worker bound to 127.0.0.1 (stopped with
the worker); ``auto`` joins the cluster started on this machine with ``ray start``; ``HOST:PORT``
(or ``ray://HOST:PORT``) joins that cluster. Every node needs seam-studio installed (same
version) and the registered model folders at the same paths. Other job kinds run in the worker
process as with the local backend. Ray is an optional extra: ``pip install 'seam-studio[ray]'``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seam.errors import SeamError

from .context import Handler, JobContext
from .kinds.score import chunk_writer, load_models, make_scorer, model_specs, plan_score_job, score_chunk

if TYPE_CHECKING:
    import pandas as pd

WAIT_S = 1.0  # how often the worker looks up from Ray to check for a cancel


@dataclass
class RayConfig:
    """How the worker uses Ray (`seam worker --backend ray` flags)."""

    address: str | None = None  # local | auto | HOST:PORT | ray://HOST:PORT (default: $RAY_ADDRESS, else local)
    scorers: int | None = None  # Ray actors holding the models (default and cap: one per GPU, else one per CPU)
    in_flight: int = 2  # chunks queued per scorer, so none waits for the next one
    local_cpus: int | None = None  # address=local: CPUs the in-process Ray may use (default: all)
    local_object_store_mb: int = 256  # address=local: shared-memory object store size

    def validate(self) -> None:
        if self.scorers is not None and self.scorers < 1:
            raise SeamError(f"--ray-scorers must be >= 1, got {self.scorers}")
        if self.in_flight < 1:
            raise SeamError(f"in_flight must be >= 1, got {self.in_flight}")


def import_ray():
    try:
        import ray
    except ImportError:
        raise SeamError("--backend ray needs Ray, which is not installed: pip install 'seam-studio[ray]' "
                        "(or pip install ray), or use --backend local") from None
    return ray


class ChunkScorer:
    """A Ray actor: loads the run's PM and RM once, then scores the chunks it is sent."""

    def __init__(self, pm_spec: dict[str, Any], rm_spec: dict[str, Any], config_kwargs: dict[str, Any]):
        self.specs, self.config_kwargs = (pm_spec, rm_spec), config_kwargs
        self.scorer = None

    def load(self) -> dict[str, Any]:
        """Load the models (a method, not __init__, so a SeamError reaches the worker intact)."""
        pm, rm = load_models(*self.specs)
        self.scorer = make_scorer(pm, rm, self.config_kwargs)
        return {"device": pm.info["device"], "dtype": pm.info["dtype"], "pid": os.getpid()}

    def score(self, index: int, inst: pd.DataFrame, negs: pd.DataFrame) -> tuple:
        """(index, details, scores, {stat: increase}) for chunk `index`."""
        stats = self.scorer.stats
        before = (stats.pm_truncated, stats.rm_truncated, stats.without_negatives)
        details, scores = score_chunk(self.scorer, inst, negs)
        after = (stats.pm_truncated, stats.rm_truncated, stats.without_negatives)
        keys = ("pm_truncated", "rm_truncated", "without_negatives")
        return index, details, scores, {k: a - b for k, a, b in zip(keys, after, before)}


def _reraise(exc: BaseException) -> None:
    """A failed Ray task: raise its cause (a SeamError stays a one-line user error)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, SeamError):
        raise SeamError(str(cause)) from None
    if isinstance(cause, BaseException):
        raise cause from exc
    raise exc


class RayBackend:
    """A connection to a Ray cluster and the `score` handler that uses it. Use as a context manager."""

    def __init__(self, cfg: RayConfig | None = None):
        self.cfg = cfg or RayConfig()
        self.cfg.validate()
        self.ray = None
        self._owned = False  # whether close() shuts Ray down (this object initialized it)

    @property
    def address(self) -> str:
        return self.cfg.address or os.environ.get("RAY_ADDRESS") or "local"

    def start(self) -> RayBackend:
        ray = self.ray = import_ray()
        if ray.is_initialized():  # a caller (a notebook, a test) already connected this process
            return self
        address = self.address
        if address not in ("local", "auto"):
            _check_reachable(address)  # Ray itself retries an unreachable address for minutes
        options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        try:
            if address == "local":
                with _loopback_only(ray):
                    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                             num_cpus=self.cfg.local_cpus, object_store_memory=self.cfg.local_object_store_mb << 20,
                             **options)
            elif _is_loopback(address):  # a head started with --node-ip-address 127.0.0.1 on this machine
                with _loopback_only(ray):
                    ray.init(address=address, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise SeamError(f"could not connect to the Ray cluster at --address {address!r} "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); start one with "
                            "`ray start --head` and pass its HOST:PORT, or use --address local") from None
        self._owned = True
        return self

    def close(self) -> None:
        if self._owned and self.ray is not None:
            self.ray.shutdown()
        self._owned = False

    def __enter__(self) -> RayBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        where = getattr(self.ray.get_runtime_context(), "gcs_address", None) or self.address
        return (f"Ray at {where}: {len(self.ray.nodes())} node(s), {res.get('CPU', 0):g} CPU, "
                f"{res.get('GPU', 0):g} GPU")

    def handlers(self) -> dict[str, Handler]:
        """Job kinds this backend runs differently from the local one (the others run in-process)."""
        return {"score": self.score_job}

    # --- the score job ---------------------------------------------------------------------------

    def scorer_layout(self, device: str, n_chunks: int) -> tuple[int, dict[str, float]]:
        """(number of scorer actors, Ray resources of each)."""
        res = self.ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
        if gpus and device != "cpu":  # one GPU each (and a CPU, where the cluster has one per GPU)
            capacity, each = gpus, {"num_gpus": 1, "num_cpus": 1 if cpus >= gpus else 0}
        else:
            capacity, each = max(cpus, 1), {"num_gpus": 0, "num_cpus": 1}
        n = min(self.cfg.scorers or capacity, capacity)  # more would wait forever for resources
        return max(1, min(n, n_chunks)), each

    def score_job(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        """The `score` job with chunks scored by Ray actors; same rows and chunk keys as the local one."""
        ray, store = self.ray, ctx.store
        plan = plan_score_job(store, payload)
        run_id, chunks = plan.run_id, plan.chunks
        done = ctx.done_chunks()
        todo = [k for k in range(len(chunks)) if str(k) not in done]
        if done:
            ctx.log(f"resuming: {len(done)} of {len(chunks)} chunks already committed")
        pm_spec, rm_spec = model_specs(store, plan.run, plan.config)
        totals = {"pm_truncated": 0, "rm_truncated": 0, "without_negatives": 0}
        written = 0
        store.set_score_run_status(run_id, "running")
        if todo:
            n_scorers, each = self.scorer_layout(str(pm_spec["device"]), len(todo))
            ctx.progress(len(done) / len(chunks), f"starting {n_scorers} Ray scorer(s)")
            ctx.log(f"{self.describe()}; {n_scorers} scorer(s) with {each}, {len(todo)} chunk(s) to score")
            actor_cls = ray.remote(**each)(ChunkScorer)
            config_kwargs = plan.config_kwargs()
            actors = [actor_cls.remote(pm_spec, rm_spec, config_kwargs) for _ in range(n_scorers)]
            try:
                loading = [a.load.remote() for a in actors]
                while True:  # wait for the models, looking up for a cancel now and then
                    ready, _ = ray.wait(loading, num_returns=len(loading), timeout=WAIT_S)
                    if len(ready) == len(loading):
                        break
                    ctx.check_cancelled()
                try:
                    info = ray.get(loading)
                except Exception as exc:  # noqa: BLE001 - a model that does not load on a node
                    _reraise(exc)
                ctx.log(f"scoring {len(plan.instructions)} instructions x {len(plan.variants)} variants on "
                        f"{n_scorers} Ray scorer(s) ({info[0]['device']}/{info[0]['dtype']})")
                written = self._run_chunks(ctx, plan, actors, todo, len(done), totals)
            finally:
                for a in actors:
                    with contextlib.suppress(Exception):
                        ray.kill(a)
        if totals["pm_truncated"] or totals["rm_truncated"]:
            ctx.log(f"truncated responses: {totals['pm_truncated']} for the PM, {totals['rm_truncated']} for the RM")
        if totals["without_negatives"]:
            ctx.log(f"{totals['without_negatives']} instructions have no negatives and get no SEAM row")
        store.set_score_run_status(run_id, "done")
        return {"chunks": len(chunks), "details_written": written, "pm_truncated": totals["pm_truncated"],
                "rm_truncated": totals["rm_truncated"], "backend": "ray"}

    def _run_chunks(self, ctx: JobContext, plan, actors: list, todo: list[int], n_done: int,  # noqa: ANN001
                    totals: dict[str, int]) -> int:
        """Keep `in_flight` chunks queued on every actor; commit each chunk as its result returns."""
        ray, store = self.ray, ctx.store
        queue = list(reversed(todo))
        pending: dict[Any, Any] = {}  # object ref -> actor

        def submit(actor) -> None:  # noqa: ANN001
            if queue:
                index = queue.pop()
                pending[actor.score.remote(index, *plan.chunk_inputs(index))] = actor

        for _ in range(self.cfg.in_flight):
            for actor in actors:
                submit(actor)
        written, committed, n = 0, n_done, len(plan.chunks)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
            ctx.check_cancelled()
            for ref in ready:
                actor = pending.pop(ref)
                try:
                    index, details, scores, stats = ray.get(ref)
                except Exception as exc:  # noqa: BLE001
                    _reraise(exc)
                submit(actor)  # keep the actor busy while this chunk is written
                for k, v in stats.items():
                    totals[k] += v
                if ctx.commit_chunk(str(index), chunk_writer(store, plan.run_id, details, scores)):
                    written += 0 if details is None else len(details)
                committed += 1
                ctx.progress(committed / n, f"chunk {index + 1}/{n} committed ({committed}/{n} done, "
                                            f"{len(pending)} in flight)")
        return written


def _host_port(address: str) -> tuple[str, int | None]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return address.split("://", 1)[-1].strip("[]"), None
    return host.strip("[]"), int(port)


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    host, port = _host_port(address)
    if port is None:
        raise SeamError(f"--address {address!r} is not local, auto or HOST:PORT (e.g. 10.0.0.5:6379, the port "
                        "`ray start --head` prints)")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise SeamError(f"no Ray cluster answers at --address {address} ({exc.strerror or exc}); start one with "
                        "`ray start --head --port PORT` and pass HOST:PORT, or use --address local") from None


def _is_loopback(address: str) -> bool:
    host = _host_port(address)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _loopback_only(ray):  # noqa: ANN001
    """Make Ray use 127.0.0.1 for every address instead of this host's network IP.

    Ray turns 127.0.0.1 into the host's routable address unless its multi-node mode is off; the
    switch is read at import (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER) and by the processes Ray starts,
    so both the environment and the loaded constant are set while Ray starts, then put back.
    """
    name = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    old_env = os.environ.get(name)
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    old_const = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[name] = "0"
    if constants is not None and old_const is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old_env
        if constants is not None and old_const is not None:
            constants.ENABLE_RAY_CLUSTER = old_const
